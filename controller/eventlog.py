"""The controller's event log: one JSON line per decision, in the run folder.

Its own module so that the experiments can name the file without importing the os-ken app.
Under keepalived or HAProxy (`failover.mechanism`), `controller/follower.py` writes it instead,
with the same kinds (`vip_installed`, `vip_moved`, `db_writable`, ...) and its own `source`:
whatever decides where the VIP goes, the experiments read its decisions from this one file.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

EVENT_LOG = "controller-events.jsonl"
RECENT_EVENTS = 20  # how many events GET /status shows


class EventLog:
    """Appends one JSON line per controller event; flushed at once so a crash loses nothing."""

    def __init__(self, path: Path, source: str = "controller") -> None:
        self.file = open(path, "a", buffering=1)
        self.source = source
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        # Writers that may meet: the app's start() and its event loop; the probe receiver (the
        # first drop of each reason) and either probe loop as it ends, from their own threads.
        self.lock = threading.Lock()

    def write(self, kind: str, at: float | None = None, **fields: object) -> None:
        """Log one event; its time is `at` (epoch seconds) when the moment it tells of came
        before the line could be written, else now."""
        record = {"time": time.time() if at is None else at, "source": self.source, "kind": kind, **fields}
        with self.lock:
            self.file.write(json.dumps(record) + "\n")
            self.recent.append(record)
