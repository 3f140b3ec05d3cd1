"""`clean` removes exactly what a dead run's state file lists, and never a stranger.

Fast and safe on any machine: the processes are `sleep`s these tests start themselves, the
state files list no bridge, interface or cgroup (Open vSwitch and Mininet are never touched),
and the lock is a file under the test's own folder.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import experiments.__main__ as cli
from experiments.testbed import cleanup
from experiments.testbed.cleanup import clean
from services.runner import ProcessRunner, RunState, boot_id, is_recorded_process, process_record, start_time

# The command the throw-away processes run. Records are made from it, as ProcessRunner makes
# them from the command it started: /proc/PID/cmdline read right after the start can still be
# empty while the exec is under way.
SLEEP = ["sleep", "60"]


def record_of(process: subprocess.Popen) -> dict:
    return process_record(process.pid, SLEEP)


@pytest.fixture
def sleeper():
    """Starts throw-away `sleep 60` processes (each in a session of its own, as runs do);
    whatever is left of them is killed at the end of the test."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        process = subprocess.Popen(SLEEP, start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture(autouse=True)
def no_commands(monkeypatch):
    """No test here may run ovs-vsctl or ip: fail loudly if cleanup ever tries."""
    def refuse(cmd):
        raise AssertionError(f"a unit test ran {cmd}")

    monkeypatch.setattr(cleanup, "_run", refuse)


def dead_owner() -> tuple[int, int | None]:
    """(PID, start time) of a process that has exited and been waited for. The start time goes
    with the PID, as a run records its own: on a busy machine (pid_max 32768, a testbed starting
    processes meanwhile) the PID alone may already be another process's."""
    process = subprocess.Popen(["sleep", "30"])
    started = start_time(process.pid)
    process.kill()
    process.wait()
    return process.pid, started


def write_state(folder: Path, owner_pid: int | None = None, **lists) -> Path:
    """A state.json as a run writes it; by default its owner is dead (a run killed with SIGKILL)."""
    folder.mkdir(parents=True, exist_ok=True)
    pid, started = dead_owner() if owner_pid is None else (owner_pid, start_time(owner_pid))
    data = {
        "owner_pid": pid,
        "owner_start_time": started,
        "boot_id": boot_id(),
        "processes": {}, "shells": {}, "bridges": [], "interfaces": [], "cgroups": [], "folders": [],
    }
    data.update(lists)
    path = folder / "state.json"
    path.write_text(json.dumps(data))
    return path


def test_a_dead_runs_process_is_killed_and_the_state_emptied(tmp_path, sleeper):
    sleep = sleeper()
    path = write_state(tmp_path / "run", processes={"db": record_of(sleep)})
    problems: list[str] = []

    removed = clean(tmp_path, problems=problems)

    assert sleep.wait(timeout=5) == -9
    assert removed == [f"killed process db (pid {sleep.pid} and its process group)"]
    assert problems == []
    state = json.loads(path.read_text())
    assert state["processes"] == {} and "cleaned_at" in state


def test_a_pid_whose_start_time_differs_is_not_killed(tmp_path, sleeper):
    sleep = sleeper()
    reused = record_of(sleep)
    reused["start_time"] -= 1  # the recorded process started earlier: this PID was reused since
    write_state(tmp_path / "run", processes={"db": reused})

    assert clean(tmp_path) == []
    assert sleep.poll() is None


def test_a_pid_whose_command_line_differs_is_not_killed(tmp_path, sleeper):
    sleep = sleeper()
    other = record_of(sleep)
    other["cmdline"] = ["sleep", "61"]
    write_state(tmp_path / "run", processes={"db": other})

    assert clean(tmp_path) == []
    assert sleep.poll() is None


def test_a_pid_recorded_without_its_identity_is_left_alone(tmp_path, sleeper):
    sleep = sleeper()
    write_state(tmp_path / "run", processes={"db": sleep.pid})  # an older state file: the PID only
    problems: list[str] = []

    assert clean(tmp_path, problems=problems) == []
    assert sleep.poll() is None
    assert "recorded without its start time" in problems[0]


def test_the_command_line_may_have_lost_its_wrapper(sleeper):
    # nsenter and cgexec exec the command: the process keeps its PID and start time, and its
    # command line becomes the tail of the one recorded when it started.
    sleep = sleeper()
    record = record_of(sleep)
    record["cmdline"] = ["nsenter", "--net=/proc/1/ns/net", "cgexec", "-g", "cpu:/x", "sleep", "60"]
    assert is_recorded_process(record)
    assert not is_recorded_process({**record, "cmdline": []})
    assert not is_recorded_process({**record, "start_time": None})


def test_a_mininet_shell_is_killed_too(tmp_path, sleeper):
    shell = sleeper()
    net = SimpleNamespace(controllers=[], switches=[], hosts=[SimpleNamespace(name="client", shell=shell,
                                                                              pid=shell.pid)])
    state = RunState(tmp_path / "run" / "state.json")
    state.path.parent.mkdir()
    state.record_mininet_shells(net)
    data = json.loads(state.path.read_text())
    assert data["shells"]["client"]["pid"] == shell.pid
    data["owner_pid"], data["owner_start_time"] = dead_owner()  # as if the run was killed
    state.path.write_text(json.dumps(data))

    assert clean(tmp_path) == [f"killed Mininet shell client (pid {shell.pid} and its process group)"]
    assert shell.wait(timeout=5) == -9


def test_only_hatb_folders_in_the_temp_folder_are_deleted(tmp_path):
    ours = Path(tempfile.mkdtemp(prefix="hatb-"))
    (ours / "secrets").mkdir()
    not_in_temp = tmp_path / "hatb-elsewhere"
    not_in_temp.mkdir()
    not_ours = Path(tempfile.mkdtemp(prefix="keep-"))
    link = Path(tempfile.gettempdir()) / f"hatb-link{os.getpid()}"
    link.symlink_to(not_in_temp)
    try:
        sneaky = f"{ours}/../{not_ours.name}"  # normalised, it is /tmp/keep-*: not ours
        write_state(tmp_path / "run", folders=[str(ours), str(not_in_temp), sneaky, str(link), "relative"])
        problems: list[str] = []

        assert clean(tmp_path, problems=problems) == [f"deleted folder {ours}"]
        assert not ours.exists()
        assert not_in_temp.is_dir() and not_ours.is_dir() and link.is_symlink()
        assert len(problems) == 4 and all("left alone" in p for p in problems)
    finally:
        link.unlink(missing_ok=True)
        shutil.rmtree(ours, ignore_errors=True)
        shutil.rmtree(not_ours, ignore_errors=True)


def test_names_that_are_not_ours_never_reach_a_command(tmp_path):
    write_state(tmp_path / "run", bridges=["--all"], interfaces=["../eth0", "a" * 16], cgroups=["../cpu"])
    problems: list[str] = []

    assert clean(tmp_path, problems=problems) == []  # `no_commands` fails the test on any command
    assert len(problems) == 4


def test_a_live_owner_means_an_active_run_and_is_skipped(tmp_path, sleeper):
    sleep = sleeper()
    path = write_state(tmp_path / "run", owner_pid=os.getpid(), processes={"db": record_of(sleep)})
    before = path.read_text()
    problems: list[str] = []

    assert clean(tmp_path, problems=problems) == []
    assert sleep.poll() is None
    assert path.read_text() == before
    assert "still active" in problems[0]


def test_an_owner_pid_reused_by_another_process_is_not_the_run(tmp_path, sleeper):
    sleep = sleeper()
    path = write_state(tmp_path / "run", owner_pid=os.getpid(), processes={"db": record_of(sleep)})
    data = json.loads(path.read_text())
    data["owner_start_time"] -= 1
    path.write_text(json.dumps(data))

    assert len(clean(tmp_path)) == 1
    assert sleep.wait(timeout=5) == -9


def test_cleaning_twice_does_nothing_the_second_time(tmp_path, sleeper):
    sleep = sleeper()
    ours = Path(tempfile.mkdtemp(prefix="hatb-"))
    path = write_state(tmp_path / "run", processes={"db": record_of(sleep)}, folders=[str(ours)])
    try:
        assert len(clean(tmp_path)) == 2
        after_first = path.read_text()
        problems: list[str] = []
        assert clean(tmp_path, problems=problems) == []
        assert problems == []
        assert path.read_text() == after_first
    finally:
        shutil.rmtree(ours, ignore_errors=True)


def test_dry_run_removes_nothing(tmp_path, sleeper):
    sleep = sleeper()
    ours = Path(tempfile.mkdtemp(prefix="hatb-"))
    path = write_state(tmp_path / "run", processes={"db": record_of(sleep)}, folders=[str(ours)])
    before = path.read_text()
    try:
        assert clean(tmp_path, dry_run=True) == [
            f"would kill process db (pid {sleep.pid} and its process group)",
            f"would delete folder {ours}",
        ]
        assert sleep.poll() is None and ours.is_dir()
        assert path.read_text() == before
    finally:
        shutil.rmtree(ours, ignore_errors=True)


def test_the_process_runner_records_identities_and_forgets_stopped_processes(tmp_path):
    state = RunState(tmp_path / "state.json")
    runner = ProcessRunner(tmp_path, state)
    process = runner.start("sleeper", ["sleep", "60"])
    try:
        data = json.loads(state.path.read_text())
        record = data["processes"]["sleeper"]
        assert record["pid"] == process.pid and record["cmdline"] == ["sleep", "60"]
        assert is_recorded_process(record)
        assert data["owner_pid"] == os.getpid() and data["owner_start_time"] == start_time(os.getpid())
    finally:
        runner.stop("sleeper")
    assert json.loads(state.path.read_text())["processes"] == {}


def test_the_command_line_says_nothing_to_clean_and_takes_the_lock(tmp_path, monkeypatch, capsys):
    name = f"sdn-ha-test-{os.getpid()}-{tmp_path.name}"
    monkeypatch.setattr("experiments.cli.common.LOCK_NAME", name)
    assert cli.main(["clean", "--results", str(tmp_path / "results")]) == 0
    assert capsys.readouterr().out == "nothing to clean\n"

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as held:
        held.bind("\0" + name)  # as an active run holds it
        assert cli.main(["clean", "--results", str(tmp_path / "results")]) == cli.USAGE_ERROR
    assert "cannot clean now: another testbed run is active" in capsys.readouterr().err


@pytest.mark.parametrize(
    "commands, error",
    [
        ({"a": ["true"], "b": ["true"]}, None),
        ({"a": ["false"], "b": ["true"]}, "a failed with code 1"),
        ({"a": ["true"], "b": ["sh", "-c", "echo broken >&2; exit 3"]}, "b failed with code 3"),
        ({"a": ["sleep", "60"], "b": ["sleep", "60"]}, "a did not finish in 1 s"),
    ],
)
def test_one_shot_commands_run_together_and_the_first_failure_is_said(tmp_path, commands, error):
    """`run_all` waits for every command, forgets each one it waited for, stops the ones past
    the time-out, and raises about the first that failed; nothing is left running."""
    state = RunState(tmp_path / "state.json")
    runner = ProcessRunner(tmp_path, state)
    if error is None:
        runner.run_all(commands, timeout=10)
    else:
        with pytest.raises(Exception, match=error):
            runner.run_all(commands, timeout=1)
    assert json.loads(state.path.read_text())["processes"] == {}
    assert not any(runner.processes[name].running() for name in commands)


def test_stopping_everything_signals_all_at_once_and_kills_what_stays(tmp_path):
    """Three processes that, on SIGTERM, wait until all three have had it go by themselves
    (exit 0): they were signalled together, not one after the other's end. One that ignores
    SIGTERM is killed when the time-out is up; nothing is left recorded."""
    state = RunState(tmp_path / "state.json")
    runner = ProcessRunner(tmp_path, state)
    marks = tmp_path / "marks"
    marks.mkdir()
    wait_for_all = f"until [ $(ls {marks} | wc -l) -ge 3 ]; do sleep 0.02; done"
    together = f"trap 'touch {marks}/$$; {wait_for_all}; exit 0' TERM; while true; do sleep 0.02; done"
    stubborn = ["bash", "-c", f"trap '' TERM; touch {tmp_path}/ready; while true; do sleep 0.02; done"]
    started = [runner.start(f"slow{k}", ["bash", "-c", together]) for k in range(3)]
    started.append(runner.start("stubborn", stubborn))
    try:
        runner.wait_for("the traps are set", lambda: (tmp_path / "ready").exists(), timeout=10)
        time.sleep(0.2)  # bash sets a trap before its loop; the slow ones started first
    finally:
        runner.stop_all(timeout=3.0)  # also when the test fails: nothing left running
    assert not any(process.running() for process in started)
    assert json.loads(state.path.read_text())["processes"] == {}
    assert [p.popen.returncode for p in started[:3]] == [0, 0, 0]  # they went on SIGTERM, together
    assert started[3].popen.returncode == -9
