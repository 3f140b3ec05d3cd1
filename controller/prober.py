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
time, server, ok, latency_ms, detail), so a run shows what the controller was told.
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
from pathlib import Path

from services.mariadb import REPLICATION_STATES
from topology.config import HostPlan, TestbedConfig

ERROR_CHARS = 200  # of a replication error, in a probe's report (a datagram)

TIMED_OUT = "timeout"  # the detail of a probe not answered within probe.timeout_s


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


class ProbeRecorder:
    """The probes' CSV, shared by the probing threads; flushed about every half second."""

    COLUMNS = ["time", "server", "ok", "latency_ms", "detail"]

    def __init__(self, path: Path) -> None:
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(self.COLUMNS)
        self.lock = threading.Lock()
        self.flushed_at = time.monotonic()

    def record(self, message: dict) -> None:
        with self.lock:
            self.writer.writerow([f"{message['time']:.6f}", message["server"], int(message["ok"]),
                                  message["latency_ms"], message["detail"]])
            if time.monotonic() - self.flushed_at > 0.5:
                self.file.flush()
                self.flushed_at = time.monotonic()


def probe_message(server: str, ok: bool, latency_ms: float, detail: str, health: dict, now: float) -> dict:
    """The report of one probe, as the controller reads it (`EventProbeResult.from_datagram`):
    the GTID position and the database's mode come from a passed probe's body."""
    return {
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


def probe_loop(
    server: HostPlan, config: TestbedConfig, report: socket.socket, target: str, recorder: ProbeRecorder
) -> None:
    next_at = time.monotonic()
    while True:
        ok, latency_ms, detail, health = probe_once(server.ip, config.web.port, config.probe.timeout_s)
        message = probe_message(server.name, ok, latency_ms, detail, health, time.time())
        send_report(report, target, message)
        recorder.record(message)
        next_at, delay = next_probe(next_at, config.probe.interval_s, time.monotonic())
        if delay > 0:
            time.sleep(delay)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True, help="resolved config (JSON)")
    parser.add_argument("--socket", required=True, help="the controller's probe socket")
    parser.add_argument("--out", type=Path, required=True, help="CSV file of every probe result")
    args = parser.parse_args()
    config = TestbedConfig.from_file(args.config)
    recorder = ProbeRecorder(args.out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit through `finally`: flush the CSV
    for server in config.server_plans:
        report = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        thread = threading.Thread(
            target=probe_loop, args=(server, config, report, args.socket, recorder), daemon=True
        )
        thread.start()
    try:
        while True:
            time.sleep(3600)  # the probing threads do the work; this one waits for SIGTERM
    finally:
        recorder.file.flush()


if __name__ == "__main__":
    main()
