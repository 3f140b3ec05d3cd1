"""A single run's progress lines (experiments/testbed/progress.py): each phase's words, and the
controller's log read as it grows."""

from __future__ import annotations

import json

import pytest

from experiments.testbed.progress import ControllerWatch, Progress, phase_text

FAULT_AT = 1000.0


@pytest.mark.parametrize(("kind", "fields", "line"), [
    ("testbed_ready", {"active": "primary"}, "ready: primary holds the VIP"),
    ("load_started", {"detail": "200 req/s for 20 s"}, "load started: 200 req/s for 20 s"),
    ("fault", {"server": "primary", "detail": "primary-crash"}, "fault injected: primary-crash on primary"),
    ("vip_moved", {"server": "secondary", "time": 1000.0224, "reason": "primary is down"},
     "VIP moved to secondary, 22 ms after the fault (primary is down)"),
    ("server_down", {"server": "primary"}, "the controller marked primary down"),
    ("load_finished", {}, "load finished"),
    ("flows_installed", {}, None),  # not a phase
    ("db_writable", {"server": "secondary"}, None),
])
def test_each_phase_reads_as_one_line(kind, fields, line):
    assert phase_text(kind, fields, FAULT_AT) == line


def test_a_vip_move_before_any_fault_says_no_time_after_it():
    assert phase_text("vip_moved", {"server": "secondary", "time": 5.0}, None) == "VIP moved to secondary"


def test_lines_carry_the_seconds_since_the_start_and_the_first_fault_times_the_move():
    lines: list[str] = []
    now = [50.0]
    progress = Progress(lines.append, clock=lambda: now[0])
    now[0] = 62.25
    progress.event("fault", {"time": FAULT_AT, "server": "primary", "detail": "primary-crash"})
    progress.event("flows_installed", {"time": FAULT_AT})
    progress.event("vip_moved", {"time": FAULT_AT + 0.031, "server": "secondary"})
    assert lines == ["  +12.2 s  fault injected: primary-crash on primary",
                     "  +12.2 s  VIP moved to secondary, 31 ms after the fault"]


def test_the_controllers_log_is_read_as_it_grows_and_only_its_phases_pass(tmp_path):
    log = tmp_path / "controller-events.jsonl"
    log.write_text(json.dumps({"kind": "vip_installed", "server": "primary"}) + "\n")
    lines: list[str] = []
    watch = ControllerWatch(log, Progress(lines.append))
    assert watch.read() == []  # what was there: not a phase
    with open(log, "a") as f:
        f.write(json.dumps({"kind": "server_down", "server": "primary"}) + "\n")
        f.write(json.dumps({"kind": "flows_installed"}) + "\n")
        f.write('{"kind": "vip_moved", "ser')  # still being written: waits for its newline
    assert [e["kind"] for e in watch.read()] == ["server_down"]
    with open(log, "a") as f:
        f.write('ver": "secondary"}\n')
    assert watch.read() == [{"kind": "vip_moved", "server": "secondary"}]
