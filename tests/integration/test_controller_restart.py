"""A controller restart changes nothing: traffic flows while it is down, the VIP stays put."""

import json

from experiments.testbed.testbed import Testbed
from tests.integration.conftest import leftovers, read_results, run_cli
from topology.config import load_config

VIP = load_config().network.vip


def served_by(testbed):
    headers = testbed.host("client").cmd(f"curl -s --max-time 2 -D - -o /dev/null http://{VIP}/")
    return [line.split(": ")[1].strip() for line in headers.splitlines() if line.startswith("X-Served-By")]


def test_after_a_failover_a_restarted_controller_keeps_the_vip_on_the_secondary(tmp_path):
    with Testbed(load_config(), tmp_path) as testbed:
        testbed.faults.link_down("primary")
        testbed.runner.wait_for("the VIP moves", lambda: served_by(testbed) == ["secondary"], timeout=10)
        testbed.faults.link_up("primary")  # the primary is back and healthy: failback policy is "never"
        testbed.faults.kill_controller()
        assert served_by(testbed) == ["secondary"]  # the switch forwards without its controller
        testbed.faults.restart_controller()
        for _ in range(20):
            assert served_by(testbed) == ["secondary"]
        log = (tmp_path / "controller-events.jsonl").read_text()
        events = [json.loads(line) for line in log.splitlines()]
        kinds = [e["kind"] for e in events]
        assert kinds.count("vip_moved") == 1
        assert [e["server"] for e in events if e["kind"] == "vip_adopted"] == ["secondary"]
    assert leftovers() == []


def test_controller_restart_under_load_loses_no_request(tmp_path):
    _, run_dir = run_cli("controller-restart", tmp_path, "--duration", "8", "--fault-at", "2")
    summary, _, events = read_results(run_dir)
    assert summary["requests_failed"] == 0
    assert set(summary["served_by_before"]) == set(summary["served_by_after"]) == {"primary"}
    assert [e["kind"] for e in events if e["kind"] in ("vip_moved", "vip_adopted")] == ["vip_adopted"]
    assert (run_dir / "report.md").exists()
