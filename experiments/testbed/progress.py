"""What a single `run` prints while it runs: each phase as it happens, with the time since the start.

    +0.0 s  starting the testbed: network, databases, web servers, controller
    +2.9 s  network up: s1 and 4 hosts
   +10.2 s  databases up, replicating master-master
   +15.9 s  ready: primary holds the VIP 10.0.0.100
   +16.0 s  load started: 200 req/s for 20 s
   +26.0 s  fault injected: primary-crash on primary
   +26.0 s  VIP moved to secondary, 22 ms after the fault (primary is down)
   +36.0 s  load finished
   +36.2 s  checking every acknowledged write against the databases

The experiment's own events reach `event` as they are recorded (the testbed's event log
calls it); the controller's come from its event log, which `ControllerWatch` reads as it
grows. `phase_text` turns an event into its line, or None for events that are no phase.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

WATCH_EVERY_S = 0.05  # how often the controller's event log is read while the load runs
CONTROLLER_PHASES = ("vip_moved", "server_down", "no_healthy_server")


def phase_text(kind: str, fields: Mapping[str, Any], fault_at: float | None) -> str | None:
    """The progress line of one event (without its time), or None if it is no phase."""
    server = fields.get("server") or fields.get("active") or ""
    if kind == "testbed_ready":
        return f"ready: {server} holds the VIP"
    if kind == "load_started":
        return f"load started: {fields.get('detail') or ''}".rstrip(": ")
    if kind == "fault":
        return f"fault injected: {fields.get('detail') or 'a fault'} on {server}"
    if kind == "load_finished":
        return "load finished"
    if kind == "vip_moved":
        after = ""
        if fault_at is not None and isinstance(fields.get("time"), int | float):
            after = f", {(fields['time'] - fault_at) * 1000:.0f} ms after the fault"
        reason = f" ({fields['reason']})" if fields.get("reason") else ""
        return f"VIP moved to {server}{after}{reason}"
    if kind == "server_down":
        return f"the controller marked {server} down"
    if kind == "no_healthy_server":
        return "no server is up: the VIP stays where it is"
    return None


class Progress:
    """Prints the phases of one run, each with the seconds since the run started."""

    def __init__(
        self, out: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.out = out
        self.clock = clock
        self.started = clock()
        self.fault_at: float | None = None  # epoch seconds of the first fault, for "ms after"
        self.lock = threading.Lock()  # the watcher's thread prints too

    def say(self, text: str) -> None:
        with self.lock:
            self.out(f"{self.clock() - self.started:+7.1f} s  {text}")

    def event(self, kind: str, fields: Mapping[str, Any]) -> None:
        """An event as it is recorded (`fields` with its `time`); printed if it is a phase."""
        if kind == "fault" and self.fault_at is None:
            self.fault_at = fields.get("time")
        text = phase_text(kind, fields, self.fault_at)
        if text is not None:
            self.say(text)


class ControllerWatch:
    """Reads the controller's event log as it grows, in a thread, and passes its phases on."""

    def __init__(self, path: Path, progress: Progress) -> None:
        self.path = path
        self.progress = progress
        self.offset = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="progress-watch", daemon=True)

    def start(self) -> None:
        self.read()  # what is there already (the controller's start) is no phase of the run
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        for event in self.read():  # what came since the last look
            self.progress.event(event["kind"], event)

    def _watch(self) -> None:
        while not self.stopping.wait(WATCH_EVERY_S):
            for event in self.read():
                self.progress.event(event["kind"], event)

    def read(self) -> list[dict[str, Any]]:
        """The complete lines added since the last read, as events."""
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        events = []
        for line in complete.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line the controller is still writing never gets here (no newline yet)
            if isinstance(event, dict) and event.get("kind") in CONTROLLER_PHASES:
                events.append(event)
        return events
