"""One testbed at a time on a machine: a lock file that every run and every Testbed takes.

Two testbeds would fight over the same switch, interface, cgroup and host names and over the
controller's loopback ports, and each would break the other in ways that look like bugs. So the
command line takes the lock before it checks anything else of the machine (`clean` takes it too:
nothing may be removed while a run creates things), and `Testbed` takes it while it runs, so a
test or a script that starts a testbed directly is refused as well.

Within one process the lock is re-entrant: the command line holds it, and the testbeds it
starts take it again without waiting on themselves.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_PATH = Path("/run/sdn-ha-testbed.lock")


class RunLockBusy(Exception):
    """Another process holds the lock; the message says which and what to do."""


class RunLock:
    """The lock, held by this process until `close()` (as often as it was taken)."""

    _handle: IO[str] | None = None
    _depth = 0

    def __init__(self, path: Path | None = None) -> None:
        cls = RunLock
        if cls._depth == 0:
            cls._handle = _take(path or LOCK_PATH)
        cls._depth += 1
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        cls = RunLock
        cls._depth -= 1
        if cls._depth == 0 and cls._handle is not None:
            cls._handle.close()  # closing the file releases the lock
            cls._handle = None


def _take(path: Path) -> IO[str]:
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise RunLockBusy(f"another testbed run is active (pid {owner}); wait for it or stop it") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
