"""compare-replication's figures, table and picture: both replication modes side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experiments.analysis import metrics
from experiments.results import files
from experiments.results.records import read_requests
from experiments.results.tables import format_value

MODES = ("async", "semi-sync")


def mode_figures(run_dir: Path) -> dict[str, Any]:
    """Per-trial lost writes and gaps, and the latency of every acknowledged write, of one mode."""
    lost, gaps, consistent, write_latencies, unknown, fell_back = [], [], [], [], [], []
    for trial in files.trial_dirs(run_dir) or [run_dir]:
        summary = json.loads((trial / files.SUMMARY).read_text())
        lost.append(summary.get("acked_writes_lost"))
        unknown.append(summary.get("unknown_writes") or 0)
        fell_back.append(summary.get("semi_sync_fell_back"))
        gaps.append(summary.get("failover_gap_ms"))
        consistent.append(summary.get("db_consistent"))
        write_latencies += [
            r.latency_ms for r in read_requests(trial / files.REQUESTS)
            if r.kind == "POST" and r.ok and r.latency_ms is not None
        ]
    known_gaps = [g for g in gaps if g is not None]
    return {
        "run_dir": str(run_dir),
        "acked_writes_lost_per_trial": lost,
        "acked_writes_lost_total": sum(v for v in lost if v is not None),
        "db_consistent_trials": sum(1 for c in consistent if c),
        "unknown_writes_total": sum(unknown),
        # None under asynchronous replication: there is nothing to fall back from.
        "semi_sync_fell_back_trials": (
            None if all(f is None for f in fell_back) else sum(1 for f in fell_back if f)
        ),
        "failover_gap_ms_median": metrics.percentile(known_gaps, 50),
        "write_latency_ms": {
            "p50": metrics.percentile(write_latencies, 50),
            "p95": metrics.percentile(write_latencies, 95),
            "p99": metrics.percentile(write_latencies, 99),
        },
        "write_latencies_ms": sorted(write_latencies),
    }


def _fmt(value: Any) -> str:
    return format_value(value, decimals=1)


def comparison_table(results: dict[str, Any]) -> str:
    lines = [
        f"{results['scenario']}, {results['trials']} trial(s) per mode at {results['rate']:g} req/s",
        "",
        "| | " + " | ".join(MODES) + " |",
        "|---|" + "---|" * len(MODES),
    ]
    rows = [
        ("acknowledged writes lost, total", lambda m: _fmt(m["acked_writes_lost_total"])),
        ("acknowledged writes lost, per trial",
         lambda m: ", ".join(map(_fmt, m["acked_writes_lost_per_trial"]))),
        ("writes never answered (client time-out), total", lambda m: _fmt(m.get("unknown_writes_total"))),
        ("trials where semi-sync fell back to async", lambda m: _fmt(m.get("semi_sync_fell_back_trials"))),
        ("trials with consistent databases", lambda m: _fmt(m["db_consistent_trials"])),
        ("write latency p50 / p95 / p99 (ms)",
         lambda m: " / ".join(_fmt(m["write_latency_ms"][p]) for p in ("p50", "p95", "p99"))),
        ("failover gap, median (ms)", lambda m: _fmt(m["failover_gap_ms_median"])),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(results["modes"][mode]) for mode in MODES) + " |")
    return "\n".join(lines)


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"async": "tab:red", "semi-sync": "tab:blue"}
    fig, (lost_ax, latency_ax) = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.4
    for i, mode in enumerate(MODES):
        lost = [v or 0 for v in results["modes"][mode]["acked_writes_lost_per_trial"]]
        lost_ax.bar([t + 1 + (i - 0.5) * width for t in range(len(lost))], lost, width,
                    color=colours[mode], label=mode)
        latencies = results["modes"][mode]["write_latencies_ms"]
        if latencies:
            latency_ax.plot(latencies, [(k + 1) / len(latencies) for k in range(len(latencies))],
                            color=colours[mode], linewidth=2, label=mode)
    if not any(v for mode in MODES for v in results["modes"][mode]["acked_writes_lost_per_trial"]):
        # Bars of height zero draw nothing: say it in words, on a sensible scale.
        lost_ax.set_ylim(0, 1)
        lost_ax.text(0.5, 0.5, "no acknowledged write lost in any trial", transform=lost_ax.transAxes,
                     ha="center", va="center", fontsize=13)
    lost_ax.set_xlabel("trial")
    lost_ax.set_ylabel("acknowledged writes lost")
    lost_ax.set_title("writes the client was told were saved, missing after the crash")
    lost_ax.legend()
    latency_ax.set_xscale("log")
    latency_ax.set_xlabel("latency of an acknowledged write (ms, log scale)")
    latency_ax.set_ylabel("share of writes (CDF)")
    latency_ax.set_title("what waiting for the replica costs each write")
    latency_ax.legend()
    fig.suptitle(f"{results['scenario']} at {results['rate']:g} req/s: "
                 "asynchronous vs semi-synchronous replication")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_replication_report(folder: Path, name: str, results: dict[str, Any]) -> None:
    """`<name>.json`, `<name>.md` (the table) and `<name>.png` (the picture) in `folder`."""
    files.write_json(folder / f"{name}.json", results)
    files.write_atomic(folder / f"{name}.md", comparison_table(results) + f"\n\n![{name}]({name}.png)\n")
    draw(results, folder / f"{name}.png")
