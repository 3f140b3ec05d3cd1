"""Ctrl-C in the middle of a run stops everything it started and keeps what was recorded."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import leftovers

ROOT = Path(__file__).resolve().parents[2]


def wait_for_file_text(folder: Path, name: str, text: str, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in folder.rglob(name):
            if text in path.read_text():
                return path
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {name} under {folder}")


def test_sigint_during_load_cleans_up_and_keeps_requests(tmp_path):
    run = subprocess.Popen(
        [sys.executable, "-m", "experiments", "run", "baseline", "--duration", "30", "--out", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        events = wait_for_file_text(tmp_path, "experiment-events.jsonl", "load_started", timeout=90)
        time.sleep(2)  # let some requests be recorded
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    run_dir = events.parent
    rows = (run_dir / "requests.csv").read_text().splitlines()
    assert len(rows) > 100  # header + about two seconds at 200 req/s
    assert (run_dir / "events.csv").exists()
    assert json.loads((run_dir / "state.json").read_text())["processes"] == {}
    assert leftovers() == []
