"""Tests of experiments.analysis.metrics: percentiles, the figures of a trial, and the CSV format.

The trials below are small hand-built schedules: 10 requests at 10 per second, request i
scheduled (and sent) at T0 + i / 10, so the run covers [T0, T0 + 1.0) and every expected
figure can be worked out by hand in the comments.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from experiments.analysis import metrics
from experiments.analysis.metrics import (
    REQUEST_COLUMNS,
    RequestRecord,
    acked_write_ids,
    percentile,
    summarize,
    throughput_buckets,
)
from experiments.load.loadgen import Recorder
from experiments.results.records import read_events, read_requests

T0 = 1000.0
NO_LATENCY = {"p50": None, "p95": None, "p99": None}
LAG = {"p50": 0.0, "p99": 0.0, "max": 0.0}  # every request sent at its scheduled time


def ok(i: int, latency_ms: float, node: str, kind: str = "GET", item_id: int | None = None) -> RequestRecord:
    """A request answered 200 (201 for a POST) by `node`."""
    return RequestRecord(
        request_id=i,
        kind=kind,
        write_id=f"w-{i}" if kind == "POST" else "",
        scheduled_at=T0 + i / 10,
        sent_at=T0 + i / 10,
        latency_ms=latency_ms,
        status=201 if kind == "POST" else 200,
        served_by=node,
        error="",
        item_id=item_id,
    )


def failed(i: int, error: str = "timeout", kind: str = "GET") -> RequestRecord:
    """A request that got no response."""
    return RequestRecord(
        request_id=i,
        kind=kind,
        write_id=f"w-{i}" if kind == "POST" else "",
        scheduled_at=T0 + i / 10,
        sent_at=T0 + i / 10,
        latency_ms=None,
        status=0,
        served_by="",
        error=error,
        item_id=None,
    )


def http_error(i: int, latency_ms: float, node: str, status: int = 503) -> RequestRecord:
    """A request answered with an HTTP error status by `node`."""
    return RequestRecord(
        request_id=i,
        kind="GET",
        write_id="",
        scheduled_at=T0 + i / 10,
        sent_at=T0 + i / 10,
        latency_ms=latency_ms,
        status=status,
        served_by=node,
        error="",
        item_id=None,
    )


# -- percentile ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 0, 7.0),
        ([7.0], 99, 7.0),
        ([1, 2, 3, 4], 0, 1.0),
        ([1, 2, 3, 4], 100, 4.0),
        ([1, 2, 3, 4], 50, 2.5),  # rank 1.5: halfway between 2 and 3
        ([1, 2, 3, 4], 25, 1.75),  # rank 0.75
        ([4, 1, 3, 2], 25, 1.75),  # order of the input does not matter
        ([10, 20, 30, 40, 50], 95, 48.0),  # rank 3.8: 40 + 0.8 * 10
        ([10, 20, 30, 40, 50], 99, 49.6),  # rank 3.96
        ([10, 20, 30], 50, 20.0),
    ],
)
def test_percentile(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == pytest.approx(expected)


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_rejects_out_of_range(p: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], p)


# -- summarize ----------------------------------------------------------------------------

# Failover: h1 answers requests 0-4 (sent T0+0.0 .. T0+0.4), the fault is at T0+0.45,
# requests 5 and 6 time out, h2 answers 7-9. Request 1 and 8 are acknowledged writes,
# request 6 is a write that timed out.
FAILOVER = [
    ok(0, 10.0, "h1"),
    ok(1, 20.0, "h1", kind="POST", item_id=1),
    ok(2, 30.0, "h1"),
    ok(3, 40.0, "h1"),
    ok(4, 50.0, "h1"),  # done at T0 + 0.45: the last success of the primary
    failed(5),
    failed(6, kind="POST"),
    ok(7, 20.0, "h2"),  # done at T0 + 0.72: the first success of the secondary
    ok(8, 30.0, "h2", kind="POST", item_id=2),
    ok(9, 40.0, "h2"),
]
FAILOVER_EVENTS = [
    {"time": T0 - 5.0, "kind": "vip_moved"},  # before the fault: not the detection
    {"time": T0 + 0.5, "kind": "server_down"},
    {"time": T0 + 0.6, "kind": "vip_moved"},
    {"time": T0 + 0.9, "kind": "vip_moved"},
]
FAILOVER_SUMMARY = {
    "requests_total": 10,
    "requests_ok": 8,
    "requests_failed": 2,
    "availability_pct": 80.0,
    "window_s_before": 0.45,  # T0 + 0.45 - T0
    "throughput_rps_before": 11.111,  # 5 / 0.45
    "latency_ms_before": {"p50": 30.0, "p95": 48.0, "p99": 49.6},  # of 10, 20, 30, 40, 50
    "latency_from_schedule_ms_before": {"p50": 30.0, "p95": 48.0, "p99": 49.6},  # sent on time: the same
    "requests_failed_before": 0,
    "served_by_before": {"h1": 5},
    "window_s_after": 0.55,  # (T0 + 0.9 + 0.1) - (T0 + 0.45)
    "throughput_rps_after": 5.455,  # 3 / 0.55
    "latency_ms_after": {"p50": 30.0, "p95": 39.0, "p99": 39.8},  # of 20, 30, 40
    "latency_from_schedule_ms_after": {"p50": 30.0, "p95": 39.0, "p99": 39.8},  # sent on time: the same
    "requests_failed_after": 2,
    "served_by_after": {"h2": 3},
    "send_lag_ms": LAG,
    "schedule_latency_differs": False,
    "failover_gap_ms": 270.0,  # T0 + 0.72 - (T0 + 0.45)
    "detection_ms": 150.0,  # T0 + 0.6 - (T0 + 0.45)
    "outage_window_ms": 250.0,  # request 7, sent at T0 + 0.7
    "request_loss_pct": 20.0,
    "request_loss_pct_outage": 100.0,  # requests 5 and 6, sent during the 250 ms outage, both failed
    "acked_writes": 2,
    "vip_moves": 2,  # the two vip_moved events after the fault
    "vip_moves_before_fault": 1,  # the one at T0 - 5: a false failover
    "interruption_ms": 270.0,  # T0 + 0.45 to T0 + 0.72: the failover gap, here
}

# No fault: h1 answers everything, in 10 ms (requests 0-4) or 20 ms (5-9).
NO_FAULT = [ok(i, 10.0 if i < 5 else 20.0, "h1") for i in range(10)]
NO_FAULT_SUMMARY = {
    "requests_total": 10,
    "requests_ok": 10,
    "requests_failed": 0,
    "availability_pct": 100.0,
    "window_s_before": 1.0,  # the whole run
    "throughput_rps_before": 10.0,
    "latency_ms_before": {"p50": 15.0, "p95": 20.0, "p99": 20.0},
    "latency_from_schedule_ms_before": {"p50": 15.0, "p95": 20.0, "p99": 20.0},  # sent on time: the same
    "requests_failed_before": 0,
    "served_by_before": {"h1": 10},
    "window_s_after": None,
    "throughput_rps_after": None,
    "latency_ms_after": None,
    "latency_from_schedule_ms_after": None,  # sent on time: the same
    "requests_failed_after": None,
    "served_by_after": None,
    "send_lag_ms": LAG,
    "schedule_latency_differs": False,
    "failover_gap_ms": None,  # h2 never answered
    "detection_ms": None,
    "outage_window_ms": None,
    "request_loss_pct": 0.0,
    "request_loss_pct_outage": None,
    "acked_writes": 0,
    "vip_moves": 0,
    "vip_moves_before_fault": None,  # no fault
    "interruption_ms": None,
}

# Every request fails; the fault is at T0 + 0.25 (3 requests before it, 7 after).
ALL_FAILED = [failed(i, "refused") for i in range(10)]
ALL_FAILED_SUMMARY = {
    "requests_total": 10,
    "requests_ok": 0,
    "requests_failed": 10,
    "availability_pct": 0.0,
    "window_s_before": 0.25,
    "throughput_rps_before": 0.0,
    "latency_ms_before": NO_LATENCY,
    "latency_from_schedule_ms_before": NO_LATENCY,  # sent on time: the same
    "requests_failed_before": 3,
    "served_by_before": {},
    "window_s_after": 0.75,
    "throughput_rps_after": 0.0,
    "latency_ms_after": NO_LATENCY,
    "latency_from_schedule_ms_after": NO_LATENCY,  # sent on time: the same
    "requests_failed_after": 7,
    "served_by_after": {},
    "send_lag_ms": LAG,
    "schedule_latency_differs": False,
    "failover_gap_ms": None,
    "detection_ms": None,
    "outage_window_ms": None,
    "request_loss_pct": 100.0,
    "request_loss_pct_outage": None,
    "acked_writes": 0,
    "vip_moves": 0,  # the one vip_moved event came before the fault
    "vip_moves_before_fault": 1,
    "interruption_ms": None,  # nothing answered
}

# The primary keeps answering, with 503s, after the fault at T0 + 0.35, while h2 already
# serves some requests; the last request times out.
PRIMARY_KEEPS_FAILING = [
    ok(0, 10.0, "h1"),
    ok(1, 10.0, "h1"),
    ok(2, 10.0, "h1"),
    ok(3, 10.0, "h1"),  # done at T0 + 0.31: the last success of the primary
    http_error(4, 5.0, "h1"),
    ok(5, 20.0, "h2"),  # done at T0 + 0.52
    http_error(6, 5.0, "h1"),
    ok(7, 30.0, "h2"),
    http_error(8, 5.0, "h1"),
    failed(9),
]
PRIMARY_KEEPS_FAILING_SUMMARY = {
    "requests_total": 10,
    "requests_ok": 6,
    "requests_failed": 4,
    "availability_pct": 60.0,
    "window_s_before": 0.35,
    "throughput_rps_before": 11.429,  # 4 / 0.35
    "latency_ms_before": {"p50": 10.0, "p95": 10.0, "p99": 10.0},
    "latency_from_schedule_ms_before": {"p50": 10.0, "p95": 10.0, "p99": 10.0},  # sent on time: the same
    "requests_failed_before": 0,
    "served_by_before": {"h1": 4},
    "window_s_after": 0.65,
    "throughput_rps_after": 3.077,  # 2 / 0.65
    "latency_ms_after": {"p50": 25.0, "p95": 29.5, "p99": 29.9},  # of 20, 30
    "latency_from_schedule_ms_after": {"p50": 25.0, "p95": 29.5, "p99": 29.9},  # sent on time: the same
    "requests_failed_after": 4,  # three 503s and a timeout
    "served_by_after": {"h2": 2},  # the 503s count as failures, not as served
    "send_lag_ms": LAG,
    "schedule_latency_differs": False,
    "failover_gap_ms": 210.0,  # T0 + 0.52 - (T0 + 0.31)
    "detection_ms": None,  # no vip_moved event
    "outage_window_ms": 150.0,  # request 5, sent at T0 + 0.5
    "request_loss_pct": 40.0,
    "request_loss_pct_outage": 100.0,  # request 4, a 503
    "acked_writes": 0,
    "vip_moves": 0,
    "vip_moves_before_fault": 0,
    "interruption_ms": 210.0,
}

EMPTY_SUMMARY = {
    "requests_total": 0,
    "requests_ok": 0,
    "requests_failed": 0,
    "availability_pct": None,
    "window_s_before": 0.0,
    "throughput_rps_before": None,
    "latency_ms_before": NO_LATENCY,
    "latency_from_schedule_ms_before": NO_LATENCY,  # sent on time: the same
    "requests_failed_before": 0,
    "served_by_before": {},
    "window_s_after": 0.0,
    "throughput_rps_after": None,
    "latency_ms_after": NO_LATENCY,
    "latency_from_schedule_ms_after": NO_LATENCY,  # sent on time: the same
    "requests_failed_after": 0,
    "served_by_after": {},
    "send_lag_ms": {"p50": None, "p99": None, "max": None},
    "schedule_latency_differs": False,
    "failover_gap_ms": None,
    "detection_ms": None,
    "outage_window_ms": None,
    "request_loss_pct": None,
    "request_loss_pct_outage": None,
    "acked_writes": 0,
    "vip_moves": 0,
    "vip_moves_before_fault": 0,
    "interruption_ms": None,
}


@pytest.mark.parametrize(
    ("records", "events", "fault_at", "expected"),
    [
        pytest.param(FAILOVER, FAILOVER_EVENTS, T0 + 0.45, FAILOVER_SUMMARY, id="failover"),
        pytest.param(NO_FAULT, [], None, NO_FAULT_SUMMARY, id="no-fault"),
        pytest.param(ALL_FAILED, FAILOVER_EVENTS[:2], T0 + 0.25, ALL_FAILED_SUMMARY, id="all-failed"),
        pytest.param(
            PRIMARY_KEEPS_FAILING, [], T0 + 0.35, PRIMARY_KEEPS_FAILING_SUMMARY, id="primary-keeps-failing"
        ),
        pytest.param([], [], T0, EMPTY_SUMMARY, id="no-requests"),
    ],
)
def test_summarize(
    records: list[RequestRecord], events: list[dict], fault_at: float | None, expected: dict
) -> None:
    summary = summarize(records, events, fault_at, primary="h1", secondary="h2")
    assert summary == expected
    assert list(summary) == list(expected)  # the keys come in a fixed, readable order
    json.dumps(summary)  # serialisable as it is


def late(i: int, lag_ms: float, latency_ms: float = 2.0) -> RequestRecord:
    """A request answered in `latency_ms` but sent `lag_ms` after its scheduled time."""
    record = ok(i, latency_ms, "h1")
    return dataclasses.replace(record, sent_at=record.scheduled_at + lag_ms / 1000)


@pytest.mark.parametrize(("lags", "send_lag", "p99_from_schedule", "differs"), [
    ([0.0] * 10, {"p50": 0.0, "p99": 0.0, "max": 0.0}, 2.0, False),
    # one request sent 50 ms late: what its user waited shows only from the schedule
    ([0.0] * 9 + [50.0], {"p50": 0.0, "p99": 45.5, "max": 50.0}, 47.5, True),
    # a steady 0.5 ms late: within SCHEDULE_DIFFERS_MS, not worth a word
    ([0.5] * 10, {"p50": 0.5, "p99": 0.5, "max": 0.5}, 2.5, False),
])
def test_latency_from_the_schedule_shows_what_a_late_generator_hides(lags, send_lag, p99_from_schedule,
                                                                     differs):
    records = [late(i, lag) for i, lag in enumerate(lags)]
    summary = summarize(records, [], None, primary="h1", secondary="h2")
    assert summary["latency_ms_before"]["p99"] == 2.0  # from the send: the lag is hidden
    assert summary["send_lag_ms"] == send_lag
    assert summary["latency_from_schedule_ms_before"]["p99"] == p99_from_schedule
    assert summary["schedule_latency_differs"] is differs


def test_summarize_does_not_depend_on_row_order() -> None:
    shuffled = FAILOVER[5:] + FAILOVER[:5]
    assert summarize(shuffled, FAILOVER_EVENTS, T0 + 0.45, "h1", "h2") == FAILOVER_SUMMARY


def test_acked_write_ids() -> None:
    assert acked_write_ids(FAILOVER) == {"w-1", "w-8"}  # not w-6, which timed out


@pytest.mark.parametrize(
    ("record", "expected_ok", "expected_done_at"),
    [
        (ok(2, 30.0, "h1"), True, T0 + 0.23),
        (http_error(2, 5.0, "h1", status=503), False, T0 + 0.205),
        (http_error(2, 5.0, "h1", status=299), True, T0 + 0.205),
        (failed(2), False, None),
    ],
)
def test_record_ok_and_done_at(
    record: RequestRecord, expected_ok: bool, expected_done_at: float | None
) -> None:
    assert record.ok is expected_ok
    assert record.done_at == pytest.approx(expected_done_at)


# -- throughput buckets -------------------------------------------------------------------


def test_throughput_buckets() -> None:
    # 0.5 s buckets from T0: requests 0-4 in the first, 5-9 in the second.
    buckets = throughput_buckets(FAILOVER, bucket_s=0.5)
    assert buckets == [
        {"start": T0, "sent": 5, "ok": 5, "failed": 0, "served_by": {"h1": 5}},
        {"start": T0 + 0.5, "sent": 5, "ok": 3, "failed": 2, "served_by": {"h2": 3}},
    ]


def test_throughput_buckets_include_empty_buckets() -> None:
    records = [ok(0, 1.0, "h1"), ok(3, 1.0, "h2")]  # sent at T0 and T0 + 0.3
    buckets = throughput_buckets(records, bucket_s=0.1)
    assert [b["sent"] for b in buckets] == [1, 0, 0, 1]
    assert [b["start"] for b in buckets] == pytest.approx([T0, T0 + 0.1, T0 + 0.2, T0 + 0.3])
    assert throughput_buckets([]) == []


def test_throughput_buckets_reject_a_zero_bucket() -> None:
    with pytest.raises(ValueError):
        throughput_buckets(FAILOVER, bucket_s=0)


# -- reading the trial folder -------------------------------------------------------------


def test_read_requests_round_trips_what_loadgen_writes(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    recorder = Recorder(path)
    # Written in the order requests finish, not in request order; values already at the
    # CSV's precision (6 decimals for times, 3 for latency) so they come back equal.
    written = [FAILOVER[3], FAILOVER[1], FAILOVER[6], FAILOVER[0], http_error(4, 12.345, "h1")]
    for record in written:
        recorder.write(record)
    recorder.close()

    assert path.read_text().splitlines()[0] == ",".join(REQUEST_COLUMNS)
    assert read_requests(path) == sorted(written, key=lambda r: r.request_id)


def test_read_requests_drops_a_cut_off_last_line(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    recorder = Recorder(path)
    recorder.write(FAILOVER[0])
    recorder.close()
    with open(path, "a") as file:
        file.write("1,POST,w-1,1000.100000,1000.1")  # the writer was killed here

    assert read_requests(path) == [FAILOVER[0]]


def test_read_requests_rejects_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text("request_id,kind\n1,GET\n")
    with pytest.raises(ValueError, match="unexpected columns"):
        read_requests(path)


def test_read_events_merges_files_in_time_order(tmp_path: Path) -> None:
    controller = tmp_path / "controller-events.jsonl"
    experiment = tmp_path / "experiment-events.jsonl"
    controller.write_text(
        '{"time": 3.0, "kind": "vip_moved", "server": "h2"}\n\n{"time": 1.0, "kind": "controller_started"}\n'
    )
    experiment.write_text('{"time": 2.0, "kind": "fault"}\n{"time": 4.0, "ki')  # cut off

    events = read_events([controller, experiment])

    assert [e["kind"] for e in events] == ["controller_started", "fault", "vip_moved"]
    assert events[2]["server"] == "h2"
    assert read_events(experiment) == [{"time": 2.0, "kind": "fault"}]


def test_read_events_rejects_an_event_without_time(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "fault"}\n')
    with pytest.raises(ValueError, match="time"):
        read_events(path)


def test_aggregate_takes_median_p95_max_and_min_and_skips_missing_figures():
    trials = [{"failover_gap_ms": v, "detection_ms": None} for v in (10.0, 30.0, 20.0)]
    combined = metrics.aggregate(trials)
    assert combined["failover_gap_ms"] == {"n": 3, "median": 20.0, "p95": 29.0, "max": 30.0, "min": 10.0}
    assert combined["detection_ms"] == {"n": 0, "median": None, "p95": None, "max": None, "min": None}
    assert len(combined["per_trial"]) == 3


def _write(write_id, status=201, error=""):
    return RequestRecord(
        request_id=int(write_id[1:]), kind="POST", write_id=write_id, scheduled_at=1.0, sent_at=1.0,
        latency_ms=2.0 if status else None, status=status, served_by="p" if status else "", error=error,
        item_id=1 if status == 201 else None,
    )


@pytest.mark.parametrize(
    "record, outcome",
    [
        (_write("w1"), "acked"),
        (_write("w2", 409), "failed"),  # the server refused it
        (_write("w21", 503), "unknown"),  # an error after the commit, or a proxy that gave up
        (_write("w22", 504), "unknown"),
        (_write("w3", 0, "refused"), "failed"),  # never left the client
        (_write("w4", 0, "timeout"), "unknown"),
        (_write("w5", 0, "reset"), "unknown"),
        (_write("w6", 0, "IncompleteResponse"), "unknown"),
    ],
)
def test_write_outcome(record, outcome):
    assert metrics.write_outcome(record) == outcome


def test_write_ledger_is_a_set_check():
    records = [_write("w1"), _write("w2"), _write("w3", 0, "timeout"), _write("w4", 0, "timeout"),
               _write("w5", 400), _write("w6", 503)]
    present = {"w1": 1, "w3": 1, "w5": 1, "w6": 1, "w9": 1}  # w2 lost, w3 and w6 recovered, w5 a bug,
    # w9 unexpected
    assert metrics.write_ledger(records, present) == {
        "writes_sent": 6, "acked_writes": 2, "failed_writes": 1, "unknown_writes": 3,
        "acked_writes_lost": 1, "unexpected_writes": 1, "recovered_writes": 2,
        "failed_but_present_writes": 1,
    }


def ro(time: float, server: str, answer: str, previous: float | None = None) -> dict:
    return {"time": time, "server": server, "read_only": answer, "previous": previous}


@pytest.mark.parametrize(
    ("rows", "seen_ms", "windows", "most_ms"),
    [
        pytest.param([], None, None, None, id="nothing sampled"),
        # the fence lands before the promotion: never two writers
        pytest.param([ro(0.0, "h1", "0"), ro(0.0, "h2", "1"), ro(1.0, "h1", "1"), ro(1.002, "h2", "0"),
                      ro(2.0, "h1", "1"), ro(2.0, "h2", "0")], 0.0, 0, 0.0, id="fenced-then-promoted"),
        # promoted 5 ms before the old one was fenced
        pytest.param([ro(0.0, "h1", "0"), ro(0.0, "h2", "1"), ro(1.0, "h2", "0"), ro(1.005, "h1", "1"),
                      ro(2.0, "h1", "1"), ro(2.0, "h2", "0")], 5.0, 1, 5.0, id="promoted-first"),
        # a frozen writable database does not count while it gives no answer; it does from when
        # it wakes up still writable until its fence lands
        pytest.param([ro(0.0, "h1", "0"), ro(0.0, "h2", "1"), ro(1.0, "h1", ""), ro(1.2, "h2", "0"),
                      ro(4.0, "h1", "0"), ro(4.003, "h1", "1"), ro(5.0, "h1", "1"), ro(5.0, "h2", "0")],
                     3.0, 1, 3.0, id="frozen-then-woke"),
        # two windows, and one still open at the stop (the last rows)
        pytest.param([ro(0.0, "h1", "0"), ro(0.0, "h2", "0"), ro(0.01, "h2", "1"), ro(1.0, "h2", "0"),
                      ro(1.03, "h2", "1"), ro(1.03, "h1", "0")], 40.0, 2, 40.0, id="two-windows"),
        pytest.param([ro(0.0, "h1", "0"), ro(0.5, "h2", "0"), ro(0.6, "h1", "0"), ro(0.6, "h2", "0")],
                     100.0, 1, 100.0, id="open-at-the-stop"),
        # fenced at 1.000 and promoted at 1.001, but the old one's sampler saw read-only only at
        # 1.008 (its answer before that came at 1.003): seen, never two; at most 7 ms
        pytest.param([ro(0.0, "h1", "0"), ro(0.0, "h2", "1"), ro(1.001, "h2", "0", 0.999),
                      ro(1.008, "h1", "1", 0.9995), ro(2.0, "h1", "1", 1.995), ro(2.0, "h2", "0", 1.995)],
                     0.0, 0, 7.0, id="sampled-late"),
        # the old one woke up writable, answered so once, and was fenced 5 ms later: seen at an
        # instant (a window of no length), at most 5 ms
        pytest.param([ro(0.0, "h1", "0"), ro(0.0, "h2", "1"), ro(1.0, "h1", "", 0.99),
                      ro(1.2, "h2", "0", 1.19), ro(4.0, "h1", "0", 1.0), ro(4.005, "h1", "1", 4.0),
                      ro(5.0, "h1", "1", 4.995), ro(5.0, "h2", "0", 4.995)], 0.0, 1, 5.0,
                     id="woke-up-writable"),
    ],
)
def test_both_writable(rows, seen_ms, windows, most_ms) -> None:
    from experiments.analysis.metrics import both_writable

    figures = both_writable(rows)
    keys = ("both_writable_ms", "both_writable_windows", "both_writable_max_ms")
    measured = tuple(figures[key] for key in keys)
    assert measured == (None if seen_ms is None else pytest.approx(seen_ms), windows,
                        None if most_ms is None else pytest.approx(most_ms))


def test_vip_moves_count_from_the_fault_to_the_end_of_the_load() -> None:
    events = [{"time": 1.0, "kind": "vip_moved"}, {"time": 5.0, "kind": "vip_moved"},
              {"time": 8.0, "kind": "load_finished"}, {"time": 9.0, "kind": "vip_moved"}]
    assert metrics.vip_moves(events, 2.0) == 1  # the one after the load is the testbed's own stop
    assert metrics.vip_moves(events, None) == 2
    assert metrics.vip_moves(events[:2], 0.0) == 2  # no end of the load recorded: every move counts


@pytest.mark.parametrize(
    "times, fault_at, before",
    [
        ([], 2.0, 0),
        ([1.0], 2.0, 1),  # a false failover: the fault then hits a server without the VIP
        ([1.0, 1.5, 3.0], 2.0, 2),
        ([2.0, 3.0], 2.0, 0),  # a move at the fault's instant is the failover, not before it
        ([1.0], None, None),  # no fault: nothing is "before" it (vip_moves counts them all)
    ],
)
def test_vip_moves_before_the_fault_are_false_failovers(times, fault_at, before) -> None:
    events = [{"time": t, "kind": "vip_moved"} for t in times] + [{"time": 0.5, "kind": "server_down"}]
    assert metrics.vip_moves_before_fault(events, fault_at) == before


def _answered(done_at: float, ok: bool = True) -> RequestRecord:
    return RequestRecord(0, "GET", "", done_at, done_at - 0.001, 1.0, 200 if ok else 0, "h1", "", None)


@pytest.mark.parametrize(
    "answers, fault_at, longest",
    [
        ([(1.0, True), (1.01, True), (1.02, True)], None, None),  # no fault
        ([(1.0, True), (1.01, True), (1.05, True), (1.06, True)], 1.005, 40.0),  # the gap after the fault
        ([(1.0, True), (1.2, False), (1.3, True)], 1.1, 300.0),  # a failed answer is no answer
        ([(0.5, True), (1.0, True), (1.01, True)], 1.001, 10.0),  # a gap before the fault does not count
        ([(1.0, True)], 1.1, None),  # nothing answered after the fault
        ([(1.2, True)], 1.1, None),  # nothing answered before it
    ],
)
def test_interruption_is_the_longest_time_without_a_success_from_the_fault_on(answers, fault_at, longest):
    records = [_answered(t, ok) for t, ok in answers]
    measured = metrics.interruption_ms(records, fault_at)
    assert measured == (None if longest is None else pytest.approx(longest))
