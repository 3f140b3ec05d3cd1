"""The run registry: a killed run's leftovers refuse the next run until cleaned, wherever its
--out was. Real processes, a real state file; the registry is the test's own (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from experiments.testbed import registry
from experiments.testbed.cleanup import clean
from services.runner import RunState, process_record


def a_run_that_left(tmp_path: Path, processes: dict | None = None, interfaces: list | None = None) -> Path:
    """A state file as a run killed with SIGKILL leaves it, registered as that run did."""
    state = RunState(tmp_path / "elsewhere" / "run" / "state.json")
    state.path.parent.mkdir(parents=True)
    state.processes = processes or {}
    state.interfaces = interfaces or []
    state.save()
    entry = registry.register(state.path)
    # It was another run's process, long gone: an owner that is not this process, not alive.
    data = state.path.read_text().replace(f'"owner_pid": {os.getpid()}', '"owner_pid": 999999999')
    state.path.write_text(data)
    return entry


def test_nothing_registered_lets_a_run_start():
    assert registry.earlier_run_alive() is None


def test_a_killed_runs_live_process_refuses_the_next_run_until_cleaned(tmp_path: Path):
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        a_run_that_left(tmp_path, processes={"controller": process_record(orphan.pid, ["sleep", "60"])})
        problem = registry.earlier_run_alive()
        assert problem is not None and "controller" in problem and "make clean" in problem
        # clean finds it though the results folder given holds nothing: it reads the registry.
        removed = clean(tmp_path / "results-that-do-not-exist")
        assert removed == [f"killed process controller (pid {orphan.pid} and its process group)"]
        orphan.wait(5)
        assert registry.earlier_run_alive() is None
        assert registry.registered() == {}  # the entry of a run that left nothing is dropped
    finally:
        orphan.kill()
        orphan.wait()


def test_a_leftover_interface_refuses_the_next_run(tmp_path: Path):
    net = tmp_path / "sys-class-net"
    (net / "s1-eth3").mkdir(parents=True)
    data = {"interfaces": ["s1-eth3", "s1-eth4"], "processes": {}}
    assert registry.still_there(data, net) == ["s1-eth3"]


def test_a_run_whose_processes_are_gone_is_forgotten(tmp_path: Path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    record = {"pid": gone.pid, "start_time": 1, "cmdline": ["true"]}
    a_run_that_left(tmp_path, processes={"web-primary": record})
    assert registry.earlier_run_alive() is None
    assert registry.registered() == {}


def test_a_registered_state_file_that_was_deleted_is_forgotten(tmp_path: Path):
    entry = a_run_that_left(tmp_path)
    (tmp_path / "elsewhere" / "run" / "state.json").unlink()
    registry.forget_finished()
    assert not entry.exists()
