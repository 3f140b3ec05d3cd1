"""The fence's effects (controller/fencing.py): each action runs in a thread of its own and
its result is reported, never raised; a database that is gone or hung is a failure in time.

What to do, and when, is the policy's (tests/test_fence_policy.py); here no MariaDB runs:
the database is a stand-in for `set_read_only`, a socket path with nothing behind it, or a
UNIX socket that accepts and never answers.
"""

import socket
import threading
import time

import pytest

from controller import fencing
from controller.fence_policy import FenceAction
from controller.fencing import DatabaseFence
from services.mariadb import socket_path


class Reports:
    """Collects what the fence reports, from whichever thread, and waits for it."""

    def __init__(self):
        self.results = []
        self.arrived = threading.Event()

    def __call__(self, action, ok, detail):
        self.results.append((action, ok, detail))
        self.arrived.set()

    def wait(self, timeout=5.0):
        assert self.arrived.wait(timeout), "no result reported"
        return self.results


def test_an_attempt_sets_the_servers_database_and_reports_success(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fencing, "set_read_only", lambda *args: calls.append(args))
    reports = Reports()
    action = FenceAction("primary", True, 1.0)
    DatabaseFence(tmp_path, reports).attempt(action)
    assert calls == [(socket_path(tmp_path, "primary"), True, 1.0)]
    assert reports.results == [(action, True, "")]


def test_a_database_that_is_gone_is_reported_as_a_failure(tmp_path):
    reports = Reports()
    action = FenceAction("secondary", False, 1.0)
    DatabaseFence(tmp_path, reports).attempt(action)  # no socket there: refused at once
    ((reported, ok, detail),) = reports.results
    assert (reported, ok) == (action, False) and "No such file" in detail


def test_a_hung_database_fails_within_the_actions_time_out(tmp_path):
    # Accepts the connection (the kernel does, from the backlog) and never says a word.
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    socket_path(tmp_path, "primary").parent.mkdir()
    hung.bind(str(socket_path(tmp_path, "primary")))
    hung.listen(1)
    try:
        reports = Reports()
        start = time.monotonic()
        DatabaseFence(tmp_path, reports).attempt(FenceAction("primary", True, 0.2))
        elapsed = time.monotonic() - start
    finally:
        hung.close()
    ((_, ok, detail),) = reports.results
    assert not ok and detail
    assert 0.15 < elapsed < 2.0


def test_run_returns_at_once_and_reports_from_its_own_thread(tmp_path, monkeypatch):
    release = threading.Event()
    threads = []

    def slow_database(*_args):
        threads.append(threading.current_thread())
        release.wait(5)

    monkeypatch.setattr(fencing, "set_read_only", slow_database)
    reports = Reports()
    start = time.monotonic()
    DatabaseFence(tmp_path, reports).run(FenceAction("primary", True, 1.0))
    assert time.monotonic() - start < 0.5 and reports.results == []  # the flow message is not held up
    release.set()
    ((_, ok, _),) = reports.wait()
    assert ok and threads[0] is not threading.current_thread()


@pytest.mark.parametrize("delay_s, waits", [(0.0, []), (1.0, [1.0])])
def test_a_retry_waits_its_delay_before_trying(tmp_path, monkeypatch, delay_s, waits):
    slept, order = [], []
    monkeypatch.setattr(fencing.time, "sleep", lambda s: (slept.append(s), order.append("sleep")))
    monkeypatch.setattr(fencing, "set_read_only", lambda *_: order.append("set"))
    DatabaseFence(tmp_path, Reports()).attempt(FenceAction("primary", True, 1.0, delay_s=delay_s, attempt=2))
    assert slept == waits and order[-1] == "set"
