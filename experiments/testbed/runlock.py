"""One testbed at a time on a machine: a lock that every run and every Testbed takes.

Two testbeds would fight over the same switch, interface, cgroup and host names and over the
controller's loopback ports, and each would break the other in ways that look like bugs. So the
command line takes the lock before it checks anything else of the machine (`clean` takes it too:
nothing may be removed while a run creates things), and `Testbed` takes it while it runs, so a
test or a script that starts a testbed directly is refused as well.

The lock is a listening UNIX socket with an abstract name, not a lock file. What two testbeds
fight over belongs to the kernel (its network namespace, its datapath, its cgroups), and so does
an abstract name: a second checkout of the project, or a copy in a chroot or container that
shares the network, sees the same name, where each would have a lock file of its own. The
kernel frees the name when the holder dies, even by SIGKILL. The socket listens so that a
refused run can ask it who holds it (SO_PEERCRED) and name that process.

Within one process the lock is re-entrant: the command line holds it, and the testbeds it
starts take it again without waiting on themselves.
"""

from __future__ import annotations

import errno
import socket
import struct

LOCK_NAME = "sdn-ha-testbed.lock"


class RunLockBusy(Exception):
    """Another process holds the lock; the message says which and what to do."""


class RunLock:
    """The lock, held by this process until `close()` (as often as it was taken)."""

    _socket: socket.socket | None = None
    _depth = 0

    def __init__(self, name: str = LOCK_NAME) -> None:
        cls = RunLock
        if cls._depth == 0:
            cls._socket = _take(name)
        cls._depth += 1
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        cls = RunLock
        cls._depth -= 1
        if cls._depth == 0 and cls._socket is not None:
            cls._socket.close()  # closing the socket frees the name
            cls._socket = None


def holder(name: str = LOCK_NAME) -> int | None:
    """The PID of the process holding the lock `name`, or None if it is free (or will not say)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)  # a holder whose queue is full must not hang the asker
        try:
            probe.connect("\0" + name)
        except OSError:
            return None
        pid, _uid, _gid = struct.unpack("3i", probe.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        return pid


def _take(name: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not inherited by children
    try:
        sock.bind("\0" + name)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        pid = holder(name)
        owner = f"pid {pid}" if pid else "another process"
        raise RunLockBusy(f"another testbed run is active ({owner}); wait for it or stop it") from None
    sock.listen(16)
    return sock
