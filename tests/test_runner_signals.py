"""An interrupt never separates a started process from its record (services/runner.py).

`subprocess.Popen` waits for the child's exec; a SIGINT or SIGTERM raised there (the command
line turns both into KeyboardInterrupt) used to leave the child running with its PID known to
no one, so stopping the run missed it: a controller of an interrupted run was found alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from services.runner import ProcessRunner, RunState, is_recorded_process, signals_held


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.fixture
def interrupts_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt, as in `python -m experiments run`."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_held_signal_is_acted_on_after_the_block(interrupts_raise: None, signum: int) -> None:
    """The signal does not cut the block short, and is not lost: it raises once the block is done."""
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signum)
            done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signum) is _interrupt  # the run's own handler is back


def test_without_a_signal_nothing_is_raised(interrupts_raise: None) -> None:
    with signals_held():
        pass
    assert signal.getsignal(signal.SIGTERM) is _interrupt


def test_an_interrupt_while_popen_waits_for_exec_leaves_the_process_recorded(
    tmp_path, monkeypatch: pytest.MonkeyPatch, interrupts_raise: None
) -> None:
    """Ctrl-C while the child is being started: start() raises, but the runner and the state
    file know the child, so stopping the run stops it."""
    real_popen = subprocess.Popen
    children: list[subprocess.Popen] = []

    def popen_interrupted(*args, **kwargs):
        children.append(real_popen(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGINT)  # as if it came while Popen read the exec pipe
        return children[-1]

    monkeypatch.setattr(subprocess, "Popen", popen_interrupted)
    state = RunState(tmp_path / "state.json")
    runner = ProcessRunner(tmp_path, state)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.start("sleeper", ["sleep", "30"])
        monkeypatch.undo()
        record = state.processes["sleeper"]
        assert is_recorded_process(record)
        runner.stop_all()
        assert state.processes == {} and not is_recorded_process(record)
    finally:
        for child in children:  # if the test fails, its child must not outlive it
            child.kill()
            child.wait()


def test_a_failed_one_shot_command_names_its_error_lines_not_only_its_epilogue(tmp_path):
    """mariadb-install-db ends with a page of advice: the ERROR line above it is the cause."""
    import json as json_

    from services.runner import ProcessRunner, RunState, StartupError

    state = RunState(tmp_path / "state.json")
    runner = ProcessRunner(tmp_path, state)
    script = "echo starting; echo '[ERROR] the cause'; for i in $(seq 20); do echo advice; done; exit 1"
    try:
        runner.run("tool", ["bash", "-c", script])
    except StartupError as error:
        message = str(error)
    else:
        raise AssertionError("a command that exits 1 must fail the run")
    assert "tool failed with code 1" in message and "says:\n[ERROR] the cause" in message
    assert message.rstrip().endswith("advice")
    assert json_.loads((tmp_path / "state.json").read_text())["processes"] == {}


def test_a_failed_one_shot_command_quotes_the_other_log_it_names(tmp_path):
    """mariadb-install-db's bootstrap server writes its cause to the server's error log, and the
    tool's own output names that file as `error.log`, which is not an error line."""
    from services.runner import ProcessRunner, RunState, StartupError

    error_log = tmp_path / "error.log"
    error_log.write_text("[Warning] could not remove\nERROR: 1051  Unknown table\n[ERROR] Aborting\n")
    runner = ProcessRunner(tmp_path, RunState(tmp_path / "state.json"))
    script = f"echo 'Examine the logs in {error_log} for more information.'; exit 1"
    try:
        runner.run("install", ["bash", "-c", script], also_log=error_log)
    except StartupError as error:
        message = str(error)
    else:
        raise AssertionError("a command that exits 1 must fail the run")
    assert "its log" in message and " ends with:\nExamine the logs" in message
    assert message.endswith(f"{error_log} says:\nERROR: 1051  Unknown table\n[ERROR] Aborting")
