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


def test_a_signal_while_an_error_unwinds_the_block_is_still_raised(interrupts_raise: None) -> None:
    """A teardown after a failed start: the Ctrl-C that came during it still stops the run."""
    with pytest.raises(KeyboardInterrupt) as stopped:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            raise RuntimeError("the start failed")
    assert isinstance(stopped.value.__context__, RuntimeError)


# -- a signal during the teardown: Testbed.stop without a testbed --------------------------------


class SignalledRunner:
    """Stands in for a testbed's ProcessRunner: a stop signal arrives while it stops the processes,
    at the run and at a command of the teardown (as a Ctrl-C reaches the terminal's process group)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.stopped = False
        self.command_code: int | None = None

    def stop(self, name: str) -> None:
        pass  # the prober, stopped first: nothing to stop here

    def stop_all(self) -> None:
        command = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
        os.kill(command.pid, self.signum)
        os.kill(os.getpid(), self.signum)
        command.stdin.close()  # cat ends at the end of its input, if the signal left it running
        self.command_code = command.wait(10)
        self.stopped = True  # the signal did not cut the teardown short

    def stop_connections(self) -> None:
        pass  # no other machine


def signalled_testbed(tmp_path, signum: int):
    from experiments.testbed.testbed import Testbed
    from topology.config import TestbedConfig

    testbed = Testbed(TestbedConfig(), tmp_path)  # nothing is started: only stop() runs
    testbed.runner = SignalledRunner(signum)
    testbed.socket_dir = tmp_path / "hatb-sockets"  # what the teardown removes last
    testbed.socket_dir.mkdir(parents=True)
    return testbed


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_teardown_is_raised_once_it_is_done(
    tmp_path, interrupts_raise: None, signum: int
) -> None:
    """It used to be ignored there, and a `--trials N` run went on with its next trial."""
    testbed = signalled_testbed(tmp_path, signum)
    with pytest.raises(KeyboardInterrupt):
        testbed.stop()
    assert testbed.runner.stopped and not testbed.socket_dir.exists()  # the whole teardown ran
    assert testbed.runner.command_code == 0  # and its command was not killed
    assert signal.getsignal(signum) is _interrupt


def test_a_signal_during_a_trials_teardown_ends_the_run(
    tmp_path, monkeypatch: pytest.MonkeyPatch, interrupts_raise: None
) -> None:
    """Ctrl-C while the first of three trials cleans up: no second trial starts."""
    from experiments.runs import trial
    from experiments.testbed.scenarios import SCENARIOS
    from topology.config import TestbedConfig

    started = []

    def one_trial(config, scenario, trial_dir, drive, progress=None) -> dict:
        started.append(trial_dir.name)
        signalled_testbed(trial_dir, signal.SIGINT).stop()  # as `with Testbed` does at its end
        return {}

    monkeypatch.setattr(trial, "run_trial", one_trial)
    with pytest.raises(KeyboardInterrupt):
        trial.run_experiment(TestbedConfig(), SCENARIOS["baseline"], tmp_path, 3, progress=lambda line: None)
    assert started == ["trial-01"]


@pytest.mark.parametrize(
    "in_children, returncode",
    [
        (False, -signal.SIGTERM),  # a daemon started in the block must stay stoppable
        (True, 0),  # a teardown's command finishes its job
    ],
)
def test_a_child_of_the_block_gets_the_signals_held_only_when_asked(
    interrupts_raise: None, in_children: bool, returncode: int
) -> None:
    """A Ctrl-C reaches the terminal's whole process group, the commands of a teardown too."""
    with signals_held(in_children=in_children):
        child = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
        os.kill(child.pid, signal.SIGTERM)
        child.stdin.close()  # cat ends at the end of its input, if it is still there
        assert child.wait(10) == returncode
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # unblocked again


def test_a_signal_blocked_in_the_block_is_raised_after_it(interrupts_raise: None) -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held(in_children=True):
            os.kill(os.getpid(), signal.SIGINT)
            done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is _interrupt
