"""Tests of experiments.results.compare: several run folders side by side.

The run folders are the synthetic ones of tests/test_report.py (written with the project's own
writers), so they look exactly like the folders a real run leaves.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

from experiments.results.compare import compare, write_comparison
from experiments.results.report import ReportError
from tests.test_report import build_multi_trial, build_trial


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A single-trial run folder and its summary (once for the module)."""
    folder = tmp_path_factory.mktemp("runs") / "primary-crash-20260101-120000"
    return folder, build_trial(folder)


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("runs") / "primary-crash-20260101-130000"
    return folder, build_multi_trial(folder)


def compare_rows(text: str) -> dict[str, list[str]]:
    """The rows of compare()'s text table: label -> one cell per run (cells are 2+ spaces apart)."""
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) > 1:
            rows[cells[0]] = cells[1:]
    return rows


def test_compare_puts_runs_side_by_side(
    single_run: tuple[Path, dict], multi_run: tuple[Path, dict]
) -> None:
    (single, one), (multi, many) = single_run, multi_run
    rows = compare_rows(compare([single, multi]))
    assert rows["figure"] == [single.name, multi.name]
    assert rows["trials"] == ["1", "3"]
    # A multi-trial column: counts are totals over the trials, the rest medians.
    trials = many["per_trial"]
    assert rows["requests"] == [str(one["requests_total"]), str(sum(t["requests_total"] for t in trials))]
    assert rows["availability %"] == [str(one["availability_pct"]), str(many["availability_pct"]["median"])]
    assert rows["failed"] == [str(one["requests_failed"]), str(sum(t["requests_failed"] for t in trials))]
    assert rows["throughput after (req/s)"] == [
        str(one["throughput_rps_after"]), str(many["throughput_rps_after"]["median"])
    ]
    assert rows["latency p95 before (ms)"][0] == str(one["latency_ms_before"]["p95"])
    assert rows["detection (ms)"] == [str(one["detection_ms"]), str(many["detection_ms"]["median"])]
    gap = many["failover_gap_ms"]
    assert rows["failover gap (ms)"] == [str(one["failover_gap_ms"]), f"{gap['median']} [{gap['p95']}]"]
    assert rows["acked writes lost"] == ["0", "0"]


def test_write_comparison_writes_markdown_and_csv(
    single_run: tuple[Path, dict], multi_run: tuple[Path, dict], tmp_path: Path
) -> None:
    (single, one), (multi, _) = single_run, multi_run
    out = tmp_path / "compare.md"
    write_comparison([single, multi], out)
    assert f"| figure | {single.name} | {multi.name} |" in out.read_text()
    with open(tmp_path / "compare.csv", newline="") as f:
        rows = {row[0]: row[1:] for row in csv.reader(f)}
    assert rows["figure"] == [single.name, multi.name]
    assert rows["requests"][0] == str(one["requests_total"])


def test_compare_on_a_folder_that_is_not_a_run_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="summary.json"):
        compare([tmp_path])
    with pytest.raises(ReportError, match="not a folder"):
        compare([tmp_path / "no-such-run"])
