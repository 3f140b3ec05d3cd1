"""compare-replication's figures and table, from trial folders as `run` writes them."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.results.replication_report import comparison_table, mode_figures

HEADER = "request_id,kind,write_id,scheduled_at,sent_at,latency_ms,status,served_by,error,item_id\n"


def write_trial(folder: Path, summary: dict, write_latencies: list[float]) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    rows = [f"{i},POST,w{i},1.0,1.0,{ms},201,primary,,{i}\n" for i, ms in enumerate(write_latencies)]
    rows.append("99,GET,,1.0,1.0,0.5,200,primary,,\n")  # a read: not a write's latency
    (folder / "requests.csv").write_text(HEADER + "".join(rows))


def test_figures_of_one_mode_over_its_trials(tmp_path: Path) -> None:
    write_trial(tmp_path / "trial-01", {"acked_writes_lost": 3, "failover_gap_ms": 30.0,
                                        "db_consistent": True, "unknown_writes": 2,
                                        "semi_sync_fell_back": 1}, [2.0, 4.0])
    write_trial(tmp_path / "trial-02", {"acked_writes_lost": 0, "failover_gap_ms": 50.0,
                                        "db_consistent": False, "unknown_writes": 0,
                                        "semi_sync_fell_back": 0}, [6.0])
    figures = mode_figures(tmp_path)
    assert figures["acked_writes_lost_per_trial"] == [3, 0]
    assert figures["acked_writes_lost_total"] == 3
    assert figures["db_consistent_trials"] == 1
    assert figures["unknown_writes_total"] == 2
    assert figures["semi_sync_fell_back_trials"] == 1
    assert figures["write_latencies_ms"] == [2.0, 4.0, 6.0]


def test_asynchronous_replication_has_no_fallback_to_count(tmp_path: Path) -> None:
    write_trial(tmp_path / "async", {"acked_writes_lost": 51, "semi_sync_fell_back": None}, [1.0])
    assert mode_figures(tmp_path / "async")["semi_sync_fell_back_trials"] is None


def test_the_table_names_the_scenario_and_every_row(tmp_path: Path) -> None:
    write_trial(tmp_path / "async", {"acked_writes_lost": 51, "semi_sync_fell_back": None,
                                     "unknown_writes": 3}, [1.0])
    write_trial(tmp_path / "semi-sync", {"acked_writes_lost": 0, "semi_sync_fell_back": 0,
                                         "unknown_writes": 222}, [5.0])
    results = {"scenario": "partition-crash", "trials": 1, "rate": 200.0,
               "modes": {m: mode_figures(tmp_path / m) for m in ("async", "semi-sync")}}
    table = comparison_table(results).splitlines()
    assert table[0] == "partition-crash, 1 trial(s) per mode at 200 req/s"
    assert "| acknowledged writes lost, total | 51 | 0 |" in table
    assert "| writes never answered (client time-out), total | 3 | 222 |" in table
    assert "| trials where semi-sync fell back to async | - | 0 |" in table
