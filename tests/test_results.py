"""The printed table of a run: one trial's figures, or the spread and counts over several."""

from __future__ import annotations

import pytest

from experiments.analysis import metrics
from experiments.results.tables import summary_table


def trial(**figures) -> dict:
    base = {"requests_total": 4000, "requests_failed": 8, "availability_pct": 99.8,
            "throughput_rps_before": 500.0, "throughput_rps_after": 498.0, "detection_ms": 15.0,
            "failover_gap_ms": 25.0, "acked_writes": 1200, "acked_writes_lost": 0, "db_consistent": True}
    return {**base, **figures}


def row(table: str, label: str) -> str:
    (line,) = [line for line in table.splitlines() if line.strip().startswith(label)]
    return line.strip()[len(label):].strip()


def run_of(*trials: dict) -> dict:
    """A run's summary as `run_experiment` writes it."""
    return {"scenario": "primary-crash", "trials": len(trials), **metrics.aggregate(trials)}


@pytest.mark.parametrize("trials, label, expected", [
    ((trial(), trial()), "scenario", "primary-crash, 2 trials"),
    ((trial(), trial(requests_total=4001)), "requests sent, total", "8,001"),
    ((trial(), trial(db_consistent=False), trial()), "databases consistent after the trial", "2 of 3 trials"),
    ((trial(db_consistent=None), trial()), "databases consistent after the trial", "1 of 1 trials"),
    ((trial(acked_writes_lost=3), trial(), trial(acked_writes_lost=1)), "acknowledged writes lost",
     "4 in total, in 2 of 3 trials"),
    ((trial(availability_pct=99.0), trial(availability_pct=100.0), trial(availability_pct=99.5)),
     "availability", "median 99.5, lowest 99 %"),
    ((trial(failover_gap_ms=10.0), trial(failover_gap_ms=30.0)),
     "failover gap (last primary -> first secondary)", "median 20, p95 29, max 30 ms"),
    # A trial without a failover has no gap: the figure says over how many trials it is.
    ((trial(failover_gap_ms=None), trial(failover_gap_ms=30.0)),
     "failover gap (last primary -> first secondary)", "median 30, p95 30, max 30 ms (over 1 trials)"),
    ((trial(detection_ms=None), trial(detection_ms=None)), "detection (fault -> VIP moved)", "-"),
])
def test_a_run_of_trials_prints_spreads_and_counts(trials, label, expected):
    assert row(summary_table(run_of(*trials)), label) == expected


def test_one_trial_prints_its_own_figures():
    table = summary_table({**trial(), "scenario": "baseline", "served_by_before": "primary"})
    assert row(table, "scenario") == "baseline"
    assert row(table, "databases consistent after the trial") == "True"
    assert row(table, "served by before") == "primary"
