"""Fencing by the database: only the server that holds the VIP can be written to.

Flows are the first fence (an old primary gets no client traffic). This is the second: every
database starts read-only, the controller makes the active server's database writable when
the VIP lands on it, sets the database of the server that lost the VIP read-only (trying again
every second until it answers: a frozen server may wake up), and sets any other server's
database back to read-only as soon as a probe shows it writable (a restart, say). The app's
account cannot bypass `read_only`, so even a request that reached a fenced server could not
write.

The controller reaches each database over its local UNIX socket in the run's socket folder:
the databases are the testbed's own, on this machine. Every change is made in a background
thread, after the VIP flow is sent: the server being fenced may be hung, and a CPU-limited
server can take tens of milliseconds to answer, which must not delay the failover itself
(a write reaching the new active in those milliseconds gets a clear "read-only" error).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pymysql

from services.mariadb import set_read_only, socket_path

PROMOTE_TIMEOUT_S = 2.0
RETRY_AFTER_S = 1.0  # a failed or repeated attempt on the same server waits this long
FENCE_FOR_S = 60.0  # how long the controller keeps trying to fence a server that lost the VIP


class DatabaseFence:
    def __init__(self, socket_dir: Path, log: Callable[..., None]) -> None:
        self.socket_dir = socket_dir
        self.log = log
        self.last_attempt: dict[tuple[str, bool], float] = {}
        self.lock = threading.Lock()

    def make_writable(self, server: str) -> None:
        """Promote `server`'s database (the VIP just landed on it), in the background."""
        self._note_attempt(server, False)
        threading.Thread(target=self._set, args=(server, False, PROMOTE_TIMEOUT_S), daemon=True).start()

    def make_read_only(self, server: str) -> None:
        """Fence `server`'s database (it just lost the VIP): keep trying in the background until
        it answers, for a server that lost the VIP may be frozen and wake up later."""
        self._note_attempt(server, True)
        threading.Thread(target=self._fence_until_done, args=(server,), daemon=True).start()

    def _fence_until_done(self, server: str) -> None:
        deadline = time.monotonic() + FENCE_FOR_S
        reported = False
        while time.monotonic() < deadline:
            if self._set(server, True, RETRY_AFTER_S, report_failure=not reported):
                return
            reported = True  # one "fence_failed" is enough; the success, if it comes, is logged too
            time.sleep(RETRY_AFTER_S)

    def reconcile(self, server: str, read_only: bool, should_be_read_only: bool) -> None:
        """A probe saw `server`'s database `read_only`; correct it in the background if wrong."""
        if read_only == should_be_read_only or not self._note_attempt(server, should_be_read_only):
            return
        threading.Thread(target=self._set, args=(server, should_be_read_only, 2.0), daemon=True).start()

    def _note_attempt(self, server: str, read_only: bool) -> bool:
        """Record an attempt; False if the same one was made less than RETRY_AFTER_S ago."""
        now = time.monotonic()
        with self.lock:
            last = self.last_attempt.get((server, read_only))
            if last is not None and now - last < RETRY_AFTER_S:
                return False
            self.last_attempt[(server, read_only)] = now
            return True

    def _set(self, server: str, read_only: bool, timeout: float, report_failure: bool = True) -> bool:
        try:
            set_read_only(socket_path(self.socket_dir, server), read_only, timeout)
        except (pymysql.MySQLError, OSError) as exc:
            if report_failure:
                self.log("fence_failed", server=server, read_only=read_only, detail=str(exc))
            return False
        self.log("db_read_only" if read_only else "db_writable", server=server)
        return True
