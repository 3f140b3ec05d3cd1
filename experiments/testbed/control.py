"""Talking to the running controller: its status and its commands over HTTP, and what its
event log says, always parsed as JSON.

The status endpoint listens on 127.0.0.1 of the root namespace (controller/status.py); a
command carries the run's token.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from controller.failover import VIP_ADOPTED, VIP_INSTALLED, VIP_MOVED
from experiments.results.records import read_events

# The controller's event kinds for "the VIP is on the switch": put there, or found there.
PLACEMENTS = (VIP_INSTALLED, VIP_ADOPTED)


class ControllerClient:
    def __init__(self, status_port: int, token: str) -> None:
        self.url = f"http://127.0.0.1:{status_port}"
        self.token = token

    def status(self) -> dict[str, Any]:
        """GET /status; OSError (or ValueError) while the controller cannot answer it."""
        code, body = self._call(urllib.request.Request(f"{self.url}/status"))
        if code != 200:
            raise OSError(f"GET /status answered {code}: {body}")
        return body

    def command(self, name: str) -> tuple[int, dict[str, Any]]:
        """POST a command (`failover`, `failback`) with the run's token: (HTTP status, body)."""
        request = urllib.request.Request(f"{self.url}/command/{name}", data=b"", method="POST")
        request.add_header("Authorization", f"Bearer {self.token}")
        return self._call(request)

    def active_server(self) -> str | None:
        """Who holds the VIP, as the controller says; None while it cannot say."""
        try:
            return self.status().get("active")
        except (OSError, ValueError):
            return None

    def server_up(self, server: str) -> bool:
        """Whether the controller counts `server` up; False while it cannot say."""
        try:
            return bool(self.status()["servers"][server]["up"])
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def _call(self, request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


def vip_placements(event_log: Path) -> int:
    """How many times a controller has placed the VIP on the switch (installed or adopted)."""
    if not event_log.exists():
        return 0
    return sum(1 for event in read_events(event_log) if event["kind"] in PLACEMENTS)


def placed_on(event: dict[str, Any]) -> str | None:
    """The server an event of the controller's (or the follower's) log put the VIP on, if any."""
    if event.get("kind") in (VIP_MOVED, *PLACEMENTS) and event.get("server"):
        return event["server"]
    return None


def active_from_log(event_log: Path, default: str) -> str:
    """Who holds the VIP, from the controller's (or the follower's) own log of its decisions:
    the last server it placed the VIP on (installed, moved or adopted), `default` if none."""
    active = default
    if event_log.exists():
        for event in read_events(event_log):
            active = placed_on(event) or active
    return active


class HolderFromLog:
    """Who holds the VIP as the event log says, asked again and again (every heartbeat of the
    replication monitor): each call reads only the lines added since the last one."""

    def __init__(self, event_log: Path) -> None:
        self.event_log = event_log
        self.offset = 0
        self.holder: str | None = None
        self.lock = threading.Lock()  # the monitor's threads may ask at once

    def __call__(self) -> str | None:
        with self.lock:
            try:
                with open(self.event_log, "rb") as log:
                    log.seek(self.offset)
                    added = log.read()
            except FileNotFoundError:
                return self.holder
            complete = added[: added.rfind(b"\n") + 1]  # a line still being written waits
            self.offset += len(complete)
            for line in complete.splitlines():
                try:
                    self.holder = placed_on(json.loads(line)) or self.holder
                except ValueError:
                    continue
            return self.holder
