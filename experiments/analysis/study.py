"""The published study's figures, before and after the failover, and its findings: pure.

The study this testbed follows ran two web servers with MySQL master-master replication,
failed the primary over, and measured throughput, request loss, response time and
availability before and after. It found them lower after the failover *because the secondary
is the weaker machine*, the replicated databases always equal, and replication time
negligible. `study_row` gives one load rate's figures (medians over its trials) from the
trials' summaries; `findings` puts each of the study's findings beside what was measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from experiments.analysis.metrics import percentile

# A change smaller than this share of the figure is "no change": the noise of one machine.
CHANGE_SHARE = 0.05
FIGURES = ("throughput_rps", "loss_pct", "latency_p50_ms", "latency_p95_ms", "availability_pct")


def window_figures(trial: Mapping[str, Any], window: str) -> dict[str, float | None]:
    """A trial's figures in one window ("before" or "after" the fault)."""
    served = trial.get(f"served_by_{window}") or {}
    ok, failed = sum(served.values()), trial.get(f"requests_failed_{window}") or 0
    latency = trial.get(f"latency_ms_{window}") or {}
    sent = ok + failed
    return {
        "throughput_rps": trial.get(f"throughput_rps_{window}"),
        "loss_pct": round(failed / sent * 100, 3) if sent else None,
        "latency_p50_ms": latency.get("p50"),
        "latency_p95_ms": latency.get("p95"),
        "availability_pct": round(ok / sent * 100, 3) if sent else None,
    }


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(percentile(known, 50), 3) if known else None


def study_row(rate: float, trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One rate's figures, before and after, each the median over the trials, and the change."""
    row: dict[str, Any] = {"rate": rate, "trials": len(trials)}
    for window in ("before", "after"):
        per_trial = [window_figures(t, window) for t in trials]
        row[window] = {name: _median([f[name] for f in per_trial]) for name in FIGURES}
    row["change"] = {name: None if row["before"][name] is None or row["after"][name] is None
                     else round(row["after"][name] - row["before"][name], 3) for name in FIGURES}
    row["db_consistent"] = all(t.get("db_consistent") is True for t in trials)
    lags = [(t.get("replication_lag_ms") or {}).get("p99") for t in trials]
    row["replication_lag_p99_ms"] = _median(lags)
    return row


def _changed(row: Mapping[str, Any], name: str, lower_is_worse: bool) -> str:
    """"worse", "better" or "same" after the failover, for one figure of one rate."""
    before, after = row["before"][name], row["after"][name]
    if before is None or after is None:
        return "unknown"
    scale = max(abs(before), 1e-9)
    if abs(after - before) <= CHANGE_SHARE * scale:
        return "same"
    worse = after < before if lower_is_worse else after > before
    return "worse" if worse else "better"


def _verdict(worse: Sequence[float], rates: Sequence[float]) -> str:
    if not worse:
        return "not seen at any rate"
    if len(worse) == len(rates):
        return "supported at every rate"
    if list(worse) == [rate for rate in rates if rate >= min(worse)]:
        return f"supported from {min(worse):g} req/s on, not below"
    return f"supported at {', '.join(f'{r:g}' for r in worse)} req/s only"


def findings(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each finding of the study with the measured figures that support or contradict it."""
    checks = [("throughput lower after the failover", "throughput_rps", True),
              ("request loss higher after the failover", "loss_pct", False),
              ("response time longer after the failover", "latency_p95_ms", False),
              ("availability lower after the failover", "availability_pct", True)]
    found = []
    for claim, name, lower_is_worse in checks:
        verdicts = {row["rate"]: _changed(row, name, lower_is_worse) for row in rows}
        worse = [rate for rate, verdict in verdicts.items() if verdict == "worse"]
        found.append({"finding": claim, "figure": name, "per_rate": verdicts, "supported_at": worse,
                      "verdict": _verdict(worse, [row["rate"] for row in rows])})
    consistent = all(row["db_consistent"] for row in rows)
    found.append({"finding": "the replicated databases always equal", "figure": "db_consistent",
                  "per_rate": {row["rate"]: row["db_consistent"] for row in rows},
                  "verdict": "supported" if consistent else "contradicted"})
    lags = [row["replication_lag_p99_ms"] for row in rows if row["replication_lag_p99_ms"] is not None]
    found.append({"finding": "the replication time negligible", "figure": "replication_lag_p99_ms",
                  "per_rate": {row["rate"]: row["replication_lag_p99_ms"] for row in rows},
                  "verdict": f"p99 at most {max(lags):g} ms" if lags else "not measured"})
    return found
