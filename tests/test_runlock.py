"""The one-testbed-at-a-time lock: re-entrant in one process, refused to any other."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.testbed.runlock import RunLock, RunLockBusy, holder

ROOT = Path(__file__).resolve().parent.parent
OTHER_PROCESS = """
import sys
from experiments.testbed.runlock import RunLock, RunLockBusy
try:
    RunLock(sys.argv[1])
except RunLockBusy as exc:
    print(exc)
    sys.exit(3)
"""


HOLDER = """
import sys, time
from experiments.testbed.runlock import RunLock
RunLock(sys.argv[1])
print('held', flush=True)
time.sleep(30)
"""


@pytest.fixture
def name(tmp_path) -> str:
    """A lock name of this test's own, so that it never meets a real run's lock."""
    return f"sdn-ha-test-{os.getpid()}-{tmp_path.name}"


def other_process_takes(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", OTHER_PROCESS, name], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def start_holder(name: str) -> subprocess.Popen:
    held = subprocess.Popen([sys.executable, "-c", HOLDER, name], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert held.stdout.readline().strip() == "held"
    return held


def test_held_lock_refuses_another_process_and_names_the_holder(name):
    outer = RunLock(name)
    inner = RunLock(name)  # the command line holds it; its testbed takes it again
    inner.close()
    refused = other_process_takes(name)
    assert refused.returncode == 3
    assert f"another testbed run is active (pid {os.getpid()})" in refused.stdout
    outer.close()
    assert other_process_takes(name).returncode == 0  # released once every holder closed


def test_closing_twice_releases_once(name):
    outer = RunLock(name)
    inner = RunLock(name)
    inner.close()
    inner.close()
    assert other_process_takes(name).returncode == 3  # the outer holder still has it
    outer.close()


def test_a_busy_lock_is_an_exception_with_the_reason(name):
    held = start_holder(name)
    try:
        with pytest.raises(RunLockBusy, match=f"pid {held.pid}"):
            RunLock(name)
        assert holder(name) == held.pid
    finally:
        held.kill()
        held.wait()


def test_a_holder_killed_with_sigkill_frees_the_lock(name):
    held = start_holder(name)
    held.send_signal(signal.SIGKILL)
    held.wait()
    assert holder(name) is None
    RunLock(name).close()


def test_the_lock_is_one_per_kernel_not_one_per_file_tree(name, tmp_path):
    """A copy of the project in another folder (or a chroot sharing the network) meets the same
    lock: the name is the kernel's, not a file of the checkout's."""
    held = start_holder(name)
    try:
        elsewhere = subprocess.run([sys.executable, "-c", OTHER_PROCESS, name], cwd=tmp_path,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)},
                                   capture_output=True, text=True, timeout=30)
        assert elsewhere.returncode == 3, elsewhere.stderr
        assert f"pid {held.pid}" in elsewhere.stdout
    finally:
        held.kill()
        held.wait()
