"""Tables for people: the one value formatter, Markdown tables, the printed summary of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from experiments.results import files


def _tenths(value: Any, unit: str = "") -> str:
    return format_value(value, decimals=1, unit=unit, grouped=True)


def summary_table(summary: dict[str, Any]) -> str:
    """A human-readable table of one trial's figures, or of a run of several trials."""
    if "per_trial" in summary:
        return trials_table(summary)
    before, after = summary.get("latency_ms_before") or {}, summary.get("latency_ms_after") or {}
    lag = summary.get("send_lag_ms") or {}
    rows = [
        ("scenario", summary.get("scenario")),
        ("mechanism (what moves the VIP)", summary.get("mechanism", "sdn")),
        ("requests sent", summary.get("requests_total")),
        ("requests failed", summary.get("requests_failed")),
        ("availability", _tenths(summary.get("availability_pct"), " %")),
        ("request loss overall / during the outage",
         f"{_tenths(summary.get('request_loss_pct'), ' %')} / "
         f"{_tenths(summary.get('request_loss_pct_outage'), ' %')}"),
        ("throughput before / after fault", f"{_tenths(summary.get('throughput_rps_before'))} / "
                                            f"{_tenths(summary.get('throughput_rps_after'))} req/s"),
        ("latency p50 before / after", f"{_tenths(before.get('p50'))} / {_tenths(after.get('p50'))} ms"),
        ("latency p95 before / after", f"{_tenths(before.get('p95'))} / {_tenths(after.get('p95'))} ms"),
        ("latency p99 before / after", f"{_tenths(before.get('p99'))} / {_tenths(after.get('p99'))} ms"),
        ("latency p99 from the schedule before / after",
         f"{_tenths((summary.get('latency_from_schedule_ms_before') or {}).get('p99'))} / "
         f"{_tenths((summary.get('latency_from_schedule_ms_after') or {}).get('p99'))} ms"),
        ("load generator's send lag p50 / p99 / max",
         " / ".join(_tenths(lag.get(k)) for k in ("p50", "p99", "max")) + " ms"),
        ("detection (fault -> VIP moved)", _tenths(summary.get("detection_ms"), " ms")),
        ("failover gap (last primary -> first secondary)", _tenths(summary.get("failover_gap_ms"), " ms")),
        ("served by before", _tenths(summary.get("served_by_before"))),
        ("served by after", _tenths(summary.get("served_by_after"))),
        ("acknowledged writes", summary.get("acked_writes")),
        ("acknowledged writes lost", summary.get("acked_writes_lost")),
        ("two databases seen writable at once: windows, total (at most)",
         f"{summary.get('both_writable_windows')}, {_tenths(summary.get('both_writable_ms'))} ms "
         f"({_tenths(summary.get('both_writable_max_ms'))} ms)"),
        ("VIP moves from the fault on", summary.get("vip_moves")),
        ("VIP moves before the fault (false failovers)", summary.get("vip_moves_before_fault")),
        ("longest time without a successful answer (ms)", summary.get("interruption_ms")),
        ("promoted a lagging database", "; ".join(summary.get("promoted_lagging") or []) or "no"),
        ("databases consistent after the trial", summary.get("db_consistent")),
        ("replication lag p50 / p99", f"{_tenths((summary.get('replication_lag_ms') or {}).get('p50'))} / "
                                      f"{_tenths((summary.get('replication_lag_ms') or {}).get('p99'))} ms"),
    ]
    return _aligned(rows)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _spread(figure: dict[str, Any] | None, trials: int, unit: str = "", low_is_worse: bool = False) -> str:
    """An aggregated figure (`metrics.aggregate`): its median and its worst (for most, p95 and
    max; for availability and throughput, the lowest); over how many trials when some had none."""
    if not figure or not figure.get("n"):
        return "-"
    if low_is_worse:
        text = f"median {_number(figure['median'])}, lowest {_number(figure['min'])}{unit}"
    else:
        text = (f"median {_number(figure['median'])}, p95 {_number(figure['p95'])}, "
                f"max {_number(figure['max'])}{unit}")
    return text if figure["n"] == trials else f"{text} (over {figure['n']} trials)"


def trials_table(summary: dict[str, Any]) -> str:
    """The figures of a run of several trials: the spread of each, and counts over the trials."""
    trials = summary["per_trial"]
    n = len(trials)
    checked = [t["db_consistent"] for t in trials if t.get("db_consistent") is not None]
    lost = [t.get("acked_writes_lost") or 0 for t in trials]
    rows = [
        ("scenario", f"{summary.get('scenario')}, {len(trials)} trials"),
        ("requests sent, total", _number(sum(t.get("requests_total") or 0 for t in trials))),
        ("requests failed, per trial", _spread(summary.get("requests_failed"), n)),
        ("availability", _spread(summary.get("availability_pct"), n, " %", low_is_worse=True)),
        ("throughput before / after fault",
         f"{_spread(summary.get('throughput_rps_before'), n, low_is_worse=True)} / "
         f"{_spread(summary.get('throughput_rps_after'), n, ' req/s', low_is_worse=True)}"),
        ("detection (fault -> VIP moved)", _spread(summary.get("detection_ms"), n, " ms")),
        ("failover gap (last primary -> first secondary)", _spread(summary.get("failover_gap_ms"), n, " ms")),
        ("acknowledged writes, per trial", _spread(summary.get("acked_writes"), n, low_is_worse=True)),
        ("acknowledged writes lost", f"{sum(lost)} in total, in {sum(1 for n in lost if n)} of "
                                     f"{len(trials)} trials"),
        ("two databases writable at once, per trial", _spread(summary.get("both_writable_ms"), n, " ms")),
        ("VIP moves from the fault on, per trial", _spread(summary.get("vip_moves"), n)),
        ("VIP moves before the fault, per trial", _spread(summary.get("vip_moves_before_fault"), n)),
        ("longest time without a successful answer, per trial",
         _spread(summary.get("interruption_ms"), n, " ms")),
        ("databases consistent after the trial",
         f"{sum(checked)} of {len(checked)} trials" if checked else "-"),
        ("each trial's figures", f"trial-NN/{files.SUMMARY}"),
    ]
    return _aligned(rows)


def _aligned(rows: list[tuple[str, Any]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def format_value(value: Any, decimals: int | None = None, unit: str = "", grouped: bool = False) -> str:
    """A figure as every table prints it: "-" for none; a float to at most 3 decimals, as in
    the summary, or to exactly `decimals` (with thousands separators if `grouped`); a mapping
    as "key: value, ..."; `unit` after any value but none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        text = str(round(value, 3)) if decimals is None else f"{value:{',' if grouped else ''}.{decimals}f}"
    elif isinstance(value, Mapping):
        text = ", ".join(f"{key}: {format_value(count)}" for key, count in value.items()) or "none"
    else:
        text = str(value)
    return text + unit


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, one string per line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
