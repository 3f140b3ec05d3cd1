"""The numbers of a trial, computed from what was recorded: requests.csv and the event logs.

This module is the one place that defines the request CSV format (`REQUEST_COLUMNS`,
`RequestRecord`); the load generator writes rows with it and the reports read them back
with `read_requests`. Everything else here is pure arithmetic on lists of records and
events, so every figure of a report can be recomputed from the trial folder alone.

The windows used by `summarize` (times are epoch seconds):

- The schedule: request i was scheduled at start_at + i / rate. The slot length
  1 / rate is recovered from the rows themselves (see `_schedule_interval`), and the run
  covers [first scheduled_at, last scheduled_at + 1 / rate), i.e. exactly `duration`.
- Without a fault (fault_at is None) every request is "before"; the before window is the
  whole run and every "after" figure is None.
- With a fault, a request is "before" when sent_at < fault_at and "after" otherwise.
  Throughput divides the successful requests of a window by its length:
  before = fault_at - first scheduled_at; after = (last scheduled_at + 1 / rate) - fault_at.
  A window of zero or negative length gives a throughput of None.
- Per window, the summary has `window_s`, `throughput_rps`, `latency_ms` (p50/p95/p99),
  `latency_from_schedule_ms`, `requests_failed` and `served_by`, each with the suffix
  `_before` or `_after`.

Open-loop honesty: `latency_ms` runs from when the request was sent; a load generator that
falls behind its schedule (its CPU busy, say) sends late, and that latency then hides the
wait (coordinated omission). `latency_from_schedule_ms` runs from when the schedule said to
send, as a user arriving on time would see it, and `send_lag_ms` (p50, p99, max of sent_at -
scheduled_at) says how late the generator was; `schedule_latency_differs` is true when the
two p99s differ by more than SCHEDULE_DIFFERS_MS and SCHEDULE_DIFFERS_PCT % in a window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REQUEST_COLUMNS = (
    "request_id",
    "kind",
    "write_id",
    "scheduled_at",
    "sent_at",
    "latency_ms",
    "status",
    "served_by",
    "error",
    "item_id",
)

VIP_MOVED = "vip_moved"  # the controller's event kind when the virtual IP changes server
PERCENTILES = (50, 95, 99)
SCHEDULE_DIFFERS_MS = 1.0  # the p99 from the schedule differs from the p99 from the send by more
SCHEDULE_DIFFERS_PCT = 10.0  # than this many ms and this many percent: the report says so


@dataclass(frozen=True)
class RequestRecord:
    """One request of the load generator: one row of requests.csv."""

    request_id: int
    kind: str  # "GET" or "POST"
    write_id: str  # "" for GET
    scheduled_at: float  # epoch seconds: when the open-loop schedule said to send it
    sent_at: float  # epoch seconds: when the connection attempt started
    latency_ms: float | None  # sent_at to the full response; None without a complete response
    status: int  # HTTP status, 0 without a response
    served_by: str  # the X-Served-By header, "" without one
    error: str  # "" on any HTTP response, else a short token such as "timeout"
    item_id: int | None  # the id a 201 POST answered, else None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def done_at(self) -> float | None:
        """When the full response arrived (epoch seconds), or None without one."""
        if self.latency_ms is None:
            return None
        return self.sent_at + self.latency_ms / 1000

    def to_csv_row(self) -> list[str]:
        """The row's fields in `REQUEST_COLUMNS` order, as written to requests.csv."""
        return [
            str(self.request_id),
            self.kind,
            self.write_id,
            f"{self.scheduled_at:.6f}",
            f"{self.sent_at:.6f}",
            "" if self.latency_ms is None else f"{self.latency_ms:.3f}",
            str(self.status),
            self.served_by,
            self.error,
            "" if self.item_id is None else str(self.item_id),
        ]

    @classmethod
    def from_csv_row(cls, row: Mapping[str, str]) -> RequestRecord:
        """The record of one requests.csv row given as {column: text}."""
        return cls(
            request_id=int(row["request_id"]),
            kind=row["kind"],
            write_id=row["write_id"],
            scheduled_at=float(row["scheduled_at"]),
            sent_at=float(row["sent_at"]),
            latency_ms=float(row["latency_ms"]) if row["latency_ms"] else None,
            status=int(row["status"]),
            served_by=row["served_by"],
            error=row["error"],
            item_id=int(row["item_id"]) if row["item_id"] else None,
        )


# -- reading the trial folder -------------------------------------------------------------


# -- basic statistics ----------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float | None:
    """The p-th percentile (0-100) with linear interpolation, as numpy's default; None if empty."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {p}")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = p / 100 * (len(ordered) - 1)
    below = math.floor(rank)
    above = math.ceil(rank)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _latency_summary(
    records: Iterable[RequestRecord], from_schedule: bool = False
) -> dict[str, float | None]:
    """p50, p95 and p99 of the latency of the successful requests among `records`, from when
    each was sent or, `from_schedule`, from when the schedule said to send it."""
    latencies = [r.latency_ms + ((r.sent_at - r.scheduled_at) * 1000 if from_schedule else 0.0)
                 for r in records if r.ok and r.latency_ms is not None]
    return {f"p{p}": _rounded(percentile(latencies, p)) for p in PERCENTILES}


def send_lag_ms(records: Iterable[RequestRecord]) -> dict[str, float | None]:
    """How late the load generator sent, against its schedule: p50, p99 and max in ms."""
    lags = [max(0.0, (r.sent_at - r.scheduled_at) * 1000) for r in records]
    return {"p50": _rounded(percentile(lags, 50)), "p99": _rounded(percentile(lags, 99)),
            "max": _rounded(max(lags)) if lags else None}


def schedule_latency_differs(measured: Mapping[str, Any], from_schedule: Mapping[str, Any]) -> bool:
    """Whether a window's p99 from the schedule is further from its p99 from the send than
    SCHEDULE_DIFFERS_MS and SCHEDULE_DIFFERS_PCT (both): the generator's lateness shows."""
    sent, scheduled = measured.get("p99"), from_schedule.get("p99")
    if sent is None or scheduled is None:
        return False
    gap = scheduled - sent
    return gap > SCHEDULE_DIFFERS_MS and gap > sent * SCHEDULE_DIFFERS_PCT / 100


def _served_by_counts(records: Iterable[RequestRecord]) -> dict[str, int]:
    """How many successful requests each server answered."""
    counts = Counter(r.served_by for r in records if r.ok)
    return dict(sorted(counts.items()))


def _throughput(records: Sequence[RequestRecord], window_s: float) -> float | None:
    """Successful requests per second over a window of `window_s` seconds."""
    if window_s <= 0:
        return None
    return round(sum(1 for r in records if r.ok) / window_s, 3)


def _failed_count(records: Iterable[RequestRecord]) -> int:
    return sum(1 for r in records if not r.ok)


def _schedule_interval(records: Sequence[RequestRecord]) -> float:
    """The time between two scheduled requests (1 / rate), recovered from the rows.

    scheduled_at = start_at + request_id / rate, so two rows are enough; using the request
    ids (not the row count) keeps this right when some rows are missing. 0 for one row.
    """
    first = min(records, key=lambda r: r.request_id)
    last = max(records, key=lambda r: r.request_id)
    if last.request_id == first.request_id:
        return 0.0
    return (last.scheduled_at - first.scheduled_at) / (last.request_id - first.request_id)


# -- the figures of a trial ----------------------------------------------------------------


def acked_write_ids(records: Iterable[RequestRecord]) -> set[str]:
    """The write ids the service acknowledged (POST answered 201): these must never be lost."""
    return {r.write_id for r in records if _is_acked_write(r)}


def _is_acked_write(record: RequestRecord) -> bool:
    return record.kind == "POST" and record.status == 201 and record.write_id != ""


def failover_gap_ms(records: Iterable[RequestRecord], primary: str, secondary: str) -> float | None:
    """How long no successful response arrived while the service moved from primary to secondary.

    From the completion of the last successful request served by `primary` to the
    completion of the first successful request served by `secondary` after it. Meant for a
    single failover: if the primary serves again later (failback), its last response is
    after the failover and the gap is measured from there.
    """
    done = [(r.done_at, r.served_by) for r in records if r.ok and r.done_at is not None]
    primary_done = [at for at, node in done if node == primary]
    if not primary_done:
        return None
    last_primary = max(primary_done)
    secondary_after = [at for at, node in done if node == secondary and at > last_primary]
    if not secondary_after:
        return None
    return (min(secondary_after) - last_primary) * 1000


def detection_ms(events: Iterable[Mapping[str, Any]], fault_at: float) -> float | None:
    """From the fault to the first "vip_moved" event at or after it."""
    moves = [e["time"] for e in events if e["kind"] == VIP_MOVED and e["time"] >= fault_at]
    if not moves:
        return None
    return (min(moves) - fault_at) * 1000


def vip_moves(events: Iterable[Mapping[str, Any]], fault_at: float | None) -> int:
    """How many times the VIP moved from the fault on (every move when there is no fault: all
    of them false), until the load finished (what the testbed's own stop does after it, such
    as keepalived handing the address back as it stops, is no part of the trial). More than
    one for a single fault is a ping-pong, each move a change of the writable database."""
    events = list(events)
    end = min((e["time"] for e in events if e["kind"] == "load_finished"), default=math.inf)
    return sum(1 for e in events if e["kind"] == VIP_MOVED and e["time"] <= end
               and (fault_at is None or e["time"] >= fault_at))


def interruption_ms(records: Iterable[RequestRecord], fault_at: float | None) -> float | None:
    """The longest time without a successful answer around the fault: the longest gap between
    two successive successful answers (their `done_at`), from the last one before the fault to
    the end. What a user saw of a fault that moves no VIP (a cable between switches cut), and
    of one that does. None without a fault or without a success before and after it."""
    if fault_at is None:
        return None
    done = sorted(r.done_at for r in records if r.ok and r.done_at is not None)
    before = [t for t in done if t < fault_at]
    after = [t for t in done if t >= fault_at]
    if not before or not after:
        return None
    times = [before[-1], *after]
    return max(b - a for a, b in zip(times, times[1:], strict=False)) * 1000


def vip_moves_before_fault(events: Iterable[Mapping[str, Any]], fault_at: float | None) -> int | None:
    """How many times the VIP moved before the fault (None without one): each a false failover,
    after which the fault hits a server that no longer holds the VIP."""
    if fault_at is None:
        return None
    return sum(1 for e in events if e["kind"] == VIP_MOVED and e["time"] < fault_at)


def outage_window_ms(records: Iterable[RequestRecord], fault_at: float) -> float | None:
    """From the fault to the sending of the first request sent after it that succeeded."""
    sent = [r.sent_at for r in records if r.ok and r.sent_at >= fault_at]
    if not sent:
        return None
    return (min(sent) - fault_at) * 1000


def summarize(
    records: Sequence[RequestRecord],
    events: Iterable[Mapping[str, Any]],
    fault_at: float | None,
    primary: str,
    secondary: str,
) -> dict[str, Any]:
    """Every figure of one trial, as a JSON-serialisable dict; floats rounded to 3 decimals.

    The before/after windows are defined in this module's docstring. Latencies and
    "served_by" counts are over successful (2xx) requests; "failed" is every other request
    (no response, or a non-2xx response). All "after" figures, `detection_ms` and
    `outage_window_ms` are None when there is no fault.
    """
    events = list(events)
    total = len(records)
    ok = sum(1 for r in records if r.ok)
    summary: dict[str, Any] = {
        "requests_total": total,
        "requests_ok": ok,
        "requests_failed": total - ok,
        "availability_pct": round(ok / total * 100, 3) if total else None,
    }
    before, after = _split_windows(records, fault_at)
    for name, value in _window_figures(before).items():
        summary[f"{name}_before"] = value
    for name, value in _window_figures(after).items():
        summary[f"{name}_after"] = value
    summary["send_lag_ms"] = send_lag_ms(records)
    summary["schedule_latency_differs"] = any(
        schedule_latency_differs(summary[f"latency_ms_{side}"] or {},
                                 summary[f"latency_from_schedule_ms_{side}"] or {})
        for side in ("before", "after"))
    summary["failover_gap_ms"] = _rounded(failover_gap_ms(records, primary, secondary))
    if fault_at is None:
        summary["detection_ms"] = None
        summary["outage_window_ms"] = None
    else:
        summary["detection_ms"] = _rounded(detection_ms(events, fault_at))
        summary["outage_window_ms"] = _rounded(outage_window_ms(records, fault_at))
    summary["request_loss_pct"] = round((total - ok) / total * 100, 3) if total else None
    outage_ms = summary["outage_window_ms"]
    summary["request_loss_pct_outage"] = _rounded(outage_loss_pct(records, fault_at, outage_ms))
    summary["acked_writes"] = sum(1 for r in records if _is_acked_write(r))
    summary["vip_moves"] = vip_moves(events, fault_at)
    summary["vip_moves_before_fault"] = vip_moves_before_fault(events, fault_at)
    summary["interruption_ms"] = _rounded(interruption_ms(records, fault_at))
    return summary


def outage_loss_pct(
    records: Iterable[RequestRecord], fault_at: float | None, outage_ms: float | None
) -> float | None:
    """Failed / sent (%) among the requests sent during the outage: from the fault until the
    first request that succeeded after it was sent (None without a fault or an outage)."""
    if fault_at is None or outage_ms is None:
        return None
    end = fault_at + outage_ms / 1000
    during = [r for r in records if fault_at <= r.sent_at < end]
    if not during:
        return 0.0
    return sum(1 for r in during if not r.ok) / len(during) * 100


@dataclass(frozen=True)
class _Window:
    """The requests sent in one window of a trial, and the window's length in seconds."""

    records: list[RequestRecord]
    length_s: float


def _split_windows(
    records: Sequence[RequestRecord], fault_at: float | None
) -> tuple[_Window, _Window | None]:
    """The before and after windows (after is None without a fault); see the module docstring."""
    if not records:
        empty = _Window([], 0.0)
        return empty, (None if fault_at is None else empty)
    first_scheduled = min(r.scheduled_at for r in records)
    run_end = max(r.scheduled_at for r in records) + _schedule_interval(records)
    if fault_at is None:
        return _Window(list(records), run_end - first_scheduled), None
    before = _Window([r for r in records if r.sent_at < fault_at], fault_at - first_scheduled)
    after = _Window([r for r in records if r.sent_at >= fault_at], run_end - fault_at)
    return before, after


def _window_figures(window: _Window | None) -> dict[str, Any]:
    """Length, throughput, latency, failures and servers of one window; all None without it."""
    if window is None:
        return dict.fromkeys(["window_s", "throughput_rps", "latency_ms", "latency_from_schedule_ms",
                              "requests_failed", "served_by"])
    return {
        "window_s": round(window.length_s, 3),
        "throughput_rps": _throughput(window.records, window.length_s),
        "latency_ms": _latency_summary(window.records),
        "latency_from_schedule_ms": _latency_summary(window.records, from_schedule=True),
        "requests_failed": _failed_count(window.records),
        "served_by": _served_by_counts(window.records),
    }


def throughput_buckets(
    records: Iterable[RequestRecord], bucket_s: float = 0.1, origin: float | None = None
) -> list[dict[str, Any]]:
    """Requests per time bucket (by sent_at), for plots; buckets with nothing sent are included.

    Each bucket: "start" (epoch seconds), "sent", "ok", "failed" and "served_by" (successful
    requests per server). Buckets start at `origin`, by default the earliest sent_at.
    """
    if bucket_s <= 0:
        raise ValueError(f"bucket_s must be > 0, got {bucket_s}")
    records = list(records)
    if not records:
        return []
    if origin is None:
        origin = min(r.sent_at for r in records)
    # Whole microseconds (the CSV's precision), so that float error cannot move a request
    # that sits exactly on a bucket edge into the previous bucket.
    bucket_us = round(bucket_s * 1_000_000)
    by_bucket: dict[int, list[RequestRecord]] = {}
    for record in records:
        index = round((record.sent_at - origin) * 1_000_000) // bucket_us
        by_bucket.setdefault(index, []).append(record)
    first, last = min(by_bucket), max(by_bucket)
    buckets = []
    for index in range(first, last + 1):
        members = by_bucket.get(index, [])
        ok = sum(1 for r in members if r.ok)
        buckets.append(
            {
                "start": round(origin + index * bucket_s, 6),
                "sent": len(members),
                "ok": ok,
                "failed": len(members) - ok,
                "served_by": _served_by_counts(members),
            }
        )
    return buckets


# The per-trial figures that are combined across trials, and how.
AGGREGATED_KEYS = (
    "failover_gap_ms",
    "detection_ms",
    "outage_window_ms",
    "availability_pct",
    "requests_failed",
    "throughput_rps_before",
    "throughput_rps_after",
    "acked_writes",
    "acked_writes_lost",
    "vip_moves",
    "vip_moves_before_fault",
    "interruption_ms",
    "both_writable_ms",
    "both_writable_longest_ms",
    "both_writable_windows",
    "both_writable_max_ms",
)


def aggregate(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Figures over several trials: for each key of AGGREGATED_KEYS, median, p95, max and min.

    Trials where a figure is None (no failover happened, say) are left out of that figure,
    and `n` says how many trials it is over.
    """
    combined: dict[str, Any] = {}
    for key in AGGREGATED_KEYS:
        values = [s[key] for s in summaries if s.get(key) is not None]
        combined[key] = {
            "n": len(values),
            "median": _rounded(percentile(values, 50)),
            "p95": _rounded(percentile(values, 95)),
            "max": _rounded(max(values)) if values else None,
            "min": _rounded(min(values)) if values else None,
        }
    combined["failover_stages_ms"] = stage_medians(summaries)
    combined["per_trial"] = [dict(s) for s in summaries]
    return combined


def stage_medians(summaries: Sequence[Mapping[str, Any]]) -> dict[str, float | None] | None:
    """Each failover stage's median time over the trials that reached it (`failover_stages_ms`
    of each summary, experiments/analysis/stages.py); None when no trial had a fault."""
    per_trial = [s["failover_stages_ms"] for s in summaries
                 if isinstance(s.get("failover_stages_ms"), Mapping)]
    if not per_trial:
        return None
    stages = list(dict.fromkeys(stage for stages in per_trial for stage in stages))
    return {stage: _rounded(percentile([t[stage] for t in per_trial if t.get(stage) is not None], 50))
            for stage in stages}


def _writable_intervals(rows: Iterable[Mapping[str, Any]], seen: bool) -> list[tuple[float, float]]:
    """Each (start, end) in which one database was writable: from the answer that showed it to
    the next answer that showed otherwise (`seen` False: the most it can have been) or to the
    last answer before that one (`seen` True: when it was last seen writable; rows without a
    `previous` time count as unseen-free, as if sampled continuously)."""
    by_server: dict[str, list[Mapping[str, Any]]] = {}
    ordered = sorted(rows, key=lambda row: row["time"])
    for row in ordered:
        by_server.setdefault(row["server"], []).append(row)
    stop = ordered[-1]["time"] if ordered else 0.0  # a server's last answer holds until then
    intervals = []
    for answers in by_server.values():
        before = None
        for current, following in zip(answers, [*answers[1:], None], strict=True):
            # A row that repeats the answer before it (the stop's) goes on that one's interval.
            repeated, before = current["read_only"] == before, current["read_only"]
            if current["read_only"] != "0" or repeated:
                continue
            end = stop if following is None else following["time"]
            if seen and following is not None and following.get("previous") not in (None, ""):
                end = float(following["previous"])
            intervals.append((current["time"], max(end, current["time"])))
    return intervals


def writable_windows(rows: Iterable[Mapping[str, Any]], seen: bool = False) -> list[tuple[float, float]]:
    """From read-only.csv's rows (time, server, read_only: "1", "0" or "" for no answer, and
    previous: when the answer before it came): each (start, end) during which more than one
    database was writable, seen so (`seen`) or possibly (the sampler's resolution included).
    The last rows are the stop, and end a window still open. A seen window may have no length:
    both answered writable at one instant."""
    points = []
    for start, end in _writable_intervals(rows, seen):
        points += [(start, 0), (end, 1)]  # at one instant, a start comes before an end
    windows, writers, opened = [], 0, None
    for at, kind in sorted(points):
        writers += 1 if kind == 0 else -1
        if writers > 1 and opened is None:
            opened = at
        elif writers <= 1 and opened is not None:
            windows.append((opened, at))
            opened = None
    return windows


def both_writable(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`both_writable_ms`: the time more than one database was seen writable (`writable_windows`
    seen), its longest window and how many windows; `both_writable_max_ms`: the most it can have
    been, the sampler's resolution included. None for all when nothing was sampled."""
    if not rows:
        return {"both_writable_ms": None, "both_writable_longest_ms": None, "both_writable_windows": None,
                "both_writable_max_ms": None}
    seen = [end - start for start, end in writable_windows(rows, seen=True)]
    most = [end - start for start, end in writable_windows(rows)]
    return {"both_writable_ms": _rounded(sum(seen) * 1000),
            "both_writable_longest_ms": _rounded(max(seen, default=0.0) * 1000),
            "both_writable_windows": len(seen),
            "both_writable_max_ms": _rounded(sum(most) * 1000)}


def replication_lag(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """p50, p99 and max of the heartbeats' replication lag (ms), over every measured heartbeat."""
    lags = [row["lag_ms"] for row in rows]
    return {
        "n": len(lags),
        "p50": _rounded(percentile(lags, 50)),
        "p99": _rounded(percentile(lags, 99)),
        "max": _rounded(max(lags)) if lags else None,
    }


# -- the write ledger ---------------------------------------------------------------------------

# Errors that prove a write never reached the server: nothing was sent. Any other error after
# the request left (a time-out, a reset mid-request) leaves its outcome unknown.
NOT_SENT_ERRORS = frozenset({"refused", "unreachable"})


def write_outcome(record: RequestRecord) -> str:
    """A write's outcome as the client knows it: "acked", "failed" or "unknown".

    Failed only when it cannot have been written: it never left, or the server refused it
    (4xx). A 5xx answer leaves the outcome unknown, as a time-out does: the error may have
    come after the commit (a connection lost while the answer was on its way), and a proxy
    answers 502/503/504 for a request it may have passed on before giving up."""
    if record.ok:
        return "acked"
    if 400 <= record.status < 500 or record.error in NOT_SENT_ERRORS:
        return "failed"
    return "unknown"


def write_ledger(records: Iterable[RequestRecord], present: Mapping[str, int]) -> dict[str, Any]:
    """Check every write the load sent against the rows a database holds, as a set check.

    `present` maps each write id found in the database to how many rows carry it.
    - lost: acknowledged, but missing;
    - unexpected: present, but never sent;
    - recovered: outcome unknown to the client, but present (allowed);
    - failed_but_present: refused, yet present (would be a bug).
    No "duplicated": the items table's unique key on the write id makes a second row with the
    same id impossible (a second insert is answered 409), so such a count could never be
    anything but 0.
    """
    outcomes: dict[str, str] = {}
    for record in records:
        if record.kind == "POST" and record.write_id:
            outcomes[record.write_id] = write_outcome(record)
    by_outcome = {kind: {w for w, o in outcomes.items() if o == kind}
                  for kind in ("acked", "failed", "unknown")}
    found = set(present)
    return {
        "writes_sent": len(outcomes),
        "acked_writes": len(by_outcome["acked"]),
        "failed_writes": len(by_outcome["failed"]),
        "unknown_writes": len(by_outcome["unknown"]),
        "acked_writes_lost": len(by_outcome["acked"] - found),
        "unexpected_writes": len(found - set(outcomes)),
        "recovered_writes": len(by_outcome["unknown"] & found),
        "failed_but_present_writes": len(by_outcome["failed"] & found),
    }
