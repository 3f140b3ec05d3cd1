"""The study's page (study.md) and picture (study.png): the published study's table, reproduced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.analysis.study import FIGURES
from experiments.results import files
from experiments.results.tables import format_value

REPORT = "study.md"
PICTURE = "study.png"
LABELS = {"throughput_rps": "throughput (req/s)", "loss_pct": "request loss (%)",
          "latency_p50_ms": "response time p50 (ms)", "latency_p95_ms": "response time p95 (ms)",
          "availability_pct": "availability (%)"}
UNITS = {"throughput_rps": "req/s", "loss_pct": "%", "latency_p95_ms": "ms", "availability_pct": "%"}


def study_table(results: dict[str, Any]) -> str:
    rows = results["rows"]
    lines = [
        f"The study reproduced: {results['scenario']} at each rate, {results['trials']} trial(s) per rate, "
        f"{results['duration_s']:g} s of load with the fault at {results['fault_at_s']:g} s; the secondary "
        f"({results['secondary']}) has {results['secondary_cpu']:g} of the machine's CPU. Each figure is the "
        "median over the trials: before the fault / after it (change).",
        "",
        "| rate (req/s) | " + " | ".join(LABELS[name] for name in FIGURES)
        + " | databases equal | replication lag p99 (ms) |",
        "|---|" + "---|" * (len(FIGURES) + 2),
    ]
    for row in rows:
        cells = [f"{format_value(row['before'][n])} / {format_value(row['after'][n])} "
                 f"({_signed(row['change'][n])})" for n in FIGURES]
        equal = "yes" if row["db_consistent"] else "NO"
        lines.append(f"| {row['rate']:g} | " + " | ".join(cells)
                     + f" | {equal} | {format_value(row['replication_lag_p99_ms'])} |")
    lines += ["", "| the study found | measured here |", "|---|---|"]
    for finding in results.get("findings") or []:
        lines.append(f"| {finding['finding']} | {finding['verdict']} |")
    return "\n".join(lines)


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+g}"


def draw_study(results: dict[str, Any], path: Path) -> None:
    """Four panels against the rate: throughput, loss, p95 and availability, before and after."""
    from experiments.results.plots import figure

    rows = results["rows"]
    rates = [row["rate"] for row in rows]
    panels = ("throughput_rps", "loss_pct", "latency_p95_ms", "availability_pct")
    with figure(path, rows=len(panels)) as axes:
        for ax, name in zip(axes, panels, strict=True):
            for window, style in (("before", "o-"), ("after", "s--")):
                values = [row[window][name] for row in rows]
                ax.plot(rates, [float("nan") if v is None else v for v in values], style,
                        label=f"{window} the failover")
            # Four panels one above the other: each says what it shows in its corner, and its
            # axis only the unit (four long axis labels would run into each other).
            ax.set_title(LABELS[name], loc="left", fontsize="medium")
            ax.set_ylabel(UNITS[name])
            ax.legend(loc="best")
        axes[-1].set_xlabel("offered load (requests per second)")


def write_study_report(folder: Path, results: dict[str, Any]) -> Path:
    draw_study(results, folder / PICTURE)
    text = "\n".join(["# The published study, reproduced", "", study_table(results), "",
                      f"![before and after the failover, against the load]({PICTURE})", ""])
    path = folder / REPORT
    files.write_atomic(path, text)
    return path
