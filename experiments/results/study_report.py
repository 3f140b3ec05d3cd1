"""The study's page (study.md) and picture (study.png): the published study's table, reproduced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experiments.analysis import metrics
from experiments.analysis.study import FIGURES, findings, study_row
from experiments.results import files
from experiments.results.records import read_events, read_replication, read_requests
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


def recomputed_rows(folder: Path) -> list[dict[str, Any]]:
    """The study's rows computed again from what each trial recorded (requests.csv, the event
    logs, replication.csv), not from the summaries: the table is only what its records say.
    Only `db_consistent`, a check of the databases themselves, is read from each summary."""
    results = json.loads((folder / files.STUDY_JSON).read_text())
    rows = []
    for row in results["rows"]:
        recorded = Path(row["run_dir"])  # where it was; the folder may have moved since
        run_dir = folder / recorded.parent.name / recorded.name
        trials = []
        for trial in files.trial_dirs(run_dir) or [run_dir]:
            summary = json.loads((trial / files.SUMMARY).read_text())
            config = json.loads((trial / files.CONFIG).read_text())
            events = read_events([trial / files.CONTROLLER_EVENTS, trial / files.EXPERIMENT_EVENTS])
            fault_at = next(e["time"] for e in events if e["kind"] == "fault")
            primary, secondary = (server["name"] for server in config["servers"][:2])
            records = read_requests(trial / files.REQUESTS)
            figures = metrics.summarize(records, events, fault_at, primary, secondary)
            lag = metrics.replication_lag(read_replication(trial / files.REPLICATION))
            figures["replication_lag_ms"] = lag
            figures["db_consistent"] = summary.get("db_consistent")
            trials.append(figures)
        rows.append({**study_row(row["rate"], trials), "run_dir": row["run_dir"]})
    return rows


def rewrite_study_report(folder: Path) -> Path:
    """`sdn-ha report` on a study's folder: its table and findings computed again from the
    trials' records (`recomputed_rows`), then study.json, study.md and study.png written."""
    results = json.loads((folder / files.STUDY_JSON).read_text())
    results["rows"] = recomputed_rows(folder)
    results["findings"] = findings(results["rows"])
    files.write_json(folder / files.STUDY_JSON, results)
    return write_study_report(folder, results)
