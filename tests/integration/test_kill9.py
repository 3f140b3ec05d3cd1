"""A run killed with SIGKILL leaves its state file; `clean` removes exactly what it lists."""

import json
import signal
import subprocess
import sys
from pathlib import Path

from experiments.testbed.runlock import holder
from services.runner import is_recorded_process
from tests.integration.conftest import leftovers
from tests.integration.test_interrupt import wait_for_file_text

ROOT = Path(__file__).resolve().parents[2]


def clean(results: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments", "clean", "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def test_sigkill_leaves_a_state_file_and_clean_removes_what_it_lists(tmp_path):
    out = tmp_path / "out"
    log = open(tmp_path / "run.log", "w")
    run = subprocess.Popen(
        [sys.executable, "-m", "experiments", "run", "baseline", "--duration", "30", "--out", str(out)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        events = wait_for_file_text(out, "experiment-events.jsonl", "load_started", timeout=90)
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        state = json.loads((events.parent / "state.json").read_text())
        listed = {**state["processes"], **{f"shell {n}": r for n, r in state["shells"].items()}}

        # The run had no chance to stop anything: it is all still there.
        assert "bridge s1" in leftovers()
        assert {"client", "primary", "secondary", "s1"} <= set(state["shells"])
        databases = [r for r in state["processes"].values() if "mariadbd" in r["cmdline"]]
        assert any(is_recorded_process(r) for r in databases), state["processes"]

        cleaned = clean(out)
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        assert "killed process" in cleaned.stdout and "deleted bridge s1" in cleaned.stdout
        assert leftovers() == []
        assert [name for name, record in listed.items() if is_recorded_process(record)] == []
        assert holder() is None  # the kernel freed the killed run's lock

        again = clean(out)
        assert (again.returncode, again.stdout) == (0, "nothing to clean\n"), again.stderr
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        log.close()
        clean(out)  # whatever failed above, leave the machine clean for the next test
