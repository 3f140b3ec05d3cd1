"""Health probes: GET /health on every server, from the monitor host, through the switch.

Runs inside the Mininet `monitor` host (started by the experiment's process runner), so a
probe travels the emulated network exactly as a client request does: a dead link, host,
web server or database fails it the way it fails a client. The controller itself lives in
the root namespace, which has no route to the hosts (and must not get one), so each result
is sent to it as one JSON datagram on a UNIX socket in the run folder.

    python -m controller.prober --config RUN/config.json --socket RUN/probes.sock --out RUN/probes.csv

One thread per server, each probing every `probe.interval_s` on a fixed schedule with a
fresh connection (a kept-alive one could hide a dead server) and `probe.timeout_s` to
answer; a probe passes only on HTTP 200. Every result is also written to `--out` (CSV:
time, server, ok, latency_ms, detail, confirming), so a run shows what the controller was told.

With `probe.recheck`, a scheduled probe that fails for certain (refused, an error status) is
itself such a word: the server is probed again at once.

With `probe.late_s`, a probe that timed out is reported as such at `probe.timeout_s`, but its
connection is still read for the answer, up to `late_s` after it started, in its own thread;
an answer that passes then is reported again, `late`. A server saturated by its load answers
late; a frozen or cut-off one never does: the controller forgives a busy server's time-outs
(controller/failover.py) and so does not take a second of saturation for a failure.

With `--wake SOCKET` it also listens there for a word that a server may have failed (from the
controller, which saw the server's port reset a client's connection, or from the web service,
which lost its database): `{"server": ..., "why": ...}`. That server is probed at once, out of
its schedule, and the report says the probe was `confirming` that suspicion: the controller
takes a confirming probe that fails for certain (refused, an error status; not a time-out) as
enough to mark the server down, like HAProxy's `on-error fastinter`. A word alone decides
nothing, so anyone on the machine may send one (the socket is mode 0666): a healthy server
passes the probe. At most one confirming probe per server every WAKE_GAP_S.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from services.mariadb import REPLICATION_STATES
from services.prober_words import ANY_REASON, parse_word
from topology.config import HostPlan, TestbedConfig

ERROR_CHARS = 200  # of a replication error, in a probe's report (a datagram)
WAKE_SOCKET = "probe-wake.sock"  # in the run's private socket folder
WAKE_GAP_S = 0.005  # the least time between two probes of one server that a word can ask for
WHY_CHARS = 80  # of a suspicion's reason, in the report

TIMED_OUT = "timeout"  # the detail of a probe not answered within probe.timeout_s
LATE = "late"  # the detail of its answer, passed, within probe.late_s


def probe_once(ip: str, port: int, timeout: float) -> tuple[bool, float, str, dict]:
    """One GET /health: (passed, latency in ms, detail, the JSON body of a passed probe)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", "/health", headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        latency_ms = (time.monotonic() - start) * 1000
        if latency_ms > timeout * 1000:
            return False, latency_ms, TIMED_OUT, {}
        if response.status != 200:
            return False, latency_ms, f"HTTP {response.status}", {}
        return True, latency_ms, "", json.loads(body)
    except TimeoutError:
        return False, (time.monotonic() - start) * 1000, TIMED_OUT, {}
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return False, (time.monotonic() - start) * 1000, type(exc).__name__, {}
    finally:
        conn.close()


class ProbeAttempt:
    """One probe given `late_s` to answer in a thread of its own, of which the probing loop
    waits only `timeout_s` (`result`). If it gave up, an answer that passes later is handed
    to `on_late`: the server was busy, not dead."""

    def __init__(self, ip: str, port: int, timeout_s: float, late_s: float,
                 on_late: Callable[[float], None]) -> None:
        self.timeout_s = timeout_s
        self.on_late = on_late
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.outcome: tuple[bool, float, str, dict] | None = None
        self.abandoned = False
        threading.Thread(target=self._run, args=(ip, port, max(timeout_s, late_s)), daemon=True).start()

    def _run(self, ip: str, port: int, deadline_s: float) -> None:
        outcome = probe_once(ip, port, deadline_s)
        with self.lock:
            self.outcome = outcome
            late = self.abandoned
        self.done.set()
        if late and outcome[0]:
            self.on_late(outcome[1])

    def result(self) -> tuple[bool, float, str, dict]:
        """The probe's outcome within `timeout_s`: a later one is a time-out here."""
        self.done.wait(self.timeout_s)
        with self.lock:
            outcome = self.outcome
            if outcome is None:
                self.abandoned = True
                return False, self.timeout_s * 1000, TIMED_OUT, {}
        ok, latency_ms, detail, health = outcome
        if latency_ms > self.timeout_s * 1000:  # answered, but after the time-out
            return False, latency_ms, TIMED_OUT, {}
        return outcome


def probe(server: HostPlan, config: TestbedConfig, on_late: Callable[[float], None]
          ) -> tuple[bool, float, str, dict]:
    """Probe `server` once within `probe.timeout_s`, leaving a late answer to `on_late` when
    `probe.late_s` is on."""
    if not config.probe.late_s:
        return probe_once(server.ip, config.web.port, config.probe.timeout_s)
    return ProbeAttempt(server.ip, config.web.port, config.probe.timeout_s, config.probe.late_s,
                        on_late).result()


class ProbeRecorder:
    """The probes' CSV, shared by the probing threads; flushed about every half second."""

    COLUMNS = ["time", "server", "ok", "latency_ms", "detail", "confirming"]

    def __init__(self, path: Path) -> None:
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(self.COLUMNS)
        self.lock = threading.Lock()
        self.flushed_at = time.monotonic()

    def record(self, message: dict) -> None:
        with self.lock:
            self.writer.writerow([f"{message['time']:.6f}", message["server"], int(message["ok"]),
                                  message["latency_ms"], message["detail"], message.get("confirming", "")])
            if time.monotonic() - self.flushed_at > 0.5:
                self.file.flush()
                self.flushed_at = time.monotonic()


def probe_message(server: str, ok: bool, latency_ms: float, detail: str, health: dict, now: float,
                  confirming: str = "", late: bool = False) -> dict:
    """The report of one probe, as the controller reads it (`EventProbeResult.from_datagram`):
    the GTID position and the database's mode come from a passed probe's body; `confirming`
    is the suspicion a probe out of schedule was asked to confirm ("" for a scheduled one);
    `late`: the passed answer of a probe reported before as timed out."""
    return {
        "late": late,
        "server": server,
        "ok": ok,
        "latency_ms": round(latency_ms, 3),
        "detail": detail,
        "timed_out": detail == TIMED_OUT,
        "time": now,
        "gtid": health.get("gtid"),
        "read_only": health.get("read_only"),
        # Passed on only when it is one of the states /health gives: anything else is no news.
        "replication": health.get("replication") if health.get("replication") in REPLICATION_STATES else None,
        "replication_error": str(health.get("replication_error") or "")[:ERROR_CHARS],
        "confirming": confirming[:WHY_CHARS],
    }


def send_report(report: socket.socket, target: str, message: dict) -> bool:
    """Send one probe's report to the controller's socket; False if no one is listening."""
    try:
        report.sendto(json.dumps(message).encode(), target)
    except OSError:
        return False  # the controller is not listening (yet, or any more): the next probe tries again
    return True


def next_probe(next_at: float, interval: float, now: float) -> tuple[float, float]:
    """When the probe after the one due at `next_at` is due, and how long to sleep until then.
    A probe that ran late starts the schedule again from `now`: a burst of probes to catch up
    would only load a server that is already slow."""
    next_at += interval
    delay = next_at - now
    if delay > 0:
        return next_at, delay
    return now, 0.0


class Wake:
    """A word that one server may have failed: its probe runs now, out of schedule."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.why = ""

    def ask(self, why: str) -> None:
        self.why = why
        self.event.set()

    def wait(self, delay: float) -> str:
        """Sleep `delay`, or less if a word comes: the word's reason, or "" for the schedule."""
        if not self.event.wait(delay):
            return ""
        self.event.clear()
        return self.why or ANY_REASON


def probe_loop(
    server: HostPlan, config: TestbedConfig, report: socket.socket, target: str, recorder: ProbeRecorder,
    wake: Wake | None = None,
) -> None:
    def answered_late(latency_ms: float) -> None:
        message = probe_message(server.name, True, latency_ms, LATE, {}, time.time(), late=True)
        send_report(report, target, message)
        recorder.record(message)

    next_at = time.monotonic()
    confirming = ""
    while True:
        started = time.monotonic()
        ok, latency_ms, detail, health = probe(server, config, answered_late)
        message = probe_message(server.name, ok, latency_ms, detail, health, time.time(), confirming)
        send_report(report, target, message)
        recorder.record(message)
        if not confirming:  # a probe out of schedule leaves the schedule as it was
            next_at, _ = next_probe(next_at, config.probe.interval_s, time.monotonic())
            if wake is not None and config.probe.recheck and not ok and detail != TIMED_OUT:
                wake.ask(f"a failed probe ({detail})")  # checked again at once
        if wake is None:
            time.sleep(max(0.0, next_at - time.monotonic()))
            continue
        # A word may cut the wait short, but never to less than WAKE_GAP_S after the last probe.
        time.sleep(max(0.0, started + WAKE_GAP_S - time.monotonic()))
        confirming = wake.wait(max(0.0, next_at - time.monotonic()))


def listen_for_words(path: Path, wakes: dict[str, Wake]) -> None:
    """Receive words on `path` and wake the probe of the server each names, forever."""
    try:
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(str(path))
        path.chmod(0o666)  # the web service, an unprivileged account, sends too: see the docstring
        while True:
            word = parse_word(listener.recv(512), set(wakes))
            if word is not None:
                wakes[word[0]].ask(word[1])
    except OSError as exc:  # the probes go on by their schedule: slower, and said
        print(f"prober: no more words on {path}: {exc}; probing by the schedule alone",
              file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True, help="resolved config (JSON)")
    parser.add_argument("--socket", required=True, help="the controller's probe socket")
    parser.add_argument("--out", type=Path, required=True, help="CSV file of every probe result")
    parser.add_argument("--wake", type=Path,
                        help="socket to listen on for words that a server may have failed")
    args = parser.parse_args()
    config = TestbedConfig.from_file(args.config)
    recorder = ProbeRecorder(args.out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit through `finally`: flush the CSV
    wakes = {server.name: Wake() for server in config.server_plans} if args.wake else {}
    if args.wake:
        threading.Thread(target=listen_for_words, args=(args.wake, wakes), daemon=True).start()
    for server in config.server_plans:
        report = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        thread = threading.Thread(
            target=probe_loop, args=(server, config, report, args.socket, recorder, wakes.get(server.name)),
            daemon=True,
        )
        thread.start()
    try:
        while True:
            time.sleep(3600)  # the probing threads do the work; this one waits for SIGTERM
    finally:
        recorder.file.flush()


if __name__ == "__main__":
    main()
