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


def test_the_table_is_computed_again_from_the_records_not_the_summaries(tmp_path):
    """`sdn-ha report` on a study: each rate's row from its trials' requests.csv, event logs and
    replication.csv; a summary that says otherwise is not believed (db_consistent aside)."""
    import json

    from experiments.analysis.metrics import REQUEST_COLUMNS, RequestRecord
    from experiments.results.study_report import recomputed_rows, rewrite_study_report

    t0, fault = 1000.0, 1006.0
    run_dir = tmp_path / "rate-100" / "primary-crash-20261201-120000"
    run_dir.mkdir(parents=True)
    # 100 req/s for 12 s: the primary answers before the fault in 2 ms, the secondary after it in
    # 5 ms, and the 3 requests sent in the first 30 ms after the fault get no answer.
    records = []
    for i in range(1200):
        sent = t0 + i / 100
        if fault <= sent < fault + 0.03:
            records.append(RequestRecord(i, "GET", "", sent, sent, None, 0, "", "timeout", None))
        else:
            server, latency = ("primary", 2.0) if sent < fault else ("secondary", 5.0)
            records.append(RequestRecord(i, "GET", "", sent, sent, latency, 200, server, "", None))
    (run_dir / "requests.csv").write_text(
        ",".join(REQUEST_COLUMNS) + "\n" + "".join(",".join(r.to_csv_row()) + "\n" for r in records))
    (run_dir / "experiment-events.jsonl").write_text(json.dumps({"time": fault, "source": "experiment",
                                                                "kind": "fault", "server": "primary"}) + "\n")
    (run_dir / "controller-events.jsonl").write_text("")
    (run_dir / "replication.csv").write_text("time,source,target,lag_ms\n1001.0,primary,secondary,1.5\n")
    servers = [{"name": "primary"}, {"name": "secondary"}]
    (run_dir / "config.json").write_text(json.dumps({"servers": servers}))
    # A summary with figures nobody measured: only its db_consistent is read.
    (run_dir / "summary.json").write_text(json.dumps({"db_consistent": True, "throughput_rps_before": 1.0}))
    (tmp_path / "study.json").write_text(json.dumps({
        "scenario": "primary-crash", "trials": 1, "duration_s": 12, "fault_at_s": 6,
        "secondary": "secondary", "secondary_cpu": 0.25,
        "rows": [{"rate": 100, "run_dir": "/elsewhere/rate-100/" + run_dir.name}]}))
    (row,) = recomputed_rows(tmp_path)
    assert row["before"] == {"throughput_rps": 100.0, "loss_pct": 0.0, "latency_p50_ms": 2.0,
                             "latency_p95_ms": 2.0, "availability_pct": 100.0}
    assert row["after"]["loss_pct"] == 0.5 and row["after"]["latency_p50_ms"] == 5.0  # 3 of 600
    assert row["db_consistent"] is True and row["replication_lag_p99_ms"] == 1.5
    page = rewrite_study_report(tmp_path).read_text()
    assert "| 100 | 100.0 / 99.5 (-0.5) |" in page
