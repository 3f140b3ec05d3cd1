"""The controller cannot be silenced or fooled through its inputs, on the real testbed.

- Datagrams that are not the prober's (junk, or a well-formed forged report, from the root
  namespace or from a Mininet host) are dropped and counted; the controller still acts on the
  real prober's results: a web crash after them still fails over.
- A second OpenFlow connection that claims the served switch's dpid is refused, and the real
  switch keeps being served.
- The prober killed during a run: the controller says it is silent (events and /status), and
  the run fails with a message that says so.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from experiments.results import files
from experiments.results.records import read_events, read_summary
from experiments.runs.failures import TrialFailed
from experiments.runs.trial import LoadThenFault, run_trial
from experiments.testbed.scenarios import Scenario
from experiments.testbed.testbed import Testbed
from services.runner import StartupError
from tests.integration.conftest import leftovers
from tests.integration.test_security import handshake, send_case, wait_until
from topology.config import load_config

CONFIG = load_config()
VIP = CONFIG.network.vip
FORGED = json.dumps({"server": "primary", "ok": False, "latency_ms": 1.0, "detail": "forged"}).encode()
JUNK = [b"[]", b"null", b"\xff\xfe\x00binary", b"x" * 70_000, b'{"server": 5, "ok": "no"}', FORGED]


def send_datagrams(path: Path, datagrams: list[bytes], times: int = 1) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for _ in range(times):
            for datagram in datagrams:
                try:
                    sender.sendto(datagram, str(path))
                except OSError:
                    pass  # too large for a datagram: the kernel refuses it, which is fine too


def controller_events(testbed: Testbed) -> list[dict]:
    return read_events(testbed.dir / files.CONTROLLER_EVENTS)


@pytest.fixture
def testbed(tmp_path):
    with Testbed(CONFIG, tmp_path / "trial") as running:
        yield running
    assert leftovers() == []


def test_datagrams_that_are_not_the_probers_are_dropped_and_a_web_crash_still_fails_over(testbed):
    send_datagrams(testbed.probe_socket, JUNK, times=20)  # as root, from the root namespace
    # And a forged "the primary failed" from inside a Mininet host: it reaches the socket
    # (hosts share the file system), but it is not the prober.
    forge = (f"import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
             f"for _ in range(50): s.sendto({FORGED!r}, {str(testbed.probe_socket)!r})")
    testbed.host("client").cmd(f"python3 -c {json.dumps(forge)}")
    status = testbed.control.status()
    assert status["active"] == "primary", status["recent_events"][-5:]
    assert status["probes_dropped"].get("foreign_sender", 0) >= 100, status["probes_dropped"]
    assert any(e["kind"] == "foreign_probe_refused" for e in controller_events(testbed))
    assert not status["prober"]["silent"] and status["prober"]["receiver_alive"]

    testbed.faults.kill_web("primary")
    assert wait_until(lambda: testbed.control.active_server() == "secondary", timeout=5), \
        testbed.control.status()["recent_events"][-5:]
    assert wait_until(lambda: testbed.http_status("client", f"http://{VIP}/health") == 200, timeout=5)


def test_a_second_switch_with_the_served_dpid_is_refused_and_the_real_one_kept(testbed):
    impostor = send_case([handshake(dpid=1)], CONFIG.network.controller_port)  # s1's dpid
    try:
        assert wait_until(lambda: any(e["kind"] == "duplicate_switch_refused"
                                      for e in controller_events(testbed)), timeout=5)
    finally:
        impostor.close()
    assert testbed.control.status()["active"] == "primary"
    assert testbed.http_status("client", f"http://{VIP}/health") == 200
    testbed.faults.link_down("primary")  # the real switch's port event still moves the VIP
    assert wait_until(lambda: testbed.control.active_server() == "secondary", timeout=5)


def kill_the_prober(testbed: Testbed) -> None:
    testbed.faults.kill_prober()
    budget = testbed.control.status()["prober"]["budget_s"]
    assert wait_until(lambda: testbed.control.status()["prober"]["silent"], timeout=budget + 2)


def test_a_killed_prober_is_said_silent_and_fails_the_run(tmp_path):
    config = load_config(None, {"load.duration_s": 6.0, "load.fault_at_s": 2.0})
    scenario = Scenario("prober-crash", kill_the_prober, expect_failover=False)
    trial_dir = tmp_path / "trial"
    with pytest.raises(TrialFailed, match="the prober died during the trial"):
        run_trial(config, scenario.name, trial_dir, LoadThenFault(scenario))
    summary = read_summary(trial_dir)
    assert "prober_died" in summary
    kinds = [e["kind"] for e in read_events(trial_dir / files.CONTROLLER_EVENTS)]
    assert "prober_silent" in kinds
    assert leftovers() == []


def test_a_run_is_refused_while_the_controllers_port_is_taken(tmp_path):
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", CONFIG.network.controller_port))
        squatter.listen()
        with pytest.raises(StartupError, match="already in use"):
            with Testbed(CONFIG, tmp_path / "trial"):
                pass
    assert leftovers() == []
