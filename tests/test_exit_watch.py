"""When a killed process has gone: the runner's exit watch (services/runner.py) on real
processes, and the experiment log recording what a witness saw a moment ago."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

from experiments.results.records import ExperimentLog
from services.runner import ExitWatch, descendants


def group_with_a_child() -> subprocess.Popen:
    """A shell in a session of its own, with a child of its own (as gunicorn and its workers)."""
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & exec sleep 30"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(descendants(shell.pid)) < 2:
        assert time.monotonic() < deadline, "the shell's child did not start"
        time.sleep(0.01)
    return shell


def test_the_watch_sees_the_last_of_the_group_exit():
    shell = group_with_a_child()
    watch = ExitWatch(shell.pid)
    assert len(watch.fds) == 2
    before = time.time()
    os.killpg(shell.pid, signal.SIGKILL)
    gone_at = watch.wait(5.0)
    shell.wait()
    assert gone_at is not None and before <= gone_at <= time.time()
    assert watch.fds == []  # closed


def test_a_process_that_lives_on_is_not_reported_gone():
    shell = group_with_a_child()
    try:
        assert ExitWatch(shell.pid).wait(0.2) is None
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


def test_a_process_already_gone_leaves_nothing_to_watch():
    done = subprocess.Popen(["true"])
    done.wait()
    watch = ExitWatch(done.pid)
    assert watch.fds == [] and watch.wait(0.1) is not None


def test_the_log_records_a_past_time_from_any_thread_and_drops_what_comes_after_close(tmp_path):
    log = ExperimentLog(tmp_path / "events.jsonl")
    threads = [threading.Thread(target=log.record, args=("kernel_saw",), kwargs={"at": 100.0 + i, "n": i})
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert log.record("late", at=200.0) == 200.0
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sorted(e["time"] for e in events) == [100.0 + i for i in range(8)]
    assert {e["kind"] for e in events} == {"kernel_saw"}
