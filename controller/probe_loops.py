"""The controller's two probe loops, each a thread of its own, and the events they send the app.

- the receiver: the probe socket's datagrams, once checked by the probe intake
  (controller/probe_intake.py), become `EventProbeResult`s;
- the ticker: every probe interval an `EventProbeTick`, so that probe results that stopped
  arriving mark a server down.
Each runs for good (`keep_running`); if one ends anyway, /status (`alive`) and the event log
say so at once. The app (controller/app.py) owns them: it hands over how an event reaches
its own loop and how the event log is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from os_ken.controller import event
from os_ken.lib import hub

from controller.probe_intake import ProbeIntake, ProbeReceiver, keep_running, parse_report

# The event written when one of the app's own loops ends, and the /status key that says so.
PROBE_RECEIVER_DIED = "probe_receiver_died"
PROBE_TICKER_DIED = "probe_ticker_died"

LOOPS = {"receiver": PROBE_RECEIVER_DIED, "ticker": PROBE_TICKER_DIED}


class EventProbeResult(event.EventBase):
    """One health probe's result, as sent by controller/prober.py."""

    def __init__(
        self, server: str, ok: bool, latency_ms: float, detail: str,
        gtid: str | None = None, read_only: bool | None = None, timed_out: bool = False,
        replication: str | None = None, replication_error: str = "", confirming: str = "",
        late: bool = False,
    ) -> None:
        super().__init__()
        self.late = late  # the answer of a probe already reported as timed out
        self.confirming = confirming  # a probe out of schedule: the suspicion it was to confirm
        self.replication = replication  # how its database replicates (services/mariadb.py)
        self.replication_error = replication_error
        self.timed_out = timed_out
        self.server = server
        self.ok = ok
        self.latency_ms = latency_ms
        self.detail = detail
        self.gtid = gtid  # the database's GTID position, from a passed probe
        self.read_only = read_only

    @classmethod
    def from_datagram(cls, data: bytes) -> EventProbeResult:
        """Read one of the prober's datagrams; ProbeDropped (a ValueError) if it is anything
        but the prober's report (controller/probe_intake.py, `parse_report`)."""
        return cls(**parse_report(data))


class EventProbeTick(event.EventBase):
    """A probe interval passed: the failover machine judges whose probe results stopped."""


class ProbeLoops:
    """The receiver and the ticker: `send` hands an event to the app's loop, `log` writes the
    event log, `logger` is the app's. Only the PID that `pid_file` names is heard, about
    `servers` only."""

    def __init__(self, socket_path: Path, pid_file: Path | None, servers: Iterable[str], interval_s: float,
                 send: Callable[[event.EventBase], None], log: Callable[..., None],
                 logger: logging.Logger) -> None:
        self.socket_path = socket_path
        self.intake = ProbeIntake(servers, pid_file, log)
        self.interval_s = interval_s
        self.send = send
        self.log = log
        self.logger = logger
        self.receiver: ProbeReceiver | None = None
        self.alive = {name: False for name in LOOPS}

    def start(self) -> list[Any]:
        """Start both loops; their threads, for the app to own (os-ken stops them with it)."""
        # Bound before the receiving thread starts, so no early probe finds no socket.
        receiver = self.listen()
        return [self.spawn("receiver", receiver.step), self.spawn("ticker", self.tick)]

    def listen(self) -> ProbeReceiver:
        """Bind the probe socket; its datagrams, once checked, become events of the app."""
        self.receiver = ProbeReceiver(self.socket_path, self.intake, self._probe_arrived, self.interval_s)
        return self.receiver

    def _probe_arrived(self, fields: dict[str, Any]) -> None:
        """Called in the receiving thread: hand the result to the app's event loop."""
        self.send(EventProbeResult(**fields))

    def tick(self) -> None:
        """The ticking thread's step: one probe interval, then an event for the app's loop."""
        hub.sleep(self.interval_s)
        self.send(EventProbeTick())

    def spawn(self, name: str, step: Callable[[], None]) -> Any:
        """Run `step` in a thread of its own, for good: see `keep_running`. Returns the thread."""
        self.alive[name] = True
        return hub.spawn(keep_running, step, lambda why: self._ended(name, why), self.interval_s)

    def _ended(self, name: str, why: str) -> None:
        """One of the loops ended: say so at once, in /status and in the event log
        (written from the ending thread: the app's loop may be the one that is stuck)."""
        self.alive[name] = False
        self.logger.error("the probe %s ended: %s", name, why)
        self.log(LOOPS[name], reason=why)
