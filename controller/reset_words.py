"""A reset from a server's web port, seen by the controller, becomes a word to the prober.

The clients' edge copies each reset a server's web port sends (`probe.passive`,
controller/flows.py) to the controller; the app hands its source address here. A word
decides nothing: the prober probes that server at once and its probe decides
(services/prober_words.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from services.prober_words import WordSender
from topology.config import HostPlan

WORD_GAP_S = 0.02  # the least time between two words to the prober about one server


class ResetWords:
    """Words to the prober's wake socket at `wake_path`, one for each reset worth telling.
    `is_up` says whether the failover machine holds a server up; `log` writes the event log."""

    def __init__(self, server_plans: Iterable[HostPlan], wake_path: Path,
                 is_up: Callable[[str], bool], log: Callable[..., None]) -> None:
        self.server_by_ip = {plan.ip: plan.name for plan in server_plans}
        self.sender = WordSender(str(wake_path), WORD_GAP_S)
        self.is_up = is_up
        self.log = log

    def reset_seen(self, source_ip: str) -> None:
        """A server's web port reset a client's connection (a copy from the switch's reset flow):
        a word to the prober, which probes that server at once; its probe decides. At most one
        word per server every WORD_GAP_S, and none for a server already down."""
        server = self.server_by_ip.get(source_ip)
        if server is None or not self.is_up(server):
            return
        why = "a reset from its web port"
        try:
            sent = self.sender.send(server, why)
        except OSError as exc:  # no prober listens (yet): its schedule still finds the failure
            self.log("word_lost", server=server, detail=str(exc))
            return
        if sent:
            self.log("suspected", server=server, reason=why)
