"""The one-testbed-at-a-time lock: re-entrant in one process, refused to any other."""

import subprocess
import sys
from pathlib import Path

import pytest

from experiments.runlock import RunLock, RunLockBusy

ROOT = Path(__file__).resolve().parent.parent
OTHER_PROCESS = """
import sys
from pathlib import Path
from experiments.runlock import RunLock, RunLockBusy
try:
    RunLock(Path(sys.argv[1]))
except RunLockBusy as exc:
    print(exc)
    sys.exit(3)
"""


def other_process_takes(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def test_held_lock_refuses_another_process_and_names_the_holder(tmp_path):
    path = tmp_path / "lock"
    outer = RunLock(path)
    inner = RunLock(path)  # the command line holds it; its testbed takes it again
    inner.close()
    refused = other_process_takes(path)
    assert refused.returncode == 3
    assert "another testbed run is active (pid" in refused.stdout
    outer.close()
    assert other_process_takes(path).returncode == 0  # released once every holder closed


def test_closing_twice_releases_once(tmp_path):
    path = tmp_path / "lock"
    outer = RunLock(path)
    inner = RunLock(path)
    inner.close()
    inner.close()
    assert other_process_takes(path).returncode == 3  # the outer holder still has it
    outer.close()


def test_a_busy_lock_is_an_exception_with_the_reason(tmp_path):
    path = tmp_path / "lock"
    held = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                             "from experiments.runlock import RunLock\nRunLock(Path(sys.argv[1]))\n"
                             "print('held', flush=True)\ntime.sleep(30)", str(path)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"
        with pytest.raises(RunLockBusy, match=f"pid {held.pid}"):
            RunLock(path)
    finally:
        held.kill()
        held.wait()
