"""The fabrics (network.topology two-tier and leaf-spine): a server failure (the whole primary,
its web server, its database, its link) still moves the VIP, and a cut between switches (a
cable, a whole core, a flapping cable) is rerouted by the switches with no failover at all.

Each run: 8 s of load at 200 req/s, the fault at 2 s, as a user runs it.
"""

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT, leftovers, read_results, run_cli

FAULT_AT = 2.0


def run_on(topology: str, scenario: str, out, *options: str):
    _, run_dir = run_cli(scenario, out, "--topology", topology, "--duration", "8",
                         "--fault-at", str(FAULT_AT), *options)
    assert leftovers() == []
    return read_results(run_dir)


def detail(event) -> dict:
    """An event's own fields (events.csv keeps them as JSON)."""
    return json.loads(event["detail"] or "{}")


def moves(events):
    return [e["server"] for e in events if e["kind"] == "vip_moved"]


def served_after(requests, t):
    return {r["served_by"] for r in requests if float(r["sent_at"]) > t and r["status"].startswith("2")}


@pytest.mark.parametrize(("topology", "scenario"),
                         [("two-tier", "primary-crash"), ("leaf-spine", "web-crash"),
                          ("two-tier", "db-crash"), ("leaf-spine", "link-down")])
def test_a_failed_primary_moves_the_vip_across_the_fabric(tmp_path, topology, scenario):
    summary, requests, events = run_on(topology, scenario, tmp_path)
    connected = {detail(e)["switch"] for e in events if e["kind"] == "switch_connected"}
    assert connected == ({"edge1", "edge2", "edge3", "core1", "core2"} if topology == "two-tier"
                         else {"leaf1", "leaf2", "leaf3", "spine1", "spine2"})
    assert moves(events) == ["secondary"]
    assert served_after(requests, 0) - {"secondary"} == {"primary"}
    assert served_after(requests, summary["fault_at"] + 1.0) == {"secondary"}
    assert summary["acked_writes_lost"] == 0, summary
    # A cut-off primary gets no heartbeat of the replication monitor either (which reaches it by
    # its local socket): the databases end the same after a link-down too.
    assert summary["db_consistent"] is True, summary
    assert summary["vip_moves_before_fault"] == 0
    assert cables_verified(events) == ALL_CABLES[topology]  # by LLDP, each as planned


ALL_CABLES = {"two-tier": {f"edge{i}-core{j}" for i in (1, 2, 3) for j in (1, 2)},
              "leaf-spine": {f"leaf{i}-spine{j}" for i in (1, 2, 3) for j in (1, 2)}}


def cables_verified(events) -> set[str]:
    assert not [e for e in events if e["kind"] == "cable_miswired"], events
    return {detail(e)["link"] for e in events if e["kind"] == "cable_verified"}


# two-tier core-link-down runs in the lab guide's exercise 13 (tests/integration/test_lab_guide.py),
# with and without the switch's groups, and is checked there for the same.
@pytest.mark.parametrize(("topology", "scenario", "cables"), [
    ("leaf-spine", "core-switch-down", {"leaf1-spine1", "leaf2-spine1", "leaf3-spine1"}),
    ("two-tier", "edge-link-flap", {"edge1-core1"}),  # down and up five times
])
def test_a_cut_between_switches_is_rerouted_without_a_failover(tmp_path, topology, scenario, cables):
    summary, requests, events = run_on(topology, scenario, tmp_path)
    cut = {detail(e)["link"] for e in events if e["kind"] == "link_status" and not detail(e)["up"]}
    assert cut == cables, events  # the controller heard each cable go down (once each)
    assert cables_verified(events) == ALL_CABLES[topology]
    assert moves(events) == [] and summary["vip_moves"] == 0
    assert served_after(requests, 0) == {"primary"}  # the primary served before, during, after
    assert summary["acked_writes_lost"] == 0 and summary["db_consistent"] is True, summary
    assert summary["interruption_ms"] is not None
    assert summary["availability_pct"] > 99, summary


def test_a_fabric_scenario_on_one_switch_is_refused_with_what_to_add(tmp_path):
    argv = [sys.executable, "-m", "experiments", "run", "core-link-down", "--out", str(tmp_path)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--topology two-tier" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []
