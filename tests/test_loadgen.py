"""Tests of experiments.load.loadgen against small HTTP servers on 127.0.0.1.

They check the open-loop promise (requests leave on schedule even when the server stalls
or is gone), that every request leaves exactly one row, and the command line's behaviour.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from experiments.analysis.metrics import RequestRecord
from experiments.load.loadgen import LoadResult, run_load
from experiments.results.records import read_requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_SEND_LAG_S = 0.05  # how late a request may leave compared with its schedule


class FakeWebApp(BaseHTTPRequestHandler):
    """GET / and POST /api/items, like the testbed's web app, answered by node "test"."""

    next_item_id = 0
    lock = threading.Lock()
    stall_s = 0.0  # set by a test: how long to stall the requests it chooses

    def stalls(self) -> bool:
        return False

    def do_GET(self) -> None:
        if self.stalls():
            time.sleep(self.stall_s)
            return  # no answer at all: the client has given up by now
        self.answer(200, b"hello")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        data = json.loads(self.rfile.read(length))
        if self.stalls():
            time.sleep(self.stall_s)
            return
        with FakeWebApp.lock:
            FakeWebApp.next_item_id += 1
            item_id = FakeWebApp.next_item_id
        body = json.dumps({"id": item_id, "write_id": data["write_id"], "served_by": "test"}).encode()
        self.answer(201, body)

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("X-Served-By", "test")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # no access log (and no reverse DNS lookup of the client)


class Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default of 5 would drop connections in bursts


@pytest.fixture
def serve() -> Iterator[Callable[[type[BaseHTTPRequestHandler]], str]]:
    """Starts a server with the given handler on a free port; gives its URL."""
    servers = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        server = Server(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load(
    url: str, out: Path, rate: float, duration: float, timeout: float = 1.0, post_ratio: float = 0.3
) -> tuple[float, LoadResult, list[RequestRecord]]:
    """Run the load generator from 0.1 s from now; gives the start time, result and rows."""
    start_at = time.time() + 0.1
    result = asyncio.run(run_load(url, rate, duration, post_ratio, timeout, start_at, out, seed=1))
    return start_at, result, read_requests(out)


def assert_sent_on_schedule(rows: list[RequestRecord]) -> None:
    lags = [row.sent_at - row.scheduled_at for row in rows]
    assert max(lags) < MAX_SEND_LAG_S
    assert min(lags) > -0.002  # never early (beyond clock rounding)


def test_steady_load(serve, tmp_path: Path) -> None:
    """Every request of the schedule is sent, once, in order, and none before its time.

    How late a request may leave is not checked here: on a loaded machine a unit test's send lag
    says nothing about the generator (a full `make test` once saw 56 ms). The timing targets are
    measured by `python -m experiments bench loadgen`.
    """
    url = serve(FakeWebApp)
    rate, duration, post_ratio = 300, 1.0, 0.3

    start_at, result, rows = load(url, tmp_path / "requests.csv", rate, duration, post_ratio=post_ratio)

    assert abs(len(rows) - rate * duration) <= 1
    assert (result.sent, result.ok, result.failed) == (len(rows), len(rows), 0)
    assert [row.request_id for row in rows] == list(range(len(rows)))  # unique, none missing
    posts = [row for row in rows if row.kind == "POST"]
    gets = [row for row in rows if row.kind == "GET"]
    assert abs(len(posts) / len(rows) - post_ratio) < 0.1
    assert len({row.write_id for row in posts}) == len(posts)
    assert all(row.write_id and row.item_id is not None and row.status == 201 for row in posts)
    assert all(row.write_id == "" and row.item_id is None and row.status == 200 for row in gets)
    assert all(row.ok and row.served_by == "test" and row.error == "" for row in rows)
    assert all(row.latency_ms is not None and row.latency_ms >= 0 for row in rows)
    # The schedule: request i at start_at + i / rate.
    assert rows[0].scheduled_at == pytest.approx(start_at, abs=1e-6)
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.scheduled_at - before.scheduled_at == pytest.approx(1 / rate, abs=2e-6)
    # Sent: every planned request, in the order of the schedule, none early.
    assert result.planned == result.sent == len(rows)
    sent = [row.sent_at for row in rows]
    assert sent == sorted(sent)
    assert all(row.sent_at - row.scheduled_at > -0.002 for row in rows)  # beyond clock rounding


def test_write_ids_differ_between_runs(serve, tmp_path: Path) -> None:
    url = serve(FakeWebApp)
    _, _, first = load(url, tmp_path / "first.csv", rate=50, duration=0.2, post_ratio=1.0)
    _, _, second = load(url, tmp_path / "second.csv", rate=50, duration=0.2, post_ratio=1.0)
    assert not {row.write_id for row in first} & {row.write_id for row in second}


class StallingWebApp(FakeWebApp):
    """Does not answer the requests that arrive between stall_from and stall_until."""

    stall_from = 0.0
    stall_until = 0.0
    stall_s = 0.5

    def stalls(self) -> bool:
        return self.stall_from <= time.time() < self.stall_until


def test_a_stalled_server_does_not_delay_later_requests(serve, tmp_path: Path) -> None:
    url = serve(StallingWebApp)
    now = time.time()  # the run starts at now + 0.1 and lasts 1 s
    StallingWebApp.stall_from = now + 0.4
    StallingWebApp.stall_until = now + 0.7

    _, result, rows = load(url, tmp_path / "requests.csv", rate=200, duration=1.0, timeout=0.25)

    assert len(rows) == 200 == result.sent
    margin = 0.02  # the server sees a request a little after it is sent
    during = [row for row in rows if now + 0.4 + margin <= row.sent_at < now + 0.7 - margin]
    after = [row for row in rows if row.sent_at >= now + 0.7 + margin]
    assert len(during) > 40 and len(after) > 40
    assert all(row.error == "timeout" for row in during)
    assert all(row.status == 0 and row.latency_ms is None and row.served_by == "" for row in during)
    assert all(row.ok and row.served_by == "test" for row in after)
    assert {row.error for row in rows} == {"", "timeout"}
    # The requests after the stall left on time too: held up by the stall, they would be late by
    # its 0.3 s. (Not the steady load's bound: a loaded machine's scheduling can be 80 ms late.)
    lags = [row.sent_at - row.scheduled_at for row in rows]
    assert max(lags) < 0.15 and min(lags) > -0.002


def test_nothing_listening(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    _, result, rows = load(url, tmp_path / "requests.csv", rate=100, duration=0.5)

    assert len(rows) == 50 == result.sent == result.failed
    assert result.ok == 0
    assert all(row.error == "refused" and row.status == 0 and row.latency_ms is None for row in rows)
    assert_sent_on_schedule(rows)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.load.loadgen", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--rate", "0"),
        ("--rate", "-5"),
        ("--rate", "fast"),
        ("--url", "ftp://127.0.0.1"),
        ("--url", "127.0.0.1:80"),
        ("--url", "http://127.0.0.1:80/some/path"),
        ("--post-ratio", "1.5"),
    ],
)
def test_bad_arguments_give_a_one_line_error(option: str, value: str, tmp_path: Path) -> None:
    arguments = {"--url": "http://127.0.0.1:1", "--rate": "10", "--duration": "1", "--post-ratio": "0.3"}
    arguments[option] = value
    command = [part for pair in arguments.items() for part in pair]

    completed = run_cli(*command, "--out", str(tmp_path / "requests.csv"))

    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    error_lines = [line for line in completed.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1
    assert option in error_lines[0]
    assert not (tmp_path / "requests.csv").exists()


def test_sigterm_records_what_was_sent_and_exits_0(tmp_path: Path) -> None:
    # A socket that accepts connections but never answers: every request stays in flight.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1024)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        out = tmp_path / "requests.csv"
        options = ["--url", url, "--rate", "100", "--duration", "30", "--timeout", "10", "--out", str(out)]
        process = subprocess.Popen(
            [sys.executable, "-m", "experiments.load.loadgen", *options],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            first_line = process.stdout.readline()  # printed when sending starts
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=5)
        finally:
            process.kill()

    assert process.returncode == 0, stderr
    assert first_line.startswith("loadgen: sending")
    assert "sent=" in stdout and "(interrupted)" in stdout
    rows = read_requests(out)
    assert 20 <= len(rows) <= 100
    assert all(row.error == "interrupted" for row in rows)
    assert [row.request_id for row in rows] == list(range(len(rows)))


# -- a rate that changes while the load runs (the live demo's `load N`) --------------------


@pytest.mark.parametrize(
    ("rates", "duration", "expected"),
    [
        # Asked after each request: 2/s, then 4/s from the second request on.
        ([2, 4, 4, 4], 1.0, [0.0, 0.5, 0.75]),
        ([10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10], 0.3, [0.0, 0.1, 0.2]),
        ([1], 0.5, [0.0]),
    ],
)
def test_schedule_follows_a_changing_rate(rates, duration, expected):
    from experiments.load.loadgen import schedule

    asked = iter(rates)
    times = list(schedule(rates[0], duration, 100.0, lambda: next(asked)))
    assert times == pytest.approx([100.0 + t for t in expected])


def test_fixed_schedule_is_exact_without_a_rate_source():
    from experiments.load.loadgen import schedule

    times = list(schedule(10, 3.0, 0.0))
    assert len(times) == 30 and times[-1] == pytest.approx(2.9)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("500", 500.0), ("12.5\n", 12.5), ("0", 7.0), ("-3", 7.0), ("fast", 7.0), ("nan", 7.0), (None, 7.0)],
)
def test_rate_file_keeps_the_last_good_rate(tmp_path, content, expected):
    from experiments.load.loadgen import RateFile

    path = tmp_path / "rate"
    if content is not None:
        path.write_text(content)
    assert RateFile(path, 7.0)() == expected


def test_rate_file_change_is_seen_by_a_running_load(tmp_path, serve):
    """The CSV shows the rate going from 20/s to 200/s when the file changes mid-run."""
    rate_file = tmp_path / "rate"
    rate_file.write_text("20")
    out = tmp_path / "requests.csv"
    url = serve(FakeWebApp)
    start_at = time.time() + 0.3

    def raise_rate() -> None:
        time.sleep(start_at + 1.0 - time.time())
        rate_file.write_text("200")

    threading.Thread(target=raise_rate, daemon=True).start()
    result = asyncio.run(run_load(url, 20, 2.0, 0.0, 1.0, start_at, out, rate_file=rate_file))
    assert result.planned is None
    sent = sorted(r.scheduled_at for r in read_requests(out))
    first_second = [t for t in sent if t - start_at < 0.9]
    last_half = [t for t in sent if t - start_at >= 1.4]
    assert 17 <= len(first_second) <= 19
    assert len(last_half) >= 80  # about 0.6 s at 200/s = 120


@pytest.mark.parametrize(("exc", "token"), [
    (ConnectionRefusedError(111, "refused"), "refused"),
    (ConnectionResetError(104, "reset by peer"), "reset"),
    (ConnectionResetError("Connection lost"), "reset"),  # asyncio's, with no errno
    (TimeoutError(), "timeout"),
    (OSError(113, "no route"), "unreachable"),
    (ValueError("odd"), "ValueError"),  # anything else: its name
])
def test_each_failure_is_named_by_one_short_word(exc, token):
    from experiments.load.loadgen import _error_token

    assert _error_token(exc) == token
