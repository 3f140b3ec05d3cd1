"""A server on another machine: the secondary on a second machine simulated on this one (an
SSH server on 127.0.0.2 with a /tmp of its own, experiments/testbed/simulated_machine.py),
reached by SSH as a real one is, its link a GRE tunnel. The head's /tmp and the other's are
two: a file the head forgot to send, or a socket it looked for in its own /tmp, fails here.
"""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from experiments.testbed.simulated_machine import SimulatedMachine
from services.runner import ProcessRunner, RunState
from tests.integration.conftest import ROOT, leftovers, read_results, run_cli
from tests.integration.test_interrupt import wait_for_file_text
from tests.integration.test_kill9 import clean
from topology.remote import RemoteMachine

FAULT_AT = 2.0


@pytest.fixture(scope="module")
def machine():
    folder = Path(tempfile.mkdtemp(prefix="sdn-ha-test-m2-", dir="/var/tmp"))  # outside the /tmp it hides
    try:
        with SimulatedMachine(folder, "127.0.0.2", 2222) as simulated:
            yield simulated
    finally:
        shutil.rmtree(folder)


def remote_tmp(machine) -> list[str]:
    """What the simulated machine's own /tmp holds (a run there leaves nothing)."""
    return RemoteMachine(machine.config()).run(["ls", "-A", "/tmp"]).stdout.split()


def test_the_runner_starts_signals_and_stops_a_process_there(machine, tmp_path):
    remote = RemoteMachine(machine.config())
    folder = f"/tmp/hatb-runner{int(time.time())}"
    remote.run(["mkdir", folder])
    assert not (tmp_path / folder).exists()  # its /tmp is not this one's
    state = RunState(tmp_path / "state.json")
    runner = ProcessRunner(tmp_path, state, remote_dir=Path(folder))
    try:
        process = runner.start("sleeper", ["sh", "-c", "echo started; sleep 60"], machine=remote)
        runner.wait_for("it says it started", lambda: "started" in process.log_path.read_text(), timeout=10)
        record = json.loads(state.path.read_text())["processes"]["sleeper"]["remote"]
        assert record["machine"] == "m2" and record["start_time"] and remote.is_recorded(record)
        runner.signal("sleeper", signal.SIGSTOP)
        stat = remote.run(["cat", f"/proc/{record['pid']}/stat"]).stdout
        assert stat[stat.rfind(")") + 2] == "T"  # stopped, there
        runner.stop_all()
        assert not remote.is_recorded(record) and not process.running()
        assert json.loads(state.path.read_text())["processes"] == {}
    finally:
        runner.stop_all()
        remote.run(["rm", "-rf", folder])


def two_machine_config(machine, folder: Path) -> Path:
    """The config of a testbed whose secondary runs on `machine` (as the README shows it)."""
    config = folder / "two-machines.toml"
    config.write_text(machine.toml() + '\n[placement]\nsecondary = "m2"\n\n[probe]\nagent = false\n\n'
                      '[[servers]]\nname = "primary"\nip = "10.0.0.11"\n\n'
                      '[[servers]]\nname = "secondary"\nip = "10.0.0.12"\n')
    return config


@pytest.mark.parametrize("scenario", ["primary-crash", "web-crash"])
def test_the_vip_moves_to_a_secondary_on_another_machine(machine, tmp_path, scenario):
    config = two_machine_config(machine, tmp_path)
    result, run_dir = run_cli(scenario, tmp_path / "out", "--config", str(config), "--duration", "6",
                              "--fault-at", str(FAULT_AT))
    summary, requests, events = read_results(run_dir)
    assert summary["active_at_end"] == "secondary" and "secondary" in summary["served_by_after"]
    assert summary["acked_writes_lost"] == 0 and summary["db_consistent"] is True, summary
    checked = [e for e in events if e["kind"] == "machine_checked"]
    assert len(checked) == 1 and "m2" in checked[0]["detail"], checked
    # The secondary's database ran there: its binary logs came back from its /tmp.
    assert list((run_dir / "secondary" / "mariadb").glob("binlog.*")), "no binary logs of the secondary"
    assert leftovers() == [] and remote_tmp(machine) == []


def test_clean_removes_what_a_killed_run_left_on_the_other_machine(machine, tmp_path):
    """SIGKILL mid-load: the secondary's processes and folder are left there; `clean` reaches
    that machine as the run's config.json says and removes them, and nothing else."""
    config = two_machine_config(machine, tmp_path)
    out = tmp_path / "out"
    with open(tmp_path / "run.log", "w") as log:
        argv = [sys.executable, "-m", "experiments", "run", "baseline", "--config", str(config),
                "--duration", "30", "--out", str(out)]
        run = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            events = wait_for_file_text(out, "experiment-events.jsonl", "load_started", timeout=90)
            run.send_signal(signal.SIGKILL)
            run.wait(10)
            state = json.loads((events.parent / "state.json").read_text())
            there = [r["remote"] for r in state["processes"].values() if "remote" in r]
            remote = RemoteMachine(machine.config())
            assert there and all(remote.is_recorded(r) for r in there), state["processes"]
            assert remote_tmp(machine) != []  # the run's folder there
            cleaned = clean(out)
            assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
            assert "on m2 and its process group" in cleaned.stdout and " on m2" in cleaned.stdout
            assert not any(remote.is_recorded(r) for r in there)
            assert leftovers() == [] and remote_tmp(machine) == []
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
            clean(out)
