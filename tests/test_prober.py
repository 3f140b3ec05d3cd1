"""The prober (controller/prober.py) without Mininet: its pure parts with tables, one probe
against a web server on 127.0.0.1, and its reports through a real UNIX datagram socket.

The controller reads what the prober sends; the round trip below goes through the same
socket type and the controller's own reader, so a field renamed on one side fails here.
"""

import csv
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.app import EventProbeResult
from controller.probe_intake import ProbeIntake, open_probe_socket, receive_datagram
from controller.prober import (
    LATE,
    TIMED_OUT,
    ProbeAttempt,
    ProbeRecorder,
    next_probe,
    probe_message,
    probe_once,
    send_report,
)

HEALTH = {"status": "ok", "gtid": "1-1-7,2-2-3", "read_only": False, "replication": "running",
          "replication_error": ""}
NOTHING = {"gtid": None, "read_only": None, "replication": None, "replication_error": "", "confirming": "",
           "late": False}

# What a probe found (ok, latency, detail, the /health body), and the report's fields.
REPORTS = [
    (True, 2.34567, "", HEALTH,
     {"ok": True, "latency_ms": 2.346, "detail": "", "timed_out": False, "gtid": "1-1-7,2-2-3",
      "read_only": False, "replication": "running", "replication_error": "", "confirming": "",
      "late": False}),
    (False, 35.0, TIMED_OUT, {},
     {"ok": False, "latency_ms": 35.0, "detail": TIMED_OUT, "timed_out": True, **NOTHING}),
    # A refusal or an error status is a definite failure, not a time-out.
    (False, 0.4, "ConnectionRefusedError", {},
     {"ok": False, "latency_ms": 0.4, "detail": "ConnectionRefusedError", "timed_out": False, **NOTHING}),
    (False, 3.0, "HTTP 503", {},
     {"ok": False, "latency_ms": 3.0, "detail": "HTTP 503", "timed_out": False, **NOTHING}),
    # A web service whose database has not said its position yet.
    (True, 1.0, "", {"status": "ok"},
     {"ok": True, "latency_ms": 1.0, "detail": "", "timed_out": False, **NOTHING}),
    # A replication state the controller does not know is no news; a long error is cut.
    (True, 1.0, "", {"replication": "fine", "replication_error": "x" * 500},
     {"ok": True, "latency_ms": 1.0, "detail": "", "timed_out": False, **NOTHING,
      "replication_error": "x" * 200}),
]


@pytest.mark.parametrize("ok, latency_ms, detail, health, expected", REPORTS)
def test_probe_message_says_what_the_controller_reads(ok, latency_ms, detail, health, expected):
    assert probe_message("primary", ok, latency_ms, detail, health, 100.5) == {
        "server": "primary", "time": 100.5, **expected,
    }


@pytest.mark.parametrize(
    "next_at, now, expected",
    [
        (10.0, 10.01, (10.04, 0.03)),  # on time: sleep until the next slot
        (10.0, 10.0, (10.04, 0.04)),
        (10.0, 10.04, (10.04, 0.0)),  # took the whole interval: start again from now
        (10.0, 10.5, (10.5, 0.0)),  # a slow probe: no burst of probes to catch up
    ],
)
def test_next_probe_keeps_a_fixed_schedule_without_bursts(next_at, now, expected):
    at, delay = next_probe(next_at, 0.04, now)
    assert (at, delay) == pytest.approx(expected)


@pytest.fixture
def controller_socket(tmp_path):
    """A UNIX datagram socket bound where the controller listens, as controller/app.py does."""
    path = tmp_path / "probes.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(5)
    yield listener, str(path)
    listener.close()


def test_a_report_reaches_the_controller_as_the_same_probe_result(controller_socket):
    listener, path = controller_socket
    message = probe_message("secondary", True, 4.2, "", HEALTH, time.time())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as report:
        assert send_report(report, path, message)
    data = listener.recv(4096)
    assert json.loads(data) == message
    result = EventProbeResult.from_datagram(data)
    assert (result.server, result.ok, result.latency_ms, result.detail) == ("secondary", True, 4.2, "")
    assert (result.gtid, result.read_only, result.timed_out) == ("1-1-7,2-2-3", False, False)


@pytest.mark.parametrize("ok, latency_ms, detail, health, expected", REPORTS)
def test_every_report_the_prober_sends_passes_the_controllers_checks(tmp_path, ok, latency_ms, detail, health,
                                                                       expected):
    # Through the controller's own socket, with the prober's PID file naming this process.
    listener = open_probe_socket(tmp_path / "probes.sock")
    pid_file = tmp_path / "prober.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    dropped = []
    intake = ProbeIntake(["primary"], pid_file, lambda kind, **fields: dropped.append(fields))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as report:
        assert send_report(report, str(tmp_path / "probes.sock"), probe_message(
            "primary", ok, latency_ms, detail, health, time.time()))
    fields = intake.admit(receive_datagram(listener))
    listener.close()
    assert dropped == []
    assert fields == {"server": "primary", **expected}


@pytest.mark.parametrize("ok, dropped_as", [(True, None), (False, "bad_field")])
def test_a_late_answer_is_taken_only_as_a_pass(tmp_path, ok, dropped_as):
    listener = open_probe_socket(tmp_path / "probes.sock")
    dropped = []
    intake = ProbeIntake(["primary"], None, lambda kind, **fields: dropped.append(fields))
    message = probe_message("primary", ok, 80.0, LATE, {}, time.time(), late=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as report:
        assert send_report(report, str(tmp_path / "probes.sock"), message)
    fields = intake.admit(receive_datagram(listener))
    listener.close()
    if dropped_as is None:
        assert (fields["ok"], fields["late"], fields["timed_out"], dropped) == (True, True, False, [])
    else:
        assert fields is None and [d.get("reason") for d in dropped] == [dropped_as]


def test_reports_keep_their_order_one_datagram_each(controller_socket):
    listener, path = controller_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as report:
        for i in range(5):
            send_report(report, path, probe_message("primary", i % 2 == 0, i, "", {}, float(i)))
    assert [json.loads(listener.recv(4096))["time"] for _ in range(5)] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_report_with_no_controller_listening_is_dropped_quietly(tmp_path):
    stale = tmp_path / "stale.sock"  # a killed controller leaves its socket file behind
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    bound.bind(str(stale))
    bound.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as report:
        assert send_report(report, str(tmp_path / "absent.sock"), {"server": "primary"}) is False
        assert send_report(report, str(stale), {"server": "primary"}) is False


class Health(BaseHTTPRequestHandler):
    """A web service's /health as the prober meets it; `server.mode` says how it answers."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        mode = self.server.mode
        if mode == "slow":
            time.sleep(0.5)
        if mode == "trickle":  # each piece within the time-out, the whole answer not
            body = b" " * 5
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for piece in body:
                self.wfile.write(bytes([piece]))
                self.wfile.flush()
                time.sleep(0.1)
            return
        status, body = {"bad json": (200, b"{not json"), "error": (503, b"{}")}.get(
            mode, (200, json.dumps(HEALTH).encode()))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's name
        pass


@pytest.fixture
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    server.daemon_threads = True
    server.mode = "ok"
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "mode, timeout, expected",
    [
        ("ok", 2.0, (True, "", HEALTH)),
        ("error", 2.0, (False, "HTTP 503", {})),
        ("bad json", 2.0, (False, "JSONDecodeError", {})),
        ("slow", 0.1, (False, TIMED_OUT, {})),  # no answer within the time-out
        ("trickle", 0.3, (False, TIMED_OUT, {})),  # an answer, but late
    ],
)
def test_probe_once_passes_only_on_a_timely_200(web, mode, timeout, expected):
    web.mode = mode
    ok, latency_ms, detail, health = probe_once("127.0.0.1", web.server_address[1], timeout)
    assert (ok, detail, health) == expected
    assert latency_ms > 0


@pytest.mark.parametrize(
    "mode, late_s, expected_late",
    [
        ("slow", 2.0, True),  # answered in 0.5 s: a time-out at 0.1 s, then a late answer
        ("slow", 0.3, False),  # not even within late_s: nothing more
        ("error", 2.0, False),  # within the time-out, and failed: no late answer of course
    ],
)
def test_an_attempt_times_out_and_then_reports_a_late_answer(web, mode, late_s, expected_late):
    web.mode = mode
    late = []
    answered = threading.Event()

    def on_late(latency_ms):
        late.append(latency_ms)
        answered.set()

    attempt = ProbeAttempt("127.0.0.1", web.server_address[1], 0.1, late_s, on_late)
    ok, latency_ms, detail, _health = attempt.result()
    assert (ok, detail) == (False, TIMED_OUT if mode == "slow" else "HTTP 503")
    assert answered.wait(3) is expected_late
    if expected_late:
        assert late[0] >= 500


def test_probe_once_of_a_closed_port_is_a_refusal():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: the kernel refuses
        ok, _latency, detail, health = probe_once("127.0.0.1", port, 1.0)
    assert (ok, detail, health) == (False, "ConnectionRefusedError", {})


def test_the_recorder_writes_one_csv_row_per_probe(tmp_path):
    out = tmp_path / "probes.csv"
    recorder = ProbeRecorder(out)
    recorder.record(probe_message("primary", True, 1.25, "", HEALTH, 12.0))
    recorder.record(probe_message("secondary", False, 35.0, TIMED_OUT, {}, 12.5))
    recorder.record(probe_message("secondary", False, 0.4, "ConnectionRefusedError", {}, 12.6, "a reset"))
    recorder.file.flush()
    rows = list(csv.reader(out.open()))
    assert rows == [
        ["time", "server", "ok", "latency_ms", "detail", "confirming"],
        ["12.000000", "primary", "1", "1.25", "", ""],
        ["12.500000", "secondary", "0", "35.0", TIMED_OUT, ""],
        ["12.600000", "secondary", "0", "0.4", "ConnectionRefusedError", "a reset"],
    ]


@pytest.mark.parametrize(("data", "word"), [
    (b'{"server": "primary", "why": "a reset from its web port"}', ("primary", "a reset from its web port")),
    (b'{"server": "primary"}', ("primary", "a word")),
    (b'{"server": "ghost", "why": "x"}', None),  # not a server of the run
    (b'{"server": "primary", "why": 5}', ("primary", "a word")),
    (b"primary", None),
    (b"\xff\xfe", None),
    (b"[1]", None),
])
def test_a_word_on_the_wake_socket_names_a_server(data, word):
    from services.prober_words import parse_word

    assert parse_word(data, {"primary", "secondary"}) == word


def test_a_word_cuts_the_wait_short_and_says_why():
    from controller.prober import Wake

    wake = Wake()
    assert wake.wait(0.01) == ""  # the schedule's own time came
    wake.ask("a reset from its web port")
    start = time.monotonic()
    assert wake.wait(5.0) == "a reset from its web port" and time.monotonic() - start < 1.0
    assert wake.wait(0.01) == ""  # one word, one probe
