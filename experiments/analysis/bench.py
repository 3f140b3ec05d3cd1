"""The benchmark's targets and verdicts: pure functions of the figures its runs recorded."""

from __future__ import annotations

import statistics
from typing import Any

# Targets from the issue "Failover controller": (scenario, statistic, limit in ms).
GAP_TARGETS = [
    ("primary-crash", "median", 100.0),
    ("primary-crash", "p95", 200.0),
    ("web-crash", "median", 100.0),
    ("web-crash", "p95", 200.0),
    # Not in that issue: a dead database is found by the same HTTP health check as a dead web
    # server, so it is held to the same targets.
    ("db-crash", "median", 100.0),
    ("db-crash", "p95", 200.0),
    ("link-down", "median", 30.0),
]


THROUGHPUT_TARGET = 0.95  # VIP throughput as a share of the direct throughput


def paired_ratio(through_vip: list[float], direct: list[float]) -> float | None:
    """The median of each round's VIP / direct ratio; None if a direct round got nothing."""
    if not direct or any(d <= 0 for d in direct):
        return None
    return round(statistics.median(v / d for v, d in zip(through_vip, direct, strict=True)), 3)


GAP_KEYS = ("failover_gap_ms", "detection_ms", "availability_pct")


def gap_figures(summary: dict[str, Any], trials: int, keys: tuple[str, ...] = GAP_KEYS) -> dict[str, Any]:
    """The figures `keys` (by default the failover gap, detection and availability) of one
    scenario, as {n, median, p95, max}, whether over 1 trial or many."""
    if trials == 1:
        one = lambda v: {"n": int(v is not None), "median": v, "p95": v, "max": v}  # noqa: E731
        return {key: one(summary.get(key)) for key in keys}
    return {key: summary[key] for key in keys}


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for scenario, statistic, limit in GAP_TARGETS:
        figures = results["scenarios"].get(scenario)
        if figures is None:
            continue
        value = figures["failover_gap_ms"][statistic]
        checks.append({
            "what": f"{scenario} failover gap {statistic}", "limit": f"<= {limit:g} ms",
            "measured": value, "met": value is not None and value <= limit,
        })
    ratio = results["throughput"]["ratio"]
    checks.append({
        "what": "throughput through the VIP / straight to the primary", "limit": f">= {THROUGHPUT_TARGET}",
        "measured": ratio, "met": ratio is not None and ratio >= THROUGHPUT_TARGET,
    })
    return checks
