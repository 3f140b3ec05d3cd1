"""The fabrics' plan (topology/fabric.py) and their forwarding (controller/fabric_flows.py),
checked without a switch: a packet is walked through every switch's planned rules and groups,
as Open vSwitch would take it, with each cable cut in turn, before and after the controller
plans again."""

from __future__ import annotations

import pytest

from controller.fabric_flows import IN_PORT, fabric_hosts, plan_switch
from topology.config import ConfigError, TestbedConfig, load_config

MAX_HOPS = 12


def config_of(topology: str, **network) -> TestbedConfig:
    overrides = {"network.topology": topology, **{f"network.{k}": v for k, v in network.items()}}
    return load_config(overrides=overrides)


FABRICS = {
    "two-tier": config_of("two-tier"),
    "leaf-spine 3x2": config_of("leaf-spine", leaves=3, spines=2),
    "leaf-spine 4x2, 3 clients": config_of("leaf-spine", leaves=4, spines=2, clients=3),
    "leaf-spine 2x3": config_of("leaf-spine", leaves=2, spines=3),
}


UNKNOWN_MAC = "02:00:00:00:99:99"  # no host's


def walk(config: TestbedConfig, plans: dict, cut: set[str], source: str, dest: str | None) -> list[str]:
    """The switches a packet from host `source` to host `dest`'s MAC passes; fails on a drop,
    on a loop, or on a delivery to the wrong host. `dest` None: a MAC no host has, which must
    be dropped (on the clients' edge), without a loop."""
    fabric = config.fabric
    hosts = {plan.name: plan for plan in config.host_plans}
    mac = hosts[dest].mac if dest else UNKNOWN_MAC
    switch, in_port = hosts[source].switch, hosts[source].port
    path = []
    for _ in range(MAX_HOPS):
        path.append(switch)
        plan = plans[switch]
        rules = sorted((r for r in plan.rules if r.mac in (None, mac) and r.in_port in (None, in_port)),
                       key=lambda r: -r.priority)
        if dest is None and not rules:
            assert switch == fabric.clients_edge, f"an unknown MAC is dropped on {switch}, path {path}"
            return path
        assert rules, f"{switch} drops {source}->{dest} (from port {in_port}); path {path}"
        rule = rules[0]
        if rule.group is None:
            out = rule.port
        else:
            group = next(g for g in plan.groups if g.group_id == rule.group)
            live = [b for b in group.buckets if not _is_cut(fabric, switch, b.watch_port, cut)]
            assert live, f"{switch}: no live bucket for {source}->{dest}; path {path}"
            out = in_port if live[0].out_port == IN_PORT else live[0].out_port
        assert out != in_port or (rule.group is not None and live[0].out_port == IN_PORT), \
            f"{switch} sends {source}->{dest} back out of its in_port without IN_PORT"
        link = fabric.link_at(switch, out)
        if link is None:
            arrived = next(h for h in hosts.values() if (h.switch, h.port) == (switch, out))
            assert arrived.name == dest, f"{source}->{dest} delivered to {arrived.name}; path {path}"
            return path
        assert link.name not in cut, f"{switch} sends {source}->{dest} into the cut cable {link.name}"
        if switch == link.edge:
            switch, in_port = link.core, link.core_port
        else:
            switch, in_port = link.edge, link.edge_port
    raise AssertionError(f"{source}->{dest} loops: {path}")


def _is_cut(fabric, switch: str, port: int, cut: set[str]) -> bool:
    link = fabric.link_at(switch, port)
    return link is not None and link.name in cut


def plans_for(config: TestbedConfig, down: set[str]) -> dict:
    return {switch: plan_switch(config.fabric, fabric_hosts(config), switch, frozenset(down))
            for switch in config.fabric.switches}


@pytest.mark.parametrize("name", FABRICS)
def test_every_host_reaches_every_other_with_any_one_cable_cut(name: str) -> None:
    """Before the controller hears of the cut (the switches' groups alone) and after it planned
    again, every pair of hosts is connected, without a loop."""
    config = FABRICS[name]
    hosts = [plan.name for plan in config.host_plans]
    for cut in [None, *(link.name for link in config.fabric.links)]:
        cuts = set() if cut is None else {cut}
        if config.fabric.topology == "leaf-spine" and len(config.fabric.cores) == 1 and cut:
            continue
        for replanned in (False, True):
            plans = plans_for(config, cuts if replanned else set())
            for source in hosts:
                for dest in [*hosts, None]:
                    if source != dest:
                        walk(config, plans, cuts, source, dest)


@pytest.mark.parametrize("topology, network", [("two-tier", {}), ("leaf-spine", {"leaves": 4, "spines": 2})])
def test_no_switch_but_the_clients_edge_has_a_rule_per_client(topology: str, network: dict) -> None:
    """From 1 client to 64, the rules and groups of every switch stay as they are, but on the
    clients' edge, which has one rule more per client: the one for its port."""
    def sizes(clients: int) -> dict[str, tuple[int, int]]:
        plans = plans_for(config_of(topology, clients=clients, **network), set())
        return {switch: (len(plan.rules), len(plan.groups)) for switch, plan in plans.items()}
    one, many = sizes(1), sizes(64)
    edge = config_of(topology, **network).fabric.clients_edge
    assert {s: v for s, v in many.items() if s != edge} == {s: v for s, v in one.items() if s != edge}
    assert many[edge] == (one[edge][0] + 63, one[edge][1])


def test_after_replanning_no_packet_takes_the_bounce() -> None:
    """With the primary's cable to core1 cut, the client's packets go by core2 once the
    controller planned again: three switches, not the bounce's five."""
    config = FABRICS["two-tier"]
    cut = {config.fabric.link("edge2", "core1").name}
    stale = walk(config, plans_for(config, set()), cut, "client", "primary")
    fresh = walk(config, plans_for(config, cut), cut, "client", "primary")
    assert stale == ["edge1", "core1", "edge3", "core2", "edge2"]  # core1 bounced it by edge3
    assert fresh == ["edge1", "core2", "edge2"]


def test_two_tier_puts_each_server_on_an_edge_of_its_own() -> None:
    fabric = FABRICS["two-tier"].fabric
    assert fabric.edges == ("edge1", "edge2", "edge3") and fabric.cores == ("core1", "core2")
    assert fabric.placement == {"client": ("edge1", 1), "monitor": ("edge1", 2),
                                "primary": ("edge2", 1), "secondary": ("edge3", 1)}
    assert [(lk.name, lk.edge_port, lk.core_port) for lk in fabric.links] == [
        ("edge1-core1", 3, 1), ("edge1-core2", 4, 1), ("edge2-core1", 2, 2),
        ("edge2-core2", 3, 2), ("edge3-core1", 2, 3), ("edge3-core2", 3, 3)]


@pytest.mark.parametrize(
    "cut, reached",
    [
        (set(), {"edge1", "edge2", "edge3", "core1", "core2"}),
        ({"edge2-core1"}, {"edge1", "edge2", "edge3", "core1", "core2"}),
        ({"edge2-core1", "edge2-core2"}, {"edge1", "edge3", "core1", "core2"}),  # edge2 cut off
        ({"edge1-core1", "edge1-core2"}, {"edge1"}),  # the clients cut off from everything
    ],
)
def test_reachable_says_which_switches_the_clients_edge_still_reaches(cut, reached) -> None:
    assert FABRICS["two-tier"].fabric.reachable(cut) == reached


def test_the_single_switch_keeps_its_ports() -> None:
    config = load_config()
    assert [(p.name, p.switch, p.port) for p in config.host_plans] == [
        ("client", "s1", 1), ("monitor", "s1", 2), ("primary", "s1", 3), ("secondary", "s1", 4)]
    assert config.fabric.links == () and config.fabric.is_single


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"network.topology": "ring"}, "network.topology"),
        ({"network.topology": "leaf-spine", "network.leaves": 1}, "network.leaves"),
        ({"network.topology": "leaf-spine", "network.spines": 5}, "network.spines"),
        ({"network.topology": "two-tier", "failover.mechanism": "vrrp"}, "network.topology"),
    ],
)
def test_a_bad_topology_is_refused_naming_the_key(overrides, key) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(overrides=overrides)
    assert refused.value.key == key


def test_a_server_named_like_a_fabric_switch_is_refused() -> None:
    data = TestbedConfig().to_dict()
    data["servers"][0]["name"] = "core1"
    with pytest.raises(ConfigError) as refused:
        TestbedConfig.from_dict(data)
    assert refused.value.key == "servers[0].name" and "leaf-spine" in str(refused.value)


@pytest.mark.parametrize("name", FABRICS)
def test_without_backup_buckets_only_the_controllers_new_plan_reroutes(name: str) -> None:
    """`failover.switch_failover` off: each group has one bucket, so a cut cable's traffic is
    lost (the walk fails) until the controller planned again; then every pair is connected."""
    config = FABRICS[name]
    hosts = [plan.name for plan in config.host_plans]
    for link in config.fabric.links:
        cut = {link.name}
        stale = {s: plan_switch(config.fabric, fabric_hosts(config), s, frozenset(), backup=False)
                 for s in config.fabric.switches}
        fresh = {s: plan_switch(config.fabric, fabric_hosts(config), s, frozenset(cut), backup=False)
                 for s in config.fabric.switches}
        lost = 0
        for source in hosts:
            for dest in hosts:
                if source == dest:
                    continue
                walk(config, fresh, cut, source, dest)
                try:
                    walk(config, stale, cut, source, dest)
                except AssertionError:
                    lost += 1
        # Every first bucket goes by the first core: only its cables to edges with hosts carry
        # traffic to lose.
        if link.core == config.fabric.cores[0] and config.fabric.hosts_on(link.edge):
            assert lost > 0, f"cutting {link.name} lost nothing without backup buckets"
        else:
            assert lost == 0, f"cutting {link.name}, which no first bucket uses, lost {lost} pairs"


@pytest.mark.parametrize(
    "news, events, servers",
    [
        # (cable, switch, up) in order -> the kinds logged, the servers the machine hears of
        ([("edge2-core1", "edge2", False)], ["link_status"], []),
        ([("edge2-core1", "edge2", False), ("edge2-core1", "core1", False)], ["link_status"], []),  # once
        ([("edge2-core1", "edge2", False), ("edge2-core2", "edge2", False)],
         ["link_status", "link_status", "server_cut_off"], [("primary", False)]),
        ([("edge2-core1", "edge2", False), ("edge2-core2", "edge2", False), ("edge2-core2", "edge2", True)],
         ["link_status", "link_status", "server_cut_off", "link_status", "server_reachable"],
         [("primary", False), ("primary", True)]),
        # One end back while the other still says down: the cable stays down.
        ([("edge2-core1", "core1", False), ("edge2-core1", "edge2", True)], ["link_status"], []),
        ([("edge2-core1", "core1", False), ("edge2-core1", "edge2", False), ("edge2-core1", "core1", True),
          ("edge2-core1", "edge2", True)], ["link_status", "link_status"], []),
        ([("edge1-core1", "edge1", True)], [], []),  # up, and never down: nothing changes
    ],
)
def test_the_fabric_state_logs_each_cable_once_and_tells_of_servers_cut_off(news, events, servers) -> None:
    from controller.fabric_flows import FabricState

    state = FabricState(FABRICS["two-tier"])
    logged, heard = [], []
    for name, switch, up in news:
        change = state.cable(name, switch, up)
        if change is not None:
            logged += [kind for kind, _ in change.events]
            heard += change.servers
    assert (logged, heard) == (events, servers)


def test_a_probe_frame_names_its_sender_and_any_other_frame_names_none() -> None:
    from os_ken.lib.packet import ethernet, lldp, packet

    from controller.discovery import probe_frame, sender_of
    assert sender_of(probe_frame(101, 3)) == (101, 3)
    assert sender_of(probe_frame(2**40, 65000)) == (2**40, 65000)
    foreign = packet.Packet()  # a real switch's LLDP: its chassis is a MAC address
    foreign.add_protocol(ethernet.ethernet(dst="01:80:c2:00:00:0e", src="02:00:00:00:00:01",
                                           ethertype=0x88CC))
    foreign.add_protocol(lldp.lldp(tlvs=[
        lldp.ChassisID(subtype=lldp.ChassisID.SUB_MAC_ADDRESS, chassis_id=b"\x02\x00\x00\x00\x00\x01"),
        lldp.PortID(subtype=lldp.PortID.SUB_INTERFACE_NAME, port_id=b"eth0"), lldp.TTL(ttl=120), lldp.End()]))
    foreign.serialize()
    assert sender_of(bytes(foreign.data)) is None
    assert sender_of(b"\x00" * 20) is None


TWO = FABRICS["two-tier"].fabric


@pytest.mark.parametrize(
    "frames, events, cables",
    [
        # (switch, port, (from switch, from port)) -> the events and the cables held/let go
        ([("edge2", 2, ("core1", 2))], [("cable_verified", "edge2-core1")], [None]),
        ([("core1", 2, ("edge2", 2)), ("edge2", 2, ("core1", 2))], [("cable_verified", "edge2-core1"), None],
         [None, None]),  # heard both ways: verified once
        ([("edge2", 2, ("core2", 3))], [("cable_miswired", "edge2-core1")], [("edge2-core1", True)]),
        ([("edge2", 2, ("core2", 3)), ("edge2", 2, ("core2", 3))], [("cable_miswired", "edge2-core1"), None],
         [("edge2-core1", True), None]),  # the same news twice: said once
        ([("edge2", 2, ("core2", 3)), ("edge2", 2, ("core1", 2))],
         [("cable_miswired", "edge2-core1"), ("cable_verified", "edge2-core1")],
         [("edge2-core1", True), ("edge2-core1", False)]),  # rewired as planned: let go
        ([("edge2", 1, ("core1", 2))], [("cable_miswired", None)], [None]),  # on the primary's port
        ([("edge2", 1, ("core1", 2))] * 3, [("cable_miswired", None), None, None], [None] * 3),  # said once
    ],
)
def test_the_cable_check_compares_each_probe_frame_with_the_plan(frames, events, cables) -> None:
    from controller.discovery import CableCheck
    check = CableCheck(TWO)
    for (switch, port, (sender, sender_port)), event, cable in zip(frames, events, cables, strict=True):
        heard = check.heard(switch, port, (TWO.dpid(sender), sender_port))
        said = None if heard.event is None else (heard.event[0], heard.event[1].get("link"))
        assert (said, heard.cable) == (event, cable)
