"""The soak's pure parts: its schedule, per-fault windows, growth check, verdict and report."""

import math
import os

import pytest

from experiments.analysis import soak
from experiments.analysis.metrics import RequestRecord
from experiments.results import files, soak_report
from experiments.results.records import read_resources
from experiments.runs import resources


def req(rid: int, sent: float, served_by: str, ok: bool = True, latency_ms: float = 1.0) -> RequestRecord:
    return RequestRecord(
        request_id=rid, kind="GET", write_id="", scheduled_at=sent, sent_at=sent,
        latency_ms=latency_ms if ok else None, status=200 if ok else 0,
        served_by=served_by if ok else "", error="" if ok else "timeout", item_id=None,
    )


@pytest.mark.parametrize(
    ("duration", "period", "recover", "expected"),
    [
        (600, 60, 20, [30, 90, 150, 210, 270, 330, 390, 450, 510, 570]),
        (150, 40, 15, [20, 60, 100]),
        (150, 60, 20, [30, 90]),
        (40, 60, 20, []),  # the first fault would recover after the load: none
        (50, 60, 20, []),  # 30 + 20 is not before 50
    ],
)
def test_fault_offsets(duration, period, recover, expected):
    assert soak.fault_offsets(duration, period, recover) == expected


def test_fault_offsets_needs_a_period_longer_than_the_recovery():
    with pytest.raises(ValueError, match="period"):
        soak.fault_offsets(600, 20, 20)


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([], []),
        ([100.0], [(-math.inf, math.inf)]),
        ([100.0, 160.0], [(-math.inf, 130.0), (130.0, math.inf)]),
        ([30.0, 90.0, 150.0], [(-math.inf, 60.0), (60.0, 120.0), (120.0, math.inf)]),
    ],
)
def test_fault_windows_split_halfway_between_faults(times, expected):
    assert soak.fault_windows(times) == expected


def _two_faults():
    """primary serves until 100, crashes; secondary from 100.05 until 160, crashes; primary again."""
    records = [req(i, 90 + i * 0.01, "primary") for i in range(1000)]  # 90.00 .. 99.99
    records += [req(2000, 100.001, "primary", ok=False)]  # in flight when it died
    records += [req(3000 + i, 100.04 + i * 0.01, "secondary") for i in range(5990)]  # .. ~159.93
    records += [req(9000, 160.0, "secondary", ok=False), req(9001, 160.005, "secondary", ok=False)]
    records += [req(10000 + i, 160.1 + i * 0.01, "primary") for i in range(100)]
    events = [
        {"time": 100.0, "kind": "fault", "server": "primary"},
        {"time": 100.02, "kind": "vip_moved", "server": "secondary"},
        {"time": 160.0, "kind": "fault", "server": "secondary"},
        {"time": 160.03, "kind": "vip_moved", "server": "primary"},
    ]
    faults = [{"at": 100.0, "server": "primary"}, {"at": 160.0, "server": "secondary"}]
    return records, events, faults


def test_per_fault_figures_one_window_per_fault():
    records, events, faults = _two_faults()
    first, second = soak.per_fault_figures(records, events, faults)
    assert (first["server"], first["moved_to"], first["vip_moves"]) == ("primary", "secondary", 1)
    assert first["detection_ms"] == pytest.approx(20.0)
    # last primary success done at 99.99 + 1 ms; first secondary at 100.04 + 1 ms
    assert first["failover_gap_ms"] == pytest.approx(50.0)
    assert first["requests_failed_after_fault"] == 1
    assert (second["server"], second["moved_to"]) == ("secondary", "primary")
    assert second["detection_ms"] == pytest.approx(30.0)
    last_secondary = 100.04 + 5989 * 0.01
    assert second["failover_gap_ms"] == pytest.approx((160.1 - last_secondary) * 1000, abs=1e-3)
    assert second["requests_failed_after_fault"] == 2


def test_per_fault_figures_without_a_move():
    records, events, faults = _two_faults()
    events = [e for e in events if e["time"] < 160]  # the second fault moved nothing
    _, second = soak.per_fault_figures(records, events, faults)
    assert second["moved_to"] is None
    assert second["failover_gap_ms"] is None and second["detection_ms"] is None


S = soak.Sample


@pytest.mark.parametrize(
    ("samples", "baseline_at", "growth", "within"),
    [
        # steady: the start-up below the baseline does not count
        ([S(0, 20, 5, 50_000), S(10, 30, 8, 60_000), S(20, 31, 8, 61_000), S(30, 30, 8, 62_000)],
         10, {"fds": 0, "threads": 0, "rss_kb": 2_000}, True),
        # a descriptor per sample: beyond +4
        ([S(10 + i, 30 + i, 8, 60_000) for i in range(12)], 10,
         {"fds": 11, "threads": 0, "rss_kb": 0}, False),
        # memory beyond 16 MB
        ([S(10, 30, 8, 60_000), S(20, 30, 8, 60_000 + 17 * 1024)], 10,
         {"fds": 0, "threads": 0, "rss_kb": 17 * 1024}, False),
        # exactly the bound passes; shrinking passes
        ([S(10, 30, 8, 60_000), S(20, 34, 10, 59_000)], 10, {"fds": 4, "threads": 2, "rss_kb": -1_000}, True),
        # one thread more than the bound
        ([S(10, 30, 8, 60_000), S(20, 30, 11, 60_000)], 10, {"fds": 0, "threads": 3, "rss_kb": 0}, False),
        # the baseline is the first sample at or after baseline_at
        ([S(5, 10, 5, 0), S(15, 30, 8, 60_000), S(25, 30, 8, 60_000)], 12,
         {"fds": 0, "threads": 0, "rss_kb": 0}, True),
    ],
)
def test_resource_growth(samples, baseline_at, growth, within):
    result = soak.resource_growth(samples, baseline_at)
    assert result["growth"] == growth
    assert result["within"] is within
    assert result["end"] == {"time": samples[-1].time, "fds": samples[-1].fds,
                             "threads": samples[-1].threads, "rss_kb": samples[-1].rss_kb}


def test_resource_growth_without_samples_after_the_baseline_is_not_within():
    result = soak.resource_growth([S(1, 1, 1, 1)], baseline_at=5)
    assert result["within"] is False and result["growth"] is None


def test_read_process_reads_this_process():
    sample = resources.read_process(os.getpid())
    assert sample.fds == len(os.listdir("/proc/self/fd"))  # each count sees its own listing descriptor
    assert sample.threads >= 1 and sample.rss_kb > 1000


def test_the_sampler_writes_what_it_keeps(tmp_path):
    sampler = resources.ResourceSampler(os.getpid(), tmp_path / "r.csv", interval=0.01)
    sampler.start()
    sampler.stop()  # the first sample is taken at once
    read = read_resources(tmp_path / "r.csv")
    assert len(read) == len(sampler.samples) >= 1
    kept = [(s.fds, s.threads, s.rss_kb) for s in sampler.samples]
    assert [(s.fds, s.threads, s.rss_kb) for s in read] == kept


def _passing_summary(**changes):
    fault = {"fault": 1, "server": "primary", "moved_to": "secondary", "vip_moves": 1,
             "failover_gap_ms": 40.0, "detection_ms": 15.0, "healthy_again": True,
             "at_s": 30, "requests_failed_after_fault": 3, "back_up_after_s": 21.04}
    summary = {
        "faults_planned": 2,
        "faults": [fault, {**fault, "fault": 2, "server": "secondary", "moved_to": "primary"}],
        "failover_gap_ms": {"n": 2, "median": 40.0, "p95": 40.0, "max": 40.0},
        "acked_writes_lost": 0, "unexpected_writes": 0, "failed_but_present_writes": 0,
        "db_consistent": True,
        "controller_running_at_end": True,
        "controller_resources": {"within": True, "growth": {"fds": 0, "threads": 0, "rss_kb": 10},
                                 "bounds": dict(soak.GROWTH_BOUNDS)},
    }
    summary.update(changes)
    return summary


def _with_fault(**changes):
    summary = _passing_summary()
    summary["faults"][1] = {**summary["faults"][1], **changes}
    return summary


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (_passing_summary(), []),
        (_passing_summary(faults_planned=3), ["2 fault(s) injected of 3 planned"]),
        (_with_fault(failover_gap_ms=250.0), ["fault 2 (secondary): failover gap 250.0 ms > 200 ms"]),
        (_with_fault(failover_gap_ms=200.0), []),
        (_with_fault(failover_gap_ms=None), ["fault 2 (secondary): no failover gap could be measured"]),
        (_with_fault(moved_to=None, failover_gap_ms=None),
         ["fault 2 (secondary): the VIP did not move away (moved_to None)",
          "fault 2 (secondary): no failover gap could be measured"]),
        (_with_fault(vip_moves=2), ["fault 2 (secondary): the VIP moved 2 times, not once"]),
        (_with_fault(healthy_again=False),
         ["fault 2 (secondary): the server was not up again before the next fault"]),
        (_passing_summary(failover_gap_ms={"median": 120.0}), ["failover gap median 120.0 ms > 100 ms"]),
        (_passing_summary(acked_writes_lost=3), ["acked_writes_lost = 3, expected 0"]),
        (_passing_summary(unexpected_writes=None), ["unexpected_writes = None, expected 0"]),
        (_passing_summary(db_consistent=False, replication_error="error 1062"),
         ["databases not consistent after the soak (error 1062)"]),
        (_passing_summary(controller_running_at_end=False), ["the controller was not running at the end"]),
        (_passing_summary(controller_resources={
            "within": False, "growth": {"fds": 20, "threads": 0, "rss_kb": 0},
            "bounds": {"fds": 8, "threads": 4, "rss_kb": 30720}}),
         ["controller growth beyond bounds: fds +20 > +8"]),
        (_passing_summary(controller_resources={"within": False, "growth": None, "bounds": {"fds": 8}}),
         ["controller growth beyond bounds: no samples"]),
    ],
)
def test_verdict(summary, expected):
    assert soak.verdict(summary) == expected


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        ([], {"n": 0, "median": None, "p95": None, "max": None}),
        ([{"failover_gap_ms": 30.0}, {"failover_gap_ms": None}, {"failover_gap_ms": 50.0}],
         {"n": 2, "median": 40.0, "p95": 49.0, "max": 50.0}),
    ],
)
def test_gap_statistics(figures, expected):
    assert soak.gap_statistics(figures) == expected


def test_report_names_every_fault_and_the_verdict():
    summary = _passing_summary(
        duration_s=600, period_s=60, recover_after_s=20, rate=200, post_ratio=0.3, failback="never",
        sample_interval_s=2, passed=True, failures=[], requests_total=120000, requests_failed=20,
        availability_pct=99.98, acked_writes=36000,
    )
    summary["controller_resources"].update(baseline={"fds": 30, "threads": 8, "rss_kb": 60000},
                                           end={"fds": 30, "threads": 8, "rss_kb": 60010},
                                           max={"fds": 31, "threads": 8, "rss_kb": 60100}, samples=300)
    text = soak_report.soak_report(summary)
    assert "**Verdict: passed**" in text
    assert "| 1 | 30 | primary | secondary | 15.0 | 40.0 | 3 | 21.0 |" in text
    assert "| open file descriptors | 30 | 30 | 31 | +0 | +4 |" in text


def test_report_rewrites_the_page_and_picture_of_a_soak_folder(tmp_path):
    """`python -m experiments report DIR` on a soak: soak.md and its picture, not a trial report
    (which would say "no fault in this run" of a run with ten)."""
    import json

    summary = _passing_summary(
        duration_s=60, period_s=20, recover_after_s=5, rate=200, post_ratio=0.3, failback="never",
        sample_interval_s=2, passed=True, failures=[], load_start=100.0, scenario="soak",
    )
    summary["controller_resources"].update(baseline={"time": 104.0, "fds": 8, "threads": 10, "rss_kb": 50000})
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    (tmp_path / files.RESOURCES).write_text(
        "time,fds,threads,rss_kb\n100.0,8,10,49000\n102.0,9,11,50000\n104.0,8,10,50000\n")
    from experiments.results.report import write_report

    assert write_report(tmp_path) == tmp_path / "soak.md"
    assert "![controller resources](controller-resources.png)" in (tmp_path / "soak.md").read_text()
    assert (tmp_path / "controller-resources.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "report.md").exists()
