"""Open-loop HTTP load generator: one CSV row per request, to measure what clients see in a failover.

Runs as its own process on the client host of the testbed:

    python -m experiments.load.loadgen --url http://10.0.0.100:80 --rate 200 --duration 20 \\
        --post-ratio 0.3 --timeout 1.0 --start-at 1764180000.5 --out requests.csv --seed 1

Open loop: request i is sent at start_at + i / rate whatever happened to the requests
before it. A closed-loop client (send, wait for the answer, send again) slows down when
the server stalls and so sends almost nothing during an outage, which hides the outage;
here a dead server costs exactly the requests scheduled while it is dead.

Each request opens its own TCP connection, sends hand-written HTTP/1.1 with
`Connection: close` and reads the full response, all under one deadline (`--timeout`).
A fraction `--post-ratio` of the requests (drawn with `random.Random(seed)`) are writes,
`POST /api/items` with a write id unique to the run; the others are `GET /`.

With `--rate-file FILE` the rate can change while it runs (the live demo's `load N`): the
file holds one number, re-read when it changes; the next request then comes 1/rate after
the one before.

Rows are written as requests finish (so not in request order) and flushed every 0.25 s.
On SIGTERM or SIGINT it stops scheduling, cancels the requests still in flight and records
them with error "interrupted" (status 0, no latency), flushes and exits 0; requests whose
time had not come are not recorded. The CSV format is defined in `experiments.analysis.metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import errno
import gc
import json
import math
import os
import random
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from experiments.analysis.metrics import REQUEST_COLUMNS, RequestRecord

FLUSH_INTERVAL_S = 0.25  # the CSV is flushed at least this often, so a kill loses little
DRAIN_SLACK_S = 0.5  # after the last request, wait this long past --timeout before giving up
MAX_RESPONSE_BYTES = 1 << 20  # a body larger than this is not read further
START_DELAY_S = 0.2  # default --start-at: this long after the process starts
USER_AGENT = "testbed-loadgen"

# Which error token an OSError's errno gives; anything else is named by its exception class.
ERRNO_TOKENS = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
    errno.ECONNABORTED: "reset",
    errno.ENETUNREACH: "unreachable",
    errno.EHOSTUNREACH: "unreachable",
    errno.EMFILE: "no_file_descriptors",
    errno.ENFILE: "no_file_descriptors",
}


class IncompleteResponse(Exception):
    """The server closed the connection before the end of the response headers."""


class MalformedResponse(Exception):
    """What the server sent is not an HTTP/1.x response."""


@dataclass(frozen=True)
class Target:
    """Where to connect (host, port) and the Host header to send."""

    host: str
    port: int
    host_header: str


@dataclass(frozen=True)
class PlannedRequest:
    """A request of the schedule, with its bytes ready to send."""

    request_id: int
    kind: str
    write_id: str
    scheduled_at: float
    data: bytes


@dataclass(frozen=True)
class Response:
    """A complete HTTP response."""

    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class LoadResult:
    """What a run did: `sent` requests (one CSV row each), of which `ok` got a 2xx answer."""

    planned: int | None  # None: the rate could change while it ran
    sent: int
    ok: int
    failed: int
    interrupted: bool
    out_path: Path


def parse_url(url: str) -> Target:
    """The target of an `http://host[:port][/]` URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        # The paths are fixed (GET /, POST /api/items); a path here would be silently ignored.
        raise ValueError(f"the URL must not have a path or query, got {url!r}")
    try:
        port = parts.port or 80
    except ValueError as exc:  # a port that is not a number or out of range
        raise ValueError(f"bad port in URL {url!r}") from exc
    return Target(host=parts.hostname, port=port, host_header=parts.netloc)


# -- the schedule -------------------------------------------------------------------------


def request_count(rate: float, duration: float) -> int:
    """How many requests fit in `duration` at `rate`: those with i / rate < duration."""
    # Rounded first so that float noise (e.g. 0.1 * 30 = 3.0000000000000004) adds no request.
    return math.ceil(round(rate * duration, 6))


class RateFile:
    """The rate to send at, from a file another process rewrites; a bad value keeps the last good one."""

    CHECK_INTERVAL_S = 0.1  # how often the file is looked at: a change takes effect this fast

    def __init__(self, path: Path, rate: float) -> None:
        self.path = path
        self.rate = rate
        self.checked_at = 0.0
        self.mtime_ns: int | None = None

    def __call__(self) -> float:
        now = time.monotonic()
        if now - self.checked_at >= self.CHECK_INTERVAL_S:
            self.checked_at = now
            self._read()
        return self.rate

    def _read(self) -> None:
        try:
            mtime_ns = self.path.stat().st_mtime_ns
            if mtime_ns == self.mtime_ns:
                return
            self.mtime_ns = mtime_ns
            rate = float(self.path.read_text())
        except (OSError, ValueError):
            return
        if math.isfinite(rate) and rate > 0:
            self.rate = rate


def schedule(
    rate: float, duration: float, start_at: float, rate_now: Callable[[], float] | None = None
) -> Iterator[float]:
    """When each request is due: every 1/rate from `start_at`, for `duration` seconds.

    With `rate_now`, the rate is asked again after each request (it may change on the way).
    """
    if rate_now is None:
        # Computed from the index, not summed, so that float errors do not add up.
        for request_id in range(request_count(rate, duration)):
            yield start_at + request_id / rate
        return
    at = start_at
    while round(at - start_at, 9) < duration:  # rounded: summed float steps drift
        yield at
        at += 1 / rate_now()


def plan_requests(
    target: Target,
    rate: float,
    duration: float,
    post_ratio: float,
    start_at: float,
    seed: int,
    run_tag: str,
    rate_now: Callable[[], float] | None = None,
) -> Iterator[PlannedRequest]:
    """The requests of the run in order; the kinds depend on `seed` only."""
    rng = random.Random(seed)
    get_data = _get_request(target)  # the same bytes for every GET
    for request_id, scheduled_at in enumerate(schedule(rate, duration, start_at, rate_now)):
        if rng.random() < post_ratio:
            write_id = f"w{run_tag}-{request_id}"
            data = _post_request(target, write_id, f"request {request_id}")
            yield PlannedRequest(request_id, "POST", write_id, scheduled_at, data)
        else:
            yield PlannedRequest(request_id, "GET", "", scheduled_at, get_data)


def _get_request(target: Target) -> bytes:
    return (
        f"GET / HTTP/1.1\r\nHost: {target.host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def _post_request(target: Target, write_id: str, payload: str) -> bytes:
    body = json.dumps({"write_id": write_id, "payload": payload}).encode()
    head = (
        f"POST /api/items HTTP/1.1\r\nHost: {target.host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


# -- one request --------------------------------------------------------------------------


async def _exchange(target: Target, data: bytes) -> Response:
    """Connect, send `data`, read the full response."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(data)
        await writer.drain()
        return await _read_response(reader)
    finally:
        # Not awaiting wait_closed(): the response is complete, the close finishes on its own.
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> Response:
    status_line = await reader.readline()
    if not status_line:
        raise IncompleteResponse("closed before the status line")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise MalformedResponse(status_line[:80].decode("latin-1"))
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise IncompleteResponse("closed inside the headers")
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) <= MAX_RESPONSE_BYTES:
        body = await reader.readexactly(int(length))
    else:
        body = await reader.read(MAX_RESPONSE_BYTES)  # no length: the body ends when the server closes
    return Response(int(parts[1]), headers, body)


def _error_token(exc: BaseException) -> str:
    """The short word that names a failure in the CSV's error column."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in ERRNO_TOKENS:
        return ERRNO_TOKENS[exc.errno]
    if isinstance(exc, ConnectionResetError):  # asyncio's "Connection lost", with no errno
        return "reset"
    return type(exc).__name__


def _item_id(plan: PlannedRequest, response: Response) -> int | None:
    """The id a successful POST answered, or None."""
    if plan.kind != "POST" or response.status != 201:
        return None
    try:
        return int(json.loads(response.body)["id"])
    except (ValueError, KeyError, TypeError):
        return None


def _failed_record(plan: PlannedRequest, sent_at: float, error: str) -> RequestRecord:
    return RequestRecord(
        request_id=plan.request_id,
        kind=plan.kind,
        write_id=plan.write_id,
        scheduled_at=plan.scheduled_at,
        sent_at=sent_at,
        latency_ms=None,
        status=0,
        served_by="",
        error=error,
        item_id=None,
    )


def _response_record(
    plan: PlannedRequest, sent_at: float, latency_ms: float, response: Response
) -> RequestRecord:
    return RequestRecord(
        request_id=plan.request_id,
        kind=plan.kind,
        write_id=plan.write_id,
        scheduled_at=plan.scheduled_at,
        sent_at=sent_at,
        latency_ms=latency_ms,
        status=response.status,
        served_by=response.headers.get("x-served-by", ""),
        error="",
        item_id=_item_id(plan, response),
    )


class Recorder:
    """Writes one CSV row per finished request and counts the outcomes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(REQUEST_COLUMNS)
        self.sent = 0
        self.ok = 0

    def write(self, record: RequestRecord) -> None:
        self.writer.writerow(record.to_csv_row())
        self.sent += 1
        if record.ok:
            self.ok += 1

    def flush(self) -> None:
        # A flush hands the rows to the kernel, which keeps them even if this process is killed.
        self.file.flush()

    def close(self) -> None:
        self.file.close()


async def _run_request(plan: PlannedRequest, target: Target, timeout: float, recorder: Recorder) -> None:
    """Send one request and record its row, whatever happens."""
    sent_at = time.time()
    # Latency from the monotonic clock: the wall clock may be stepped during a run.
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            response = await _exchange(target, plan.data)
    except asyncio.CancelledError:
        recorder.write(_failed_record(plan, sent_at, "interrupted"))
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is a result, recorded as a row
        recorder.write(_failed_record(plan, sent_at, _error_token(exc)))
        return
    latency_ms = (time.perf_counter() - started) * 1000
    recorder.write(_response_record(plan, sent_at, latency_ms, response))


# -- the run ------------------------------------------------------------------------------


async def _sleep_until(when: float, stop: asyncio.Event) -> None:
    """Sleep until wall-clock time `when`, or until `stop` is set."""
    while not stop.is_set():
        remaining = when - time.time()
        if remaining <= 0:
            return
        # Short naps, so that a stop request is noticed soon even during a long wait.
        await asyncio.sleep(min(remaining, 0.1))


async def _flush_periodically(recorder: Recorder) -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        recorder.flush()


async def _drain(in_flight: set[asyncio.Task], timeout: float, stop: asyncio.Event) -> None:
    """Wait for the requests in flight; each ends by its own deadline, so this is short."""
    give_up_at = time.monotonic() + timeout + DRAIN_SLACK_S
    while in_flight and not stop.is_set() and time.monotonic() < give_up_at:
        await asyncio.wait(list(in_flight), timeout=0.1)


async def _cancel(in_flight: set[asyncio.Task]) -> None:
    """Cancel the requests still in flight and wait until each has recorded its row."""
    left = list(in_flight)
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)


async def _resolve(target: Target) -> Target:
    """The target with its host name resolved once, up front.

    A name would otherwise be looked up for every connection, in asyncio's small thread
    pool, which caps the request rate; an IP address is used as it is.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {target.host!r}: {exc.strerror}") from exc
    address = infos[0][4][0]
    return Target(host=address, port=target.port, host_header=target.host_header)


async def run_load(
    url: str,
    rate: float,
    duration: float,
    post_ratio: float,
    timeout: float,
    start_at: float | None,
    out_path: str | Path,
    seed: int = 1,
    stop: asyncio.Event | None = None,
    rate_file: Path | None = None,
) -> LoadResult:
    """Send the open-loop load and write one CSV row per request to `out_path`.

    `start_at` is the epoch time of the first request (None: now + 0.2 s). Setting `stop`
    ends the run early: no more requests are sent, those in flight are recorded as
    "interrupted". With `rate_file`, `rate` is only the first rate (see RateFile).
    """
    _check_numbers(rate, duration, post_ratio, timeout)
    target = await _resolve(parse_url(url))
    if start_at is None:
        start_at = time.time() + START_DELAY_S
    if stop is None:
        stop = asyncio.Event()
    out_path = Path(out_path)
    run_tag = os.urandom(4).hex()  # makes write ids unique across runs that share a database
    rate_now = RateFile(rate_file, rate) if rate_file is not None else None
    planned = None if rate_now else request_count(rate, duration)

    recorder = Recorder(out_path)
    flusher = asyncio.create_task(_flush_periodically(recorder))
    in_flight: set[asyncio.Task] = set()
    try:
        _warn_if_late(start_at)
        await _sleep_until(start_at, stop)
        if not stop.is_set():
            _say_start(planned, url, rate, duration, post_ratio, out_path)
        for plan in plan_requests(target, rate, duration, post_ratio, start_at, seed, run_tag, rate_now):
            await _sleep_until(plan.scheduled_at, stop)
            if stop.is_set():
                break
            task = asyncio.create_task(_run_request(plan, target, timeout, recorder))
            in_flight.add(task)  # asyncio keeps only weak references to tasks
            task.add_done_callback(in_flight.discard)
        await _drain(in_flight, timeout, stop)
    finally:
        # Normally nothing is left here; after a stop (or an error) the rest is cancelled,
        # and each cancelled request records its row before the file is closed.
        await _cancel(in_flight)
        flusher.cancel()
        recorder.close()
    return LoadResult(
        planned=planned,
        sent=recorder.sent,
        ok=recorder.ok,
        failed=recorder.sent - recorder.ok,
        interrupted=stop.is_set(),
        out_path=out_path,
    )


def _check_numbers(rate: float, duration: float, post_ratio: float, timeout: float) -> None:
    for name, value in (("rate", rate), ("duration", duration), ("timeout", timeout)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a number > 0, got {value}")
    if not 0 <= post_ratio <= 1:
        raise ValueError(f"post_ratio must be between 0 and 1, got {post_ratio}")


def _warn_if_late(start_at: float) -> None:
    """Say so when the run starts late: the requests already due all leave at once."""
    late_s = time.time() - start_at
    if late_s > 0.1:
        print(f"loadgen: warning: starting {late_s:.3f} s after --start-at", file=sys.stderr, flush=True)


def _say_start(
    planned: int | None, url: str, rate: float, duration: float, post_ratio: float, out_path: Path
) -> None:
    how_many = "requests" if planned is None else f"{planned} requests"
    print(
        f"loadgen: sending {how_many} to {url} at {rate:g}/s for {duration:g} s "
        f"({post_ratio:.0%} POST), rows to {out_path}",
        flush=True,
    )


# -- command line -------------------------------------------------------------------------


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _positive_number(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _ratio(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def _url(text: str) -> str:
    try:
        parse_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.load.loadgen", description="Open-loop HTTP load generator."
    )
    parser.add_argument("--url", type=_url, required=True, help="http://host[:port] of the service")
    parser.add_argument("--rate", type=_positive_number, required=True, help="requests per second")
    parser.add_argument("--duration", type=_positive_number, required=True, help="seconds of sending")
    parser.add_argument("--post-ratio", type=_ratio, default=0.0, help="share of POST requests (0-1)")
    parser.add_argument("--timeout", type=_positive_number, default=1.0, help="seconds per request")
    parser.add_argument(
        "--start-at",
        type=_number,
        default=None,
        help="epoch time of the first request (default: now + 0.2 s)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    parser.add_argument("--seed", type=int, default=1, help="seed of the GET/POST choice")
    parser.add_argument("--rate-file", type=Path, default=None,
                        help="a file holding the rate, re-read when it changes (--rate is the first rate)")
    return parser.parse_args(argv)


def _raise_file_limit() -> None:
    """Allow as many open sockets as the hard limit permits (capped at 65536).

    A dead server keeps rate x timeout connections open at once, more than the usual soft
    limit of 1024 file descriptors.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass  # keep the soft limit; failures show up as "no_file_descriptors" rows


async def _run_until_signal(args: argparse.Namespace) -> LoadResult:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return await run_load(
        args.url,
        args.rate,
        args.duration,
        args.post_ratio,
        args.timeout,
        args.start_at,
        args.out,
        args.seed,
        stop,
        args.rate_file,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _raise_file_limit()
    # Exclude the objects of start-up (modules, classes, ...) from the garbage collector's
    # scans: a full collection then pauses the sending for less time.
    gc.freeze()
    try:
        result = asyncio.run(_run_until_signal(args))
    except OSError as exc:  # the host name does not resolve, the CSV cannot be created
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return 1
    ending = " (interrupted)" if result.interrupted else ""
    print(f"loadgen: done: sent={result.sent} ok={result.ok} failed={result.failed}{ending}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
