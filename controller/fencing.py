"""Fencing by the database, the effects: set a database read-only or writable.

What to set, when and how often is decided by `FencePolicy` (controller/fence_policy.py);
this module only carries out its `FenceAction`s and reports how each ended. The app's
account cannot bypass `read_only`, so even a request that reached a fenced server could not
write.

The controller reaches each database over its local UNIX socket in the run's socket folder:
the databases are the testbed's own, on this machine. Every attempt is made in a background
thread, after the VIP flow is sent: the server being fenced may be hung, and a CPU-limited
server can take tens of milliseconds to answer, which must not delay the failover itself
(a write reaching the new active in those milliseconds gets a clear "read-only" error).
The thread hands the result to `report`; the app passes it to the policy in its own event
loop, so the policy is only ever called from one thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pymysql

from controller.fence_policy import FenceAction
from services.mariadb import set_read_only, socket_path
from services.power_switch import request_power_off

# report(the action, whether it succeeded, the error's text when it did not)
Report = Callable[[FenceAction, bool, str], None]


class DatabaseFence:
    """Runs fence actions against the databases' local sockets, one thread each; a power-off
    (`action.power`) goes to the testbed's power switch at `power_socket`."""

    def __init__(self, socket_dir: Path, report: Report, power_socket: Path | None = None) -> None:
        self.socket_dir = socket_dir
        self.report = report
        self.power_socket = power_socket

    def run(self, action: FenceAction) -> None:
        """Start `action` in the background; its result goes to `report`."""
        threading.Thread(target=self.attempt, args=(action,), daemon=True).start()

    def attempt(self, action: FenceAction) -> None:
        """Carry out `action` in this thread (after its delay) and report how it ended."""
        if action.delay_s > 0:
            time.sleep(action.delay_s)
        try:
            if action.power:
                if self.power_socket is None:
                    raise OSError("no power switch")
                request_power_off(self.power_socket, action.server, action.timeout_s)
            else:
                set_read_only(socket_path(self.socket_dir, action.server), action.read_only, action.timeout_s)
        except (pymysql.MySQLError, OSError) as exc:
            self.report(action, False, str(exc))
            return
        self.report(action, True, "")
