"""Several runs side by side: one column per run folder, one row per figure, from their summary.json.

    compare([Path("results/primary-crash-..."), Path("results/web-crash-...")])  -> a text table
    write_comparison(run_dirs, Path("compare.md"))  -> compare.md and compare.csv

Runs can be single-trial or multi-trial. For a multi-trial run the counts (requests, failed,
acknowledged writes lost) are totals over its trials, so that a single lost write is never hidden
by a median; every other figure is the median over its trials, and the failover gap shows its
p95 in brackets as well. Every number is read from the run folders; nothing is typed in here.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from experiments.analysis import metrics
from experiments.results import files
from experiments.results.report import ReportError, format_value, read_summary

ROWS = (
    "scenario",
    "mechanism",
    "trials",
    "requests",
    "availability %",
    "failed",
    "throughput before (req/s)",
    "throughput after (req/s)",
    "latency p95 before (ms)",
    "latency p95 after (ms)",
    "detection (ms)",
    "failover gap (ms)",
    "acked writes lost",
)
MULTI_TRIAL_NOTE = (
    "Multi-trial runs: requests, failed and acked writes lost are totals over the trials; the other "
    "figures are medians over the trials, and the failover gap is the median with the p95 in brackets."
)


def _single_trial_column(summary: Mapping[str, Any]) -> dict[str, str]:
    before = summary.get("latency_ms_before") or {}
    after = summary.get("latency_ms_after") or {}
    values = {
        "scenario": summary.get("scenario"),
        "mechanism": summary.get("mechanism", "sdn"),
        "trials": 1,
        "requests": summary.get("requests_total"),
        "availability %": summary.get("availability_pct"),
        "failed": summary.get("requests_failed"),
        "throughput before (req/s)": summary.get("throughput_rps_before"),
        "throughput after (req/s)": summary.get("throughput_rps_after"),
        "latency p95 before (ms)": before.get("p95"),
        "latency p95 after (ms)": after.get("p95"),
        "detection (ms)": summary.get("detection_ms"),
        "failover gap (ms)": summary.get("failover_gap_ms"),
        "acked writes lost": summary.get("acked_writes_lost"),
    }
    return {row: format_value(value) for row, value in values.items()}


def _total(trials: Sequence[Mapping[str, Any]], key: str) -> int | None:
    """The sum of a count over the trials that have it; None if none has it."""
    counts = [trial[key] for trial in trials if trial.get(key) is not None]
    return sum(counts) if counts else None


def _median_of(trials: Sequence[Mapping[str, Any]], window: str) -> float | None:
    """The median over the trials of their p95 latency in one window ("before" or "after")."""
    values = [(trial.get(f"latency_ms_{window}") or {}).get("p95") for trial in trials]
    median = metrics.percentile([v for v in values if v is not None], 50)
    return None if median is None else round(median, 3)


def _multi_trial_column(summary: Mapping[str, Any]) -> dict[str, str]:
    trials = summary["per_trial"]

    def median(key: str) -> Any:
        return (summary.get(key) or {}).get("median")

    gap = summary.get("failover_gap_ms") or {}
    values = {
        "scenario": summary.get("scenario"),
        "mechanism": trials[0].get("mechanism", "sdn") if trials else "sdn",
        "trials": summary.get("trials", len(trials)),
        "requests": _total(trials, "requests_total"),
        "availability %": median("availability_pct"),
        "failed": _total(trials, "requests_failed"),
        "throughput before (req/s)": median("throughput_rps_before"),
        "throughput after (req/s)": median("throughput_rps_after"),
        "latency p95 before (ms)": _median_of(trials, "before"),
        "latency p95 after (ms)": _median_of(trials, "after"),
        "detection (ms)": median("detection_ms"),
        "acked writes lost": _total(trials, "acked_writes_lost"),
    }
    column = {row: format_value(value) for row, value in values.items()}
    column["failover gap (ms)"] = f"{format_value(gap.get('median'))} [{format_value(gap.get('p95'))}]"
    return column


def _checked_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json, checked to be a single-trial or a multi-trial summary."""
    summary = read_summary(run_dir)
    path = run_dir / files.SUMMARY
    if "per_trial" in summary:
        trials = summary["per_trial"]
        if not isinstance(trials, list) or not all(isinstance(trial, dict) for trial in trials):
            raise ReportError(f"{path}: per_trial should be a list of trial summaries")
    elif "requests_total" not in summary:
        raise ReportError(f"{path}: has neither requests_total nor per_trial; is it a run's summary?")
    return summary


def _column(summary: Mapping[str, Any]) -> dict[str, str]:
    """The cells of one run's column, by row name."""
    if "per_trial" in summary:
        return _multi_trial_column(summary)
    return _single_trial_column(summary)


def _names(run_dirs: Sequence[Path]) -> list[str]:
    """Column headings: the folder names, or the full paths when two folders share a name."""
    names = [run_dir.name for run_dir in run_dirs]
    if len(set(names)) < len(names):
        return [str(run_dir) for run_dir in run_dirs]
    return names


class Comparison(NamedTuple):
    """The table: a header (figure, then one run name each) and one row of cells per figure."""

    header: list[str]
    rows: list[list[str]]
    has_multi_trial: bool  # whether a column is a multi-trial run, whose cells need MULTI_TRIAL_NOTE


def comparison_table(run_dirs: Sequence[Path]) -> Comparison:
    """The comparison of the runs, as cells; ReportError for a folder that is not a run."""
    if not run_dirs:
        raise ReportError("nothing to compare: give at least one run folder")
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    summaries = [_checked_summary(run_dir) for run_dir in run_dirs]
    columns = []
    for run_dir, summary in zip(run_dirs, summaries, strict=True):
        try:
            columns.append(_column(summary))
        except (AttributeError, TypeError) as exc:
            # A value of the wrong type (a string where a number or a dict belongs).
            raise ReportError(f"{run_dir / files.SUMMARY}: unexpected value ({exc})") from None
    header = ["figure", *_names(run_dirs)]
    rows = [[row, *(column[row] for column in columns)] for row in ROWS]
    return Comparison(header, rows, any("per_trial" in summary for summary in summaries))


def compare(run_dirs: list[Path]) -> str:
    """A side-by-side text table of the runs' figures, one column per run, ready to print."""
    header, rows, has_multi_trial = comparison_table(run_dirs)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        # Labels to the left, values to the right: numbers line up on their last digit.
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    text = [line(header), rule, *(line(row) for row in rows)]
    if has_multi_trial:
        text += ["", MULTI_TRIAL_NOTE]
    return "\n".join(text)


def write_comparison(run_dirs: list[Path], out_path: Path) -> None:
    """Write the comparison as Markdown to `out_path` (compare.md) and as CSV next to it (compare.csv)."""
    header, rows, has_multi_trial = comparison_table(run_dirs)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Values right-aligned (---:), as in the text table.
    markdown = ["# Comparison of runs", "", "| " + " | ".join(header) + " |"]
    markdown.append("|---|" + "---:|" * (len(header) - 1))
    markdown += ["| " + " | ".join(row) + " |" for row in rows]
    if has_multi_trial:
        markdown += ["", MULTI_TRIAL_NOTE]
    out_path.write_text("\n".join(markdown) + "\n")
    with open(out_path.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
