"""The nemesis's pure parts: its seeded draw of faults, and the invariants it checks.

A chaos run (experiments/runs/chaos.py) draws faults one after another from `draw_faults`
(the same seed, the same faults), injects each, recovers it after its hold, waits until the
testbed is whole again and pauses. All along it samples the controller's status; afterwards
these functions judge what was recorded, as Jepsen's checkers do:

- one writer: never more than one writable database (read-only.csv; metrics.writable_windows);
- the VIP on a server that is up: from a fault's detection bound on until its recovery, the
  VIP is not on the server the fault took down, and the server holding it is up;
- bounded probe age: while the prober runs, no server's last probe result is older than the
  silence budget (plus the status sampler's own margin), and a result older than the budget
  is always shown stale;
- no acknowledged write lost, unless semi-synchronous replication had fallen back.

Each check returns its violations (dicts: invariant, time, detail) and how many times it
held; tests/test_chaos.py tests them with tables.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from experiments.analysis.metrics import writable_windows

SERVER_FAULTS = ("server-crash", "web-crash", "db-crash", "hang", "link-flap")  # on one server
TESTBED_FAULTS = ("replication-cut", "controller-restart", "prober-kill")
KINDS = SERVER_FAULTS + TESTBED_FAULTS
# How long after a fault on the active server the VIP must be elsewhere. A crash or a link
# down is seen on the port at once; a dead web server or database by `fall` failed probes
# (3 x 40 ms); a frozen one by `timeout_fall` timed-out probes (20 x 40 ms + 35 ms). Each
# bound has room for a loaded 2-core machine, and is far below what a failure to act means.
DETECTION_BOUND_S = {"server-crash": 1.0, "link-flap": 1.0, "web-crash": 1.0, "db-crash": 1.0, "hang": 2.0}
# How long each fault holds (uniform between the two): a hang outlasts its detection bound.
HOLD_S = {"server-crash": (1.0, 4.0), "web-crash": (1.0, 4.0), "db-crash": (1.0, 4.0), "hang": (2.5, 4.0),
          "link-flap": (1.0, 2.0), "replication-cut": (1.0, 4.0), "controller-restart": (0.5, 3.0),
          "prober-kill": (0.5, 3.0)}
PAUSE_S = (1.0, 3.0)  # between a fault's recovery (the testbed whole again) and the next
ON_ACTIVE_SHARE = 0.75  # a server fault hits the server holding the VIP this often, else a standby
# The status sampler asks every 0.2 s and an answer can take a while on a loaded machine: a
# probe age read in a status is older than the controller's own view by up to this much.
STATUS_MARGIN_S = 0.5


@dataclass(frozen=True)
class PlannedFault:
    """A fault the nemesis will inject: its kind, whom it hits, how long it holds, the pause after."""

    kind: str
    on_active: bool  # server faults: the server holding the VIP (else a standby); others: False
    hold_s: float
    pause_s: float


def draw_faults(seed: int) -> Iterator[PlannedFault]:
    """An endless seeded sequence of faults: the run takes them until its time is up."""
    rng = random.Random(seed)
    while True:
        kind = rng.choice(KINDS)
        on_active = kind in SERVER_FAULTS and rng.random() < ON_ACTIVE_SHARE
        low, high = HOLD_S[kind]
        yield PlannedFault(kind, on_active, round(rng.uniform(low, high), 3), round(rng.uniform(*PAUSE_S), 3))


def violation(invariant: str, at: float, detail: str) -> dict[str, Any]:
    return {"invariant": invariant, "time": round(at, 6), "detail": detail}


def check_one_writer(read_only_rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Every window in which more than one database was seen writable (even for an instant: both
    answered so); checked at every sample."""
    found = [violation("one writer", start, f"two databases seen writable for {(end - start) * 1000:.1f} ms")
             for start, end in writable_windows(read_only_rows, seen=True)]
    return found, len(read_only_rows)


def check_vip_placement(faults: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]]
                        ) -> tuple[list[dict[str, Any]], int]:
    """From each fault's detection bound to its recovery, the VIP is not on the server the fault
    took down, and the server holding it is up. `faults` are the run's (kind, server, on_active,
    at, recovered_at); `samples` the status samples (time, active, servers: {name: {up}})."""
    found, checked = [], 0
    for fault in faults:
        bound = DETECTION_BOUND_S.get(fault["kind"])
        if bound is None or not fault["on_active"]:
            continue
        start, end = fault["at"] + bound, fault["recovered_at"]
        for sample in samples:
            if not start <= sample["time"] < end or sample.get("active") is None:
                continue
            checked += 1
            active = sample["active"]
            if active == fault["server"]:
                found.append(violation("VIP on a server that is up", sample["time"],
                                       f"{fault['kind']} of {active}: the VIP still on it {bound:g} s after"))
            elif not (sample.get("servers") or {}).get(active, {}).get("up"):
                found.append(violation("VIP on a server that is up", sample["time"],
                                       f"{fault['kind']} of {fault['server']}: the VIP on {active}, "
                                       "which the controller counts down"))
    return found, checked


def check_probe_age(samples: Sequence[Mapping[str, Any]], budget_s: float,
                    prober_down: Sequence[tuple[float, float]]) -> tuple[list[dict[str, Any]], int]:
    """While the prober runs (outside `prober_down`: from its kill until it was up again plus the
    budget), every server's probe age is within the budget; and an age over the budget is
    always shown stale."""
    found, checked = [], 0
    for sample in samples:
        prober_runs = not any(start <= sample["time"] <= end + budget_s for start, end in prober_down)
        for server, state in (sample.get("servers") or {}).items():
            age = state.get("last_probe_age_s")
            if age is None:
                continue
            checked += 1
            if age > budget_s and not state.get("probe_stale"):
                found.append(violation("stale shown as stale", sample["time"],
                                       f"{server}'s last probe is {age:g} s old, over the {budget_s:g} s "
                                       "budget, and not shown stale"))
            elif prober_runs and age > budget_s + STATUS_MARGIN_S:
                found.append(violation("bounded probe age", sample["time"],
                                       f"{server}'s last probe is {age:g} s old while the prober runs"))
    return found, checked


def check_writes(summary: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """No acknowledged write lost, unless semi-synchronous replication had fallen back."""
    lost = summary.get("acked_writes_lost") or 0
    if lost and not summary.get("semi_sync_fell_back"):
        return [violation("no acknowledged write lost", 0.0, f"{lost} acknowledged write(s) lost")], 1
    return [], 1


def judge(faults: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]],
          read_only_rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], budget_s: float
          ) -> dict[str, Any]:
    """Every invariant over the whole run: the violations in time order, and the counts."""
    prober_down = [(f["at"], f["healthy_at"]) for f in faults if f["kind"] == "prober-kill"]
    results = {
        "one writer": check_one_writer(read_only_rows),
        "VIP on a server that is up": check_vip_placement(faults, samples),
        "bounded probe age": check_probe_age(samples, budget_s, prober_down),
        "no acknowledged write lost": check_writes(summary),
    }
    violations = sorted((v for found, _ in results.values() for v in found), key=lambda v: v["time"])
    return {"checked": {name: count for name, (_, count) in results.items()},
            "invariants_checked": sum(count for _, count in results.values()),
            "violations": violations}
