"""What the controller accepts on its probe socket, and what it drops.

The probe socket is a file: anything on the machine that can write to it can send to it, and
one datagram `[]` once ended the receiving thread, after which the controller heard no probe
and said nothing. So every datagram is checked before it becomes a probe result, and the
loop that receives them cannot be ended by what it receives:

- `parse_report`: a datagram is the prober's report (controller/prober.py, `probe_message`)
  or it is dropped: one JSON object, UTF-8, with the expected types (`ok` a JSON boolean, not
  "no"; `latency_ms` a finite number >= 0; a GTID position that parses).
- `ProbeIntake`: also drops a datagram larger than the receive buffer (the kernel cut it),
  one that carried other ancillary data (file descriptors), one from another process than the
  prober (its PID, from the kernel's SCM_CREDENTIALS, against the PID file the testbed
  writes; while that file names no PID, every sender), and one naming no configured server.
  It counts every drop by reason, for /status, and writes the first drop of each reason to
  the event log, once: a flood must not fill the disk.
- `ProbeReceiver` and `keep_running`: the socket and the loop. Each datagram is handled
  inside a catch-all that counts it; if the loop ends anyway, whoever started it is told.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.gtid import parse_gtid
from services.mariadb import REPLICATION_STATES

LOG = logging.getLogger(__name__)

# The prober's report is about 250 bytes; a datagram over this is cut by the kernel (MSG_TRUNC).
MAX_DATAGRAM = 4096
SHOWN_BYTES = 80  # how much of a dropped datagram the event log shows

# Why a datagram was dropped: the keys of /status's `probes_dropped`.
NOT_JSON = "not_json"  # not UTF-8, not JSON, or JSON's non-standard NaN / Infinity
NOT_AN_OBJECT = "not_an_object"
BAD_FIELD = "bad_field"  # a field missing, of the wrong type or out of range, or given twice
OVERSIZE = "oversize"
ANCILLARY = "ancillary"  # it carried more than the sender's credentials (file descriptors)
UNKNOWN_SERVER = "unknown_server"
FOREIGN_SENDER = "foreign_sender"  # not sent by the PID the prober's PID file names
# The PID file is absent or holds no PID (the testbed writes it just after the prober starts,
# so its first reports can land here): no sender can be told to be the prober.
PROBER_UNKNOWN = "prober_unknown"
RECEIVE_ERROR = "receive_error"  # the socket itself failed
ERROR = "error"  # anything else that went wrong with one datagram

PROBE_DROPPED = "probe_dropped"  # the first drop of a reason (foreign senders: below)
FOREIGN_PROBE_REFUSED = "foreign_probe_refused"  # the first datagram from another PID

CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid


class LoopEnded(Exception):  # no "Error" in its name: it is how a loop ends, not a failure
    """Raised by a step of `keep_running` to end its loop; the message says why."""


class ProbeDropped(ValueError):
    """A datagram that is not a probe result; `reason` is one of the constants above."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# -- the report ------------------------------------------------------------------------

_REQUIRED = object()


def parse_report(data: bytes) -> dict[str, Any]:
    """The fields of `EventProbeResult` from one of the prober's datagrams, or ProbeDropped."""
    message = _decode(data)
    if not isinstance(message, dict):
        raise ProbeDropped(NOT_AN_OBJECT, type(message).__name__)
    fields = {
        "server": _field(message, "server", str),
        "ok": _field(message, "ok", bool),
        "latency_ms": _number(message, "latency_ms"),
        "detail": _field(message, "detail", str, ""),
        "gtid": _gtid(message),
        "read_only": _field(message, "read_only", bool, None, nullable=True),
        "timed_out": _field(message, "timed_out", bool, False),
        "replication": _field(message, "replication", str, None, nullable=True),
        "replication_error": _field(message, "replication_error", str, ""),
        "confirming": _field(message, "confirming", str, ""),
        "late": _field(message, "late", bool, False),
    }
    if fields["replication"] not in (None, *REPLICATION_STATES):
        raise ProbeDropped(BAD_FIELD, "replication")
    if "time" in message:  # sent by the prober, not used: still it must be what it says
        _number(message, "time")
    if fields["ok"] and fields["timed_out"]:
        raise ProbeDropped(BAD_FIELD, "ok and timed_out")
    if fields["late"] and not fields["ok"]:
        raise ProbeDropped(BAD_FIELD, "late and not ok")  # only a late answer that passed is sent
    return fields


def _decode(data: bytes) -> Any:
    # Explicit UTF-8: json.loads would take UTF-16 or UTF-32 bytes as well.
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=_unique)
    except ProbeDropped:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: [[[[...
        raise ProbeDropped(NOT_JSON, type(exc).__name__) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with `"ok": false, "ok": true` another reader
    could take the other value."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ProbeDropped(BAD_FIELD, "a key given twice")
    return dict(pairs)


def _field(message: dict, name: str, kind: type, default: Any = _REQUIRED, nullable: bool = False) -> Any:
    if name not in message:
        if default is _REQUIRED:
            raise ProbeDropped(BAD_FIELD, f"no {name}")
        return default
    value = message[name]
    if value is None and nullable:
        return None
    if not isinstance(value, kind):
        raise ProbeDropped(BAD_FIELD, f"{name} is {type(value).__name__}")
    return value


def _number(message: dict, name: str) -> float:
    value = message.get(name)
    # bool is an int in Python: `true` is no latency.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProbeDropped(BAD_FIELD, f"{name} is {type(value).__name__}")
    if not math.isfinite(value) or value < 0:  # 1e999 is JSON, and reads as inf
        raise ProbeDropped(BAD_FIELD, f"{name} is {value}")
    return float(value)


def _gtid(message: dict) -> str | None:
    gtid = _field(message, "gtid", str, None, nullable=True)
    if gtid is not None:
        try:
            parse_gtid(gtid)  # a bad one would raise later, in the failback's caught-up check
        except ValueError:
            raise ProbeDropped(BAD_FIELD, "gtid does not parse") from None
    return gtid


# -- the datagram and its sender -------------------------------------------------------


@dataclass(frozen=True)
class Datagram:
    data: bytes
    pid: int | None  # the sender's, from SCM_CREDENTIALS; None if the kernel gave none
    truncated: bool = False  # longer than MAX_DATAGRAM: the kernel cut it
    ancillary_lost: bool = False  # it carried more ancillary data than the credentials


def read_pid(path: Path) -> int | None:
    """The PID in a PID file (one line, the decimal PID); None if absent or not one."""
    try:
        with open(path, "rb") as f:
            text = f.read(32).strip()
    except OSError:
        return None
    if not text.isdigit() or not 0 < int(text) < 2**31:  # bytes.isdigit: ASCII digits only
        return None
    return int(text)


class ProbeIntake:
    """Checks each datagram, counts what it drops by reason, logs each reason's first drop.

    Used by the receiving thread; `counts` is read by the app's event loop, hence the lock.
    `log` is EventLog.write. With `pid_file` None every sender is heard (unit tests of other
    things); with one, only the PID it names: it is read again whenever a datagram comes from
    a PID other than the one known, for the prober starts after the controller and may be
    started again.
    """

    def __init__(self, servers: Iterable[str], pid_file: Path | None, log: Callable[..., None]) -> None:
        self.servers = frozenset(servers)
        self.pid_file = pid_file
        self.prober_pid: int | None = None
        self.log = log
        self.dropped: Counter[str] = Counter()
        self.lock = threading.Lock()

    def admit(self, datagram: Datagram) -> dict[str, Any] | None:
        """The probe result's fields, or None when the datagram is dropped (and counted)."""
        try:
            return self._check(datagram)
        except ProbeDropped as drop:
            self.drop(drop.reason, datagram.data, datagram.pid, drop.detail)
            return None

    def _check(self, datagram: Datagram) -> dict[str, Any]:
        if datagram.truncated:
            raise ProbeDropped(OVERSIZE, f"over {MAX_DATAGRAM} bytes")
        if datagram.ancillary_lost:
            raise ProbeDropped(ANCILLARY)
        self._check_sender(datagram.pid)
        fields = parse_report(datagram.data)
        if fields["server"] not in self.servers:
            raise ProbeDropped(UNKNOWN_SERVER)
        return fields

    def _check_sender(self, pid: int | None) -> None:
        if self.pid_file is None or (pid is not None and pid == self.prober_pid):
            return
        self.prober_pid = read_pid(self.pid_file)
        if self.prober_pid is None:
            raise ProbeDropped(PROBER_UNKNOWN, f"no PID in {self.pid_file}")
        if pid != self.prober_pid:  # None too: a datagram without credentials proves nothing
            raise ProbeDropped(FOREIGN_SENDER)

    def drop(self, reason: str, data: bytes = b"", pid: int | None = None, detail: str = "") -> None:
        """Count a dropped datagram; the first of its reason goes to the event log."""
        with self.lock:
            self.dropped[reason] += 1
            first = self.dropped[reason] == 1
        if not first:
            return
        fields: dict[str, object] = {"reason": reason, "datagram": repr(data[:SHOWN_BYTES]), "pid": pid}
        if detail:
            fields["detail"] = detail
        if reason == FOREIGN_SENDER:
            self.log(FOREIGN_PROBE_REFUSED, **fields, prober_pid=self.prober_pid)
        else:
            self.log(PROBE_DROPPED, **fields)
        LOG.warning("dropped a probe datagram (%s; later ones of this reason are only counted): %r",
                    reason, data[:SHOWN_BYTES])

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.dropped)


# -- the socket and the loop -----------------------------------------------------------


def open_probe_socket(path: Path) -> socket.socket:
    """The probe socket, bound at `path`, told to pass each sender's credentials (Linux)."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(str(path))
    return sock


def receive_datagram(sock: socket.socket) -> Datagram:
    """One datagram, with its sender's PID. The ancillary buffer holds the credentials only:
    file descriptors a sender passes do not fit, so the kernel closes them (MSG_CTRUNC)
    instead of opening them in this process."""
    data, ancillary, flags, _address = sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(CREDENTIALS.size))
    pid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= CREDENTIALS.size:
            pid = CREDENTIALS.unpack_from(payload)[0]
    return Datagram(data, pid, bool(flags & socket.MSG_TRUNC), bool(flags & socket.MSG_CTRUNC))


class ProbeReceiver:
    """The probe socket: each datagram checked by the intake, each result handed to `deliver`
    (which passes it to the app's event loop)."""

    def __init__(self, path: Path, intake: ProbeIntake, deliver: Callable[[dict[str, Any]], None],
                 pause_s: float) -> None:
        self.socket = open_probe_socket(path)
        self.intake = intake
        self.deliver = deliver
        self.pause_s = pause_s  # after the socket itself failed: a failure that repeats must not spin

    def step(self) -> None:
        """Receive and handle one datagram; LoopEnded once the socket is closed."""
        if self.socket.fileno() == -1:
            raise LoopEnded("the probe socket is closed")
        try:
            datagram = receive_datagram(self.socket)
        except OSError as exc:
            self.intake.drop(RECEIVE_ERROR, detail=repr(exc))
            time.sleep(self.pause_s)
            return
        try:
            fields = self.intake.admit(datagram)
            if fields is not None:
                self.deliver(fields)
        except Exception as exc:  # noqa: BLE001 - no datagram may end the loop: count it, go on
            self.intake.drop(ERROR, datagram.data, datagram.pid, repr(exc))


def keep_running(step: Callable[[], None], ended: Callable[[str], None], pause_s: float) -> None:
    """A thread's body: call `step` again and again, until it raises LoopEnded. Any other
    exception it lets out is logged and the loop goes on after `pause_s`; whatever ends the
    loop, `ended` is told why. (os-ken's native hub ends a thread on an exception without a
    word: its TaskExit is Exception.)"""
    why = "unknown"
    try:
        while True:
            try:
                step()
            except LoopEnded as end:
                why = str(end)
                return
            except Exception:  # noqa: BLE001 - the loop is what must not end
                LOG.exception("a step of a controller loop failed; the loop goes on")
                time.sleep(pause_s)
    except BaseException as exc:
        why = repr(exc)
        raise
    finally:
        ended(why)
