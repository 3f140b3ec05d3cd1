"""The published study's figures and findings, from trials' summaries (no testbed)."""

from __future__ import annotations

import pytest

from experiments.analysis.study import findings, study_row, window_figures


def trial(before_rps, after_rps, failed_after=0, p95_after=5.0, consistent=True, lag=2.0):
    return {
        "throughput_rps_before": before_rps, "throughput_rps_after": after_rps,
        "served_by_before": {"primary": int(before_rps * 6)},
        "served_by_after": {"secondary": int(after_rps * 6)},
        "requests_failed_before": 0, "requests_failed_after": failed_after,
        "latency_ms_before": {"p50": 1.0, "p95": 4.0}, "latency_ms_after": {"p50": 1.2, "p95": p95_after},
        "db_consistent": consistent, "replication_lag_ms": {"p99": lag},
    }


def test_a_windows_figures_come_from_its_counts():
    figures = window_figures(trial(100, 90, failed_after=60), "after")
    assert figures == {"throughput_rps": 90, "loss_pct": 10.0, "latency_p50_ms": 1.2, "latency_p95_ms": 5.0,
                       "availability_pct": 90.0}


def test_a_rate_is_the_median_of_its_trials_with_the_change():
    row = study_row(400, [trial(400, 300), trial(400, 320), trial(400, 310)])
    assert row["before"]["throughput_rps"] == 400 and row["after"]["throughput_rps"] == 310
    assert row["change"]["throughput_rps"] == -90 and row["db_consistent"] is True


@pytest.mark.parametrize(("rows", "verdict"), [
    # below the secondary's capacity nothing changes; above it, it serves less
    ([study_row(100, [trial(100, 100)]), study_row(400, [trial(400, 300)]),
      study_row(800, [trial(800, 310)])],
     "supported from 400 req/s on, not below"),
    ([study_row(100, [trial(100, 100)]), study_row(400, [trial(400, 399)])], "not seen at any rate"),
    ([study_row(100, [trial(100, 50)]), study_row(400, [trial(400, 300)])], "supported at every rate"),
])
def test_the_throughput_finding_says_where_it_holds(rows, verdict):
    (throughput, *_rest) = findings(rows)
    assert throughput["finding"] == "throughput lower after the failover" and throughput["verdict"] == verdict


def test_the_databases_and_the_replication_time_are_findings_too():
    rows = [study_row(100, [trial(100, 100, lag=3.5)]), study_row(400, [trial(400, 300, consistent=False)])]
    *_, equal, lag = findings(rows)
    assert equal["verdict"] == "contradicted" and equal["per_rate"] == {100: True, 400: False}
    assert lag["verdict"] == "p99 at most 3.5 ms"


def test_the_study_page_and_picture(tmp_path):
    from experiments.results.study_report import write_study_report

    rows = [study_row(100, [trial(100, 100)]), study_row(400, [trial(400, 300)])]
    results = {"scenario": "primary-crash", "trials": 1, "duration_s": 12, "fault_at_s": 6,
               "secondary": "secondary", "secondary_cpu": 0.25, "rows": rows, "findings": findings(rows)}
    page = write_study_report(tmp_path, results).read_text()
    assert "| 400 | 400.0 / 300.0 (-100) |" in page
    assert "| throughput lower after the failover | supported from 400 req/s on, not below |" in page
    assert (tmp_path / "study.png").stat().st_size > 10_000
