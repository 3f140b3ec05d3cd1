"""Reading and writing the records of a run folder (file names in experiments/results/files.py).

Two kinds of reader: the plain ones (`read_requests`, `read_events`, `read_replication`) raise
ValueError on a malformed file and are what a run uses on its own fresh files; the `checked_*`
ones, for reports on folders a person points at, turn every problem into a `ReportError`
whose message names the file.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from experiments.analysis.metrics import REQUEST_COLUMNS, RequestRecord
from experiments.analysis.soak import Sample
from experiments.results import files
from services.files import write_json


def _complete_lines(path: Path) -> list[str]:
    """The file's lines, without a last line that was cut off.

    The writers append as they go and may be killed at any moment, so the file can end
    in the middle of a line; such a partial line would parse into wrong values (a
    truncated number), so it is dropped rather than trusted.
    """
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return text.splitlines()


def read_requests(path: str | Path) -> list[RequestRecord]:
    """The records of a requests.csv file, sorted by request_id.

    The load generator writes rows as requests finish, so the file is not in request order.
    """
    lines = _complete_lines(Path(path))
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != REQUEST_COLUMNS:
        raise ValueError(f"{path}: unexpected columns {header}, expected {list(REQUEST_COLUMNS)}")
    records = []
    for line_number, row in enumerate(reader, start=2):
        if len(row) != len(REQUEST_COLUMNS):
            raise ValueError(f"{path}:{line_number}: expected {len(REQUEST_COLUMNS)} fields, got {len(row)}")
        records.append(RequestRecord.from_csv_row(dict(zip(REQUEST_COLUMNS, row, strict=True))))
    records.sort(key=lambda record: record.request_id)
    return records


def read_events(paths: str | Path | Iterable[str | Path]) -> list[dict[str, Any]]:
    """The events of one JSONL file, or of several merged, sorted by "time".

    A trial has more than one event log (the controller's and the experiment's), hence
    the list. Each line must be a JSON object with at least "time" and "kind".
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    events = []
    for path in paths:
        for line_number, line in enumerate(_complete_lines(Path(path)), start=1):
            if not line.strip():
                continue
            event = json.loads(line)
            if not isinstance(event, dict) or "time" not in event or "kind" not in event:
                raise ValueError(f'{path}:{line_number}: an event needs "time" and "kind"')
            events.append(event)
    events.sort(key=lambda event: event["time"])
    return events


def read_replication(path: str | Path) -> list[dict[str, Any]]:
    """replication.csv rows (time, source, target, lag_ms); [] when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [
            {**row, "time": float(row["time"]), "lag_ms": float(row["lag_ms"])} for row in csv.DictReader(f)
        ]


def read_probes(path: str | Path) -> list[dict[str, Any]]:
    """probes.csv rows (time, server, ok as 0/1, latency_ms, detail, confirming); [] when there is none
    (no prober: keepalived or HAProxy check for themselves)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{**row, "time": float(row["time"]), "ok": int(row["ok"])} for row in csv.DictReader(f)]


def read_read_only(path: str | Path) -> list[dict[str, Any]]:
    """read-only.csv rows (time, server, read_only: "1", "0" or "" for no answer); [] when
    the file does not exist (a run older than the sampler)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{**row, "time": float(row["time"])} for row in csv.DictReader(f)]


EVENT_COLUMNS = ["time", "source", "kind", "server", "detail"]


def write_events_csv(path: Path, events: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EVENT_COLUMNS)
        for event in sorted(events, key=lambda e: e["time"]):
            rest = {k: v for k, v in event.items() if k not in EVENT_COLUMNS}
            detail = event.get("reason") or event.get("detail") or ""
            if rest:
                detail = f"{detail} {json.dumps(rest, sort_keys=True)}".strip()
            server = event.get("server") or ""
            writer.writerow([f"{event['time']:.6f}", event.get("source", ""), event["kind"], server, detail])


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    write_json(path, summary)


class ReportError(Exception):
    """A run folder cannot be reported on: a file is missing or bad; the message says which."""


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run folder's summary.json as a dict; ReportError if it is missing or not a JSON object."""
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder")
    path = run_dir / files.SUMMARY
    if not path.is_file():
        raise ReportError(f"{path}: missing (is this a run folder?)")
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return summary


def checked_requests(path: Path) -> list[RequestRecord]:
    """The records of requests.csv, which must exist and hold at least one request."""
    if not path.is_file():
        raise ReportError(f"{path}: missing; the load generator writes it and the pictures need it")
    try:
        records = read_requests(path)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        # metrics' own messages already start with the path; others (a bad number) do not.
        message = str(exc) if str(exc).startswith(str(path)) else f"{path}: malformed ({exc})"
        raise ReportError(message) from None
    if not records:
        raise ReportError(f"{path}: holds no requests")
    return records


def checked_events(trial_dir: Path) -> list[dict[str, Any]]:
    """The trial's events: from events.csv, or from the raw JSONL logs if it is missing.

    Events only add the vertical lines of the VIP moves, so a trial without any is still reported.
    """
    path = trial_dir / files.EVENTS
    if path.is_file():
        return checked_events_csv(path)
    logs = [p for p in (trial_dir / files.CONTROLLER_EVENTS, trial_dir / files.EXPERIMENT_EVENTS)
            if p.is_file()]
    try:
        return read_events(logs)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{trial_dir}: malformed event log ({exc})") from None


def checked_events_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of events.csv, sorted by time."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        events = [{**row, "time": float(row["time"])} for row in rows]
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: malformed, expected columns {EVENT_COLUMNS} ({exc})") from None
    if any(event.get("kind") is None for event in events):
        raise ReportError(f"{path}: malformed, expected columns {EVENT_COLUMNS}")
    return sorted(events, key=lambda event: event["time"])


def checked_replication(path: Path) -> list[tuple[float, float]]:
    """(time in epoch seconds, lag in ms) rows of replication.csv; [] if the file does not exist."""
    try:
        return [(row["time"], row["lag_ms"]) for row in read_replication(path)]
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: malformed, expected columns time,lag_ms ({exc})") from None


def checked_number(value: Any, path: Path, key: str) -> float | None:
    """A summary figure that must be a number or null; ReportError naming the file otherwise."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise ReportError(f"{path}: {key} should be a number or null, got {value!r}")


def read_resources(path: Path) -> list[Sample]:
    """The samples of a controller-resources.csv."""
    with open(path, newline="") as f:
        return [Sample(float(r["time"]), int(r["fds"]), int(r["threads"]), int(r["rss_kb"]))
                for r in csv.DictReader(f)]


class ExperimentLog:
    """The experiment's own event log (faults and phases), one JSON line each, flushed at once
    so that a run killed mid-way keeps every event it recorded."""

    def __init__(self, path: Path, on_record: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.file = open(path, "a", buffering=1)
        self.on_record = on_record  # told of each event once it is written (a run's progress lines)
        self.lock = threading.Lock()

    def record(self, kind: str, at: float | None = None, **fields: object) -> float:
        """Write an event; returns its time (epoch seconds): now, or `at` for what a witness
        saw a moment ago (a killed process's end). Threads may record at once; an event
        recorded after `close` (a witness outliving its run) is dropped."""
        with self.lock:
            now = time.time() if at is None else at
            if self.file.closed:
                return now
            event = {"time": now, "source": "experiment", "kind": kind, **fields}
            self.file.write(json.dumps(event) + "\n")
        if self.on_record is not None:
            self.on_record(kind, event)
        return now

    def close(self) -> None:
        with self.lock:
            self.file.close()
