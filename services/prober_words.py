"""A word to the prober: "this server may have failed, probe it now".

Two parts of the testbed can see a failure before the prober's schedule does: the controller,
which gets a copy of a reset from a server's web port (`probe.passive`), and the web service
itself, which loses its local database (`probe.agent`). Both say so the same way, with one JSON
datagram on the prober's wake socket (`controller.prober --wake`):

    {"server": "primary", "why": "a reset from its web port"}

A word decides nothing: the prober probes the server at once and the probe decides. So a
word may be lost (no prober listens yet) and each sender sends at most one word per server
every `gap_s`, lest a burst of failed requests become a burst of probes.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

ANY_REASON = "a word"  # what a word that gives no reason is taken to say


def encode_word(server: str, why: str) -> bytes:
    return json.dumps({"server": server, "why": why}).encode()


def parse_word(data: bytes, servers: set[str]) -> tuple[str, str] | None:
    """(server, why) from a word; None for anything else (ignored: anyone may send one)."""
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("server") not in servers:
        return None
    why = message.get("why")
    return message["server"], why if isinstance(why, str) and why else ANY_REASON


class WordSender:
    """Sends words to the wake socket at `path`, at most one per server every `gap_s`."""

    def __init__(self, path: str, gap_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.gap_s = gap_s
        self.clock = clock
        self.sent_at: dict[str, float] = {}
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def send(self, server: str, why: str) -> bool:
        """Send a word about `server`: True if sent, False if one was sent less than `gap_s`
        ago. Raises OSError when nobody listens; the caller says so or lets it be."""
        now = self.clock()
        last = self.sent_at.get(server)
        if last is not None and now - last < self.gap_s:
            return False
        self.sent_at[server] = now
        self.socket.sendto(encode_word(server, why), self.path)
        return True
