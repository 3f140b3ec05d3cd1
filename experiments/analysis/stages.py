"""Where the milliseconds of a failover go: each stage's time after the fault, from the records.

A failover passes through these stages, each read from what the trial recorded (every clock
is this machine's, in epoch seconds):

    fault injected          the experiment's `fault` event (time 0)
    kernel saw it           the kernel had the fault (`kernel_saw`): the cable's interface down,
                            or the killed server process gone with every child, its memory
                            freed and its sockets closed (experiments/testbed/faults.py); the
                            first of them in a whole crash
    switch reported         the controller heard the switch's port go down (`port_status`, down)
    suspected               a word that the server failed: the switch copied a reset from its web
                            port (`suspected`), or a probe out of schedule confirmed the server's
                            own word (probes.csv `confirming`), whichever came first
    first probe failed      the prober's first failed probe of the faulted server (probes.csv)
    controller decided      the controller marked the server down (`server_down`)
    flow sent               the VIP flow for the new server was queued to the switch (`vip_moved`)
    switch confirmed        the switch answered the barrier sent after it (`flows_installed`)
    first request to new    the first request, sent after the fault, that the new server answered
                            (requests.csv `sent_at`; any status)
    first success           the first successful answer from the new server (its `done_at`)

A stage that did not happen (no port went down in a web crash; no probe failed before a
crash was seen on the port) is None. `failover_stages_ms` returns them in this order; the
report draws them as a waterfall and the bench puts them in its table, so anyone can see
which stage dominates each scenario.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from experiments.analysis.metrics import RequestRecord

STAGES = ("kernel saw it", "switch reported", "suspected", "first probe failed", "controller decided",
          "flow sent", "switch confirmed", "first request to new", "first success")


def _first(times: Iterable[float], after: float) -> float | None:
    later = [t for t in times if t >= after]
    return min(later) if later else None


def failover_stages_ms(
    fault_at: float | None, server: str, events: Sequence[Mapping[str, Any]],
    probes: Sequence[Mapping[str, Any]], records: Sequence[RequestRecord],
) -> dict[str, float | None] | None:
    """Each stage's time in ms after the fault of `server` (the server the fault hit); None
    for the whole when there was no fault."""
    if fault_at is None:
        return None
    def of(kind: str, **match: Any) -> list[float]:
        return [e["time"] for e in events
                if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]

    moved = [e for e in events if e["kind"] == "vip_moved" and e["time"] >= fault_at]
    moved_at = min((e["time"] for e in moved), default=None)
    new = min(moved, key=lambda e: e["time"])["server"] if moved else None
    served = [r for r in records if new is not None and r.served_by == new and r.sent_at >= fault_at]
    confirming = [p["time"] for p in probes if p["server"] == server and p.get("confirming")]
    at: dict[str, float | None] = {
        "kernel saw it": _first(of("kernel_saw", server=server), fault_at),
        "switch reported": _first(of("port_status", server=server, up=False), fault_at),
        "suspected": _first([*of("suspected", server=server), *confirming], fault_at),
        "first probe failed": _first((float(p["time"]) for p in probes
                                      if p["server"] == server and not p["ok"]), fault_at),
        "controller decided": _first(of("server_down", server=server), fault_at),
        "flow sent": moved_at,
        "switch confirmed": _first(of("flows_installed", active=new), moved_at) if moved_at else None,
        "first request to new": min((r.sent_at for r in served), default=None),
        "first success": min((r.done_at for r in served if r.ok and r.done_at is not None), default=None),
    }
    return {stage: None if t is None else round((t - fault_at) * 1000, 3) for stage, t in at.items()}
