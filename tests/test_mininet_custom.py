"""The testbed's network for Mininet's own command line (topology/mininet_custom.py): the same
hosts, addresses, MACs and switch ports as the testbed's network plan, so the project's
controller finds every server where it expects it."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from topology.config import load_config

pytestmark = pytest.mark.machine  # Debian's mininet package

ROOT = Path(__file__).resolve().parent.parent


def test_the_custom_topology_is_the_testbeds_network_plan(monkeypatch):
    monkeypatch.delenv("TESTBED_CONFIG", raising=False)
    custom = runpy.run_path(str(ROOT / "topology" / "mininet_custom.py"))
    topo = custom["topos"]["testbed"]()
    config = load_config(ROOT / "config" / "default.toml")
    assert topo.switches() == [config.network.switch]
    plans = {plan.name: plan for plan in config.host_plans}
    assert sorted(topo.hosts()) == sorted(plans)
    for name, plan in plans.items():
        info = topo.nodeInfo(name)
        assert (info["ip"], info["mac"]) == (f"{plan.ip}/{config.prefix_len}", plan.mac)
        (link,) = [link for link in topo.links(withInfo=True) if name in link[:2]]
        ports = link[2]
        assert ports["port2" if link[0] == name else "port1"] == plan.port  # its switch port
    assert set(custom["hosts"]) == set(custom["switches"]) == set(custom["controllers"]) == {"testbed"}
    controller = custom["controllers"]["testbed"]
    assert controller.keywords == {"ip": "127.0.0.1", "port": config.network.controller_port}


def test_another_config_gives_its_own_network(tmp_path, monkeypatch):
    config = tmp_path / "three.toml"
    config.write_text("".join(f'[[servers]]\nname = "{name}"\nip = "10.0.0.{11 + i}"\n'
                              for i, name in enumerate("abc")))
    monkeypatch.setenv("TESTBED_CONFIG", str(config))
    topo = runpy.run_path(str(ROOT / "topology" / "mininet_custom.py"))["topos"]["testbed"]()
    assert {"a", "b", "c", "client", "monitor"} <= set(topo.hosts())


def test_a_fabric_config_gives_every_switch_host_and_cable_of_its_plan(tmp_path, monkeypatch):
    path = tmp_path / "fabric.toml"
    path.write_text('[network]\ntopology = "leaf-spine"\nleaves = 3\nspines = 2\n')
    monkeypatch.setenv("TESTBED_CONFIG", str(path))
    topo = runpy.run_path(str(ROOT / "topology" / "mininet_custom.py"))["topos"]["testbed"]()
    fabric = load_config(path).fabric
    assert sorted(topo.switches()) == sorted(fabric.switches)
    assert {s: topo.nodeInfo(s)["dpid"] for s in fabric.switches} == {
        s: f"{fabric.dpid(s):016x}" for s in fabric.switches}
    links = {frozenset(link[:2]): link[2] for link in topo.links(withInfo=True)}
    for cable in fabric.links:
        ports = links[frozenset((cable.edge, cable.core))]
        at = {ports["node1"]: ports["port1"], ports["node2"]: ports["port2"]}
        assert at == {cable.edge: cable.edge_port, cable.core: cable.core_port}
    for host, (switch, port) in fabric.placement.items():
        ports = links[frozenset((host, switch))]
        assert ports["port2" if ports["node1"] == host else "port1"] == port
