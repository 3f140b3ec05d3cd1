"""Tests of experiments.results.report on synthetic run folders (compare's: tests/test_compare.py).

The folders are written with the project's own writers (the load generator's Recorder, and
results.write_events_csv / write_summary), and summary.json is computed by metrics.summarize,
so they look exactly like the folders a real run leaves. A trial: 10 s of load at 100 req/s,
served by "primary" until a crash at 5 s, then nothing for `gap_ms`, then by "secondary".
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

from experiments.analysis import metrics
from experiments.analysis.metrics import RequestRecord
from experiments.load.loadgen import Recorder
from experiments.results.records import write_events_csv, write_summary
from experiments.results.report import ReportError, write_report

T0 = 1_800_000_000.0  # epoch seconds when the load started: the first request's schedule
RATE = 100  # requests per second
DURATION_S = 10.0
FAULT_S = 5.0  # seconds into the load
DETECTION_S = 0.02  # fault to VIP move
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRIAL_PICTURES = ("throughput.png", "latency.png", "served_by.png")


def _record(i: int, fault_at: float | None, gap_ms: float) -> RequestRecord:
    """Request i: answered by primary before the fault, lost during the gap, then by secondary."""
    sent_at = T0 + i / RATE
    kind = "POST" if i % 3 == 0 else "GET"
    lost = fault_at is not None and fault_at <= sent_at < fault_at + gap_ms / 1000
    if lost:
        return RequestRecord(i, kind, f"w-{i}" if kind == "POST" else "", sent_at, sent_at,
                             None, 0, "", "timeout", None)
    server = "secondary" if fault_at is not None and sent_at >= fault_at else "primary"
    return RequestRecord(
        request_id=i,
        kind=kind,
        write_id=f"w-{i}" if kind == "POST" else "",
        scheduled_at=sent_at,
        sent_at=sent_at,
        latency_ms=2.0 + (i % 7) * 0.5,  # a little spread, so the latency picture has some texture
        status=201 if kind == "POST" else 200,
        served_by=server,
        error="",
        item_id=i if kind == "POST" else None,
    )


def build_trial(folder: Path, gap_ms: float = 30.0, fault: bool = True) -> dict[str, Any]:
    """Write requests.csv, events.csv and summary.json of one trial into `folder`; returns the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    fault_at = T0 + FAULT_S if fault else None
    records = [_record(i, fault_at, gap_ms) for i in range(int(RATE * DURATION_S))]
    recorder = Recorder(folder / "requests.csv")
    for record in records:
        recorder.write(record)
    recorder.close()

    events: list[dict[str, Any]] = [
        {"time": T0 - 1.0, "source": "experiment", "kind": "load_started", "detail": "100 req/s for 10 s"},
    ]
    if fault_at is not None:
        events += [
            {"time": fault_at, "source": "experiment", "kind": "fault", "server": "primary"},
            {"time": fault_at + 0.001, "source": "controller", "kind": "server_down", "server": "primary"},
            {"time": fault_at + DETECTION_S, "source": "controller", "kind": "vip_moved",
             "server": "secondary", "previous": "primary"},
        ]
    write_events_csv(folder / "events.csv", events)

    summary = {
        "scenario": "primary-crash" if fault else "baseline",
        "trial_dir": str(folder),
        "fault_at": fault_at,
        "active_at_end": "secondary" if fault else "primary",
        **metrics.summarize(records, events, fault_at, "primary", "secondary"),
        "acked_writes_lost": 0,
    }
    write_summary(folder / "summary.json", summary)
    return summary


def build_multi_trial(folder: Path, gaps_ms: tuple[float, ...] = (20.0, 30.0, 45.0)) -> dict[str, Any]:
    """A multi-trial run folder: trial-01... and the summary over all trials, as run.py writes them."""
    summaries = [build_trial(folder / f"trial-{n:02d}", gap) for n, gap in enumerate(gaps_ms, start=1)]
    summary = {"scenario": "primary-crash", "trials": len(summaries), **metrics.aggregate(summaries)}
    write_summary(folder / "summary.json", summary)
    return summary


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The rows of the Markdown tables of a report: first cell -> the other cells."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| "):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def image_links(markdown: str) -> set[str]:
    return set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown))


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path.name} was not written"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 10_000, f"{path.name} is suspiciously small"


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    """A single-trial run folder, its summary, and the report written for it (once for the module)."""
    folder = tmp_path_factory.mktemp("runs") / "primary-crash-20260101-120000"
    summary = build_trial(folder)
    return folder, summary, write_report(folder)


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("runs") / "primary-crash-20260101-130000"
    summary = build_multi_trial(folder)
    return folder, summary, write_report(folder)


# -- one trial -------------------------------------------------------------------------------


def test_single_trial_writes_the_pictures_and_the_report(single_run: tuple[Path, dict, Path]) -> None:
    folder, _, report = single_run
    assert report == folder / "report.md"
    for name in TRIAL_PICTURES:
        assert_png(folder / name)
    # No replication.csv, so no replication picture, and no complaint either.
    assert not (folder / "replication_lag.png").exists()


def test_report_links_every_picture_that_exists(single_run: tuple[Path, dict, Path]) -> None:
    folder, _, report = single_run
    links = image_links(report.read_text())
    assert links == {path.name for path in folder.glob("*.png")}
    assert all((folder / link).is_file() for link in links)


def test_report_figures_equal_the_summary(single_run: tuple[Path, dict, Path]) -> None:
    _, summary, report = single_run
    rows = table_rows(report.read_text())
    text = report.read_text()
    assert summary["scenario"] in text.splitlines()[0]

    def cell(label: str) -> str:
        return rows[label][0]

    def pair(before: Any, after: Any) -> str:
        return f"{before} / {after}"

    assert cell("Requests sent") == str(summary["requests_total"])
    assert cell("Requests answered successfully") == str(summary["requests_ok"])
    assert cell("Requests failed") == str(summary["requests_failed"])
    assert cell("Availability (%)") == str(summary["availability_pct"])
    assert cell("Fault injected (s after the load started)") == f"{FAULT_S:.3f}"
    assert cell("Throughput before / after the fault (req/s)") == pair(
        summary["throughput_rps_before"], summary["throughput_rps_after"]
    )
    for p in ("p50", "p95", "p99"):
        assert cell(f"Latency {p} before / after the fault (ms)") == pair(
            summary["latency_ms_before"][p], summary["latency_ms_after"][p]
        )
    assert cell("Detection: fault to VIP move (ms)") == str(summary["detection_ms"])
    assert cell("Outage window: fault to the first request sent that succeeded (ms)") == str(
        summary["outage_window_ms"]
    )
    assert cell("Failover gap: last answer of the primary to first of the secondary (ms)") == str(
        summary["failover_gap_ms"]
    )
    assert cell("Acknowledged writes (POST answered 201)") == str(summary["acked_writes"])
    assert cell("Acknowledged writes lost") == str(summary["acked_writes_lost"])
    # The synthetic failover really is one: some requests were lost, and the gap is tens of ms.
    assert summary["requests_failed"] > 0
    assert 20 < summary["failover_gap_ms"] < 60


def test_a_run_without_a_fault_has_pictures_without_a_fault_line(tmp_path: Path) -> None:
    summary = build_trial(tmp_path, fault=False)
    assert summary["fault_at"] is None
    report = write_report(tmp_path)
    for name in TRIAL_PICTURES:
        assert_png(tmp_path / name)
    assert table_rows(report.read_text())["Fault injected (s after the load started)"] == ["no fault"]


def test_replication_csv_gives_a_replication_picture(tmp_path: Path) -> None:
    build_trial(tmp_path)
    with open(tmp_path / "replication.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time", "lag_ms"])
        writer.writerows([T0 + i / 2, 1.0 + (5.0 if 10 <= i < 12 else 0.0)] for i in range(20))
    report = write_report(tmp_path)
    assert_png(tmp_path / "replication_lag.png")
    assert "replication_lag.png" in image_links(report.read_text())


# -- several trials -------------------------------------------------------------------------


def test_multi_trial_report_has_the_cdf_and_links_each_trial(multi_run: tuple[Path, dict, Path]) -> None:
    folder, summary, report = multi_run
    assert report == folder / "report.md"
    assert_png(folder / "failover_gap_cdf.png")
    text = report.read_text()
    assert image_links(text) == {"failover_gap_cdf.png"}
    for n in (1, 2, 3):
        trial = folder / f"trial-{n:02d}"
        assert f"({trial.name}/report.md)" in text
        assert (trial / "report.md").is_file()
        assert "(../report.md)" in (trial / "report.md").read_text()
        for name in TRIAL_PICTURES:
            assert_png(trial / name)
    rows = table_rows(text)
    gap = summary["failover_gap_ms"]
    assert rows["Failover gap (ms)"] == [str(gap["n"]), str(gap["median"]), str(gap["p95"]), str(gap["max"])]
    assert rows["trial-02"][0] == str(summary["per_trial"][1]["failover_gap_ms"])


# -- bad input ------------------------------------------------------------------------------


def test_missing_requests_csv_is_a_report_error(tmp_path: Path) -> None:
    build_trial(tmp_path)
    (tmp_path / "requests.csv").unlink()
    with pytest.raises(ReportError, match="requests.csv"):
        write_report(tmp_path)


def test_empty_requests_csv_is_a_report_error(tmp_path: Path) -> None:
    build_trial(tmp_path)
    (tmp_path / "requests.csv").write_text("")
    with pytest.raises(ReportError, match="requests.csv"):
        write_report(tmp_path)


def test_malformed_summary_is_a_report_error(tmp_path: Path) -> None:
    build_trial(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ReportError, match="summary.json"):
        write_report(tmp_path)


def test_malformed_replication_csv_is_a_report_error(tmp_path: Path) -> None:
    build_trial(tmp_path)
    (tmp_path / "replication.csv").write_text("when,lag\n1,2\n")
    with pytest.raises(ReportError, match="replication.csv"):
        write_report(tmp_path)


@pytest.mark.parametrize(("summary", "says"), [
    ({"schedule_latency_differs": True, "send_lag_ms": {"p50": 0.1, "p99": 45.5, "max": 50.0}},
     "send lag p99 45.5 ms, at most 50.0 ms"),
    ({"schedule_latency_differs": False, "send_lag_ms": {"p50": 0.1, "p99": 0.4, "max": 0.9}}, None),
    ({}, None),  # a summary from before the figure existed
])
def test_the_report_says_when_the_load_generator_sent_late(summary, says):
    from experiments.results.report import schedule_note

    note = schedule_note(summary)
    assert (note is None) if says is None else (says in note)
