"""What the controller accepts on its probe socket (controller/probe_intake.py).

A table of malformed datagrams, each with the reason it is dropped for; the sender check
against the prober's PID file; the real socket's credentials, size and ancillary data (a
datagram sent by a child process, by this one, one cut by the kernel, one carrying a file
descriptor); and the loop that must not end.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from controller import probe_intake
from controller.probe_intake import (
    ANCILLARY,
    BAD_FIELD,
    ERROR,
    FOREIGN_PROBE_REFUSED,
    FOREIGN_SENDER,
    MAX_DATAGRAM,
    NOT_AN_OBJECT,
    NOT_JSON,
    OVERSIZE,
    PROBE_DROPPED,
    PROBER_UNKNOWN,
    RECEIVE_ERROR,
    UNKNOWN_SERVER,
    Datagram,
    LoopEnded,
    ProbeDropped,
    ProbeIntake,
    ProbeReceiver,
    keep_running,
    open_probe_socket,
    parse_report,
    read_pid,
    receive_datagram,
)
from controller.prober import probe_message

SERVERS = ("primary", "secondary")
GOOD = probe_message("primary", True, 2.0, "", {"gtid": "1-1-7,2-2-3", "read_only": False,
                                                "replication": "running", "replication_error": ""}, 100.0)
GOOD_TEXT = json.dumps(GOOD)


def variant(**changes):
    return json.dumps({**GOOD, **changes}).encode()


def without(key):
    return json.dumps({k: v for k, v in GOOD.items() if k != key}).encode()


def padded_to(size):
    """The good report, its detail padded so that it is exactly `size` bytes long."""
    short = len(variant(detail=""))
    return variant(detail="x" * (size - short))


# (datagram, why it is dropped). Each is something today's reader took, or died on.
MALFORMED = [
    (b"[]", NOT_AN_OBJECT),  # the datagram that once ended the receiving thread
    (b"null", NOT_AN_OBJECT),
    (b'"primary"', NOT_AN_OBJECT),
    (b"7", NOT_AN_OBJECT),
    (b"", NOT_JSON),
    (b"{not json", NOT_JSON),
    (b"\xff\xfe\x00\x01", NOT_JSON),  # not UTF-8
    (b"\x00\x01\x02binary\x7f", NOT_JSON),
    (GOOD_TEXT.encode("utf-16"), NOT_JSON),  # json.loads alone would read it
    (b"[" * 3000, NOT_JSON),  # deep enough for a RecursionError
    (variant(latency_ms=float("nan")), NOT_JSON),  # Python writes NaN; JSON has none
    (variant(latency_ms=float("inf")), NOT_JSON),
    (variant(ok="no"), BAD_FIELD),  # bool("no") is True
    (variant(ok=None), BAD_FIELD),
    (variant(ok=1), BAD_FIELD),
    (without("ok"), BAD_FIELD),
    (variant(server=None), BAD_FIELD),
    (variant(server=1), BAD_FIELD),
    (variant(server=["primary"]), BAD_FIELD),
    (without("server"), BAD_FIELD),
    (variant(latency_ms=True), BAD_FIELD),
    (variant(latency_ms="2"), BAD_FIELD),
    (variant(latency_ms=None), BAD_FIELD),
    (variant(latency_ms=-1), BAD_FIELD),
    (GOOD_TEXT.replace('"latency_ms": 2.0', '"latency_ms": 1e999').encode(), BAD_FIELD),  # reads as inf
    (without("latency_ms"), BAD_FIELD),
    (variant(detail=None), BAD_FIELD),
    (variant(gtid=5), BAD_FIELD),
    (variant(gtid="1-x-3"), BAD_FIELD),  # would raise later, in the caught-up check
    (variant(read_only="no"), BAD_FIELD),
    (variant(timed_out=1), BAD_FIELD),
    (variant(replication="fine"), BAD_FIELD),  # not one of the states /health gives
    (variant(replication=1), BAD_FIELD),
    (variant(replication_error=None), BAD_FIELD),
    (variant(confirming=True), BAD_FIELD),
    (variant(time="now"), BAD_FIELD),
    (variant(ok=True, timed_out=True), BAD_FIELD),
    (GOOD_TEXT.replace('"ok": true', '"ok": false, "ok": true').encode(), BAD_FIELD),
    (variant(server="ghost"), UNKNOWN_SERVER),
    (variant(server="primary "), UNKNOWN_SERVER),
    (variant(server="primary\u0000"), UNKNOWN_SERVER),
    (padded_to(MAX_DATAGRAM + 1), OVERSIZE),  # its first 4096 bytes would not parse, but a
    (GOOD_TEXT.encode() + b" " * MAX_DATAGRAM, OVERSIZE),  # cut one can: whitespace after it
]


def received(data, pid=None):
    """What the socket gives for `data`: the kernel cuts it at MAX_DATAGRAM and says so."""
    return Datagram(data[:MAX_DATAGRAM], pid if pid is not None else os.getpid(), len(data) > MAX_DATAGRAM)


class Log:
    """Stands in for EventLog.write."""

    def __init__(self):
        self.lines = []

    def __call__(self, kind, **fields):
        self.lines.append({"kind": kind, **fields})


@pytest.mark.parametrize("data, reason", MALFORMED, ids=[f"{i}-{r}" for i, (_, r) in enumerate(MALFORMED)])
def test_each_malformed_datagram_is_dropped_for_its_reason(data, reason):
    log = Log()
    intake = ProbeIntake(SERVERS, None, log)
    assert intake.admit(received(data)) is None
    assert intake.counts() == {reason: 1}
    (line,) = log.lines
    assert (line["kind"], line["reason"]) == (PROBE_DROPPED, reason)
    assert line["datagram"] == repr(data[:MAX_DATAGRAM][:80])


def test_the_probers_own_report_is_read_field_by_field():
    assert parse_report(GOOD_TEXT.encode()) == {
        "server": "primary", "ok": True, "latency_ms": 2.0, "detail": "", "gtid": "1-1-7,2-2-3",
        "read_only": False, "timed_out": False, "replication": "running", "replication_error": "",
        "confirming": "", "late": False,
    }


@pytest.mark.parametrize(
    "message, fields",
    [
        # Only server, ok and latency_ms are needed; the rest have their defaults.
        ({"server": "secondary", "ok": False, "latency_ms": 35},
         {"server": "secondary", "ok": False, "latency_ms": 35.0, "detail": "", "gtid": None,
          "read_only": None, "timed_out": False, "replication": None, "replication_error": "",
          "confirming": "", "late": False}),
        # A field the controller does not know is no reason to drop a report.
        ({**GOOD, "extra": [1, 2]}, parse_report(GOOD_TEXT.encode())),
        # A fresh database's position is empty.
        ({**GOOD, "gtid": ""}, {**parse_report(GOOD_TEXT.encode()), "gtid": ""}),
    ],
)
def test_a_minimal_or_extended_report_is_read(message, fields):
    assert parse_report(json.dumps(message).encode()) == fields


def test_a_report_of_exactly_the_buffers_size_is_heard():
    intake = ProbeIntake(SERVERS, None, Log())
    fields = intake.admit(received(padded_to(MAX_DATAGRAM)))
    assert fields is not None and fields["server"] == "primary"


def test_a_drop_is_a_value_error_as_the_old_reader_raised():
    with pytest.raises(ValueError) as caught:
        parse_report(b"[]")
    assert isinstance(caught.value, ProbeDropped) and caught.value.reason == NOT_AN_OBJECT


def test_a_flood_is_counted_and_logged_once_per_reason():
    log = Log()
    intake = ProbeIntake(SERVERS, None, log)
    for _ in range(1000):
        intake.admit(received(b"[]"))
        intake.admit(received(variant(ok="no")))
    assert intake.admit(received(GOOD_TEXT.encode())) is not None
    assert intake.counts() == {NOT_AN_OBJECT: 1000, BAD_FIELD: 1000}
    assert [(line["kind"], line["reason"]) for line in log.lines] == [
        (PROBE_DROPPED, NOT_AN_OBJECT), (PROBE_DROPPED, BAD_FIELD)]


# -- the sender --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, pid",
    [("4242\n", 4242), ("4242", 4242), (" 17 \n", 17), ("", None), ("abc", None), ("12 13", None),
     ("-5", None), ("0", None), ("\u0663", None), ("99999999999", None)],
)
def test_read_pid_takes_one_decimal_pid(tmp_path, text, pid):
    path = tmp_path / "prober.pid"
    path.write_text(text)
    assert read_pid(path) == pid


def test_read_pid_of_a_missing_file_is_none(tmp_path):
    assert read_pid(tmp_path / "absent.pid") is None


def test_without_a_pid_file_any_sender_is_heard():
    intake = ProbeIntake(SERVERS, None, Log())
    assert intake.admit(Datagram(GOOD_TEXT.encode(), 4242)) is not None
    assert intake.admit(Datagram(GOOD_TEXT.encode(), None)) is not None


def test_with_a_pid_file_only_its_pid_is_heard_and_it_is_read_again(tmp_path):
    log = Log()
    pid_file = tmp_path / "prober.pid"
    intake = ProbeIntake(SERVERS, pid_file, log)
    report = GOOD_TEXT.encode()
    # The prober starts after the controller: no file yet, nobody is heard.
    assert intake.admit(Datagram(report, 4242)) is None
    assert intake.counts() == {PROBER_UNKNOWN: 1}
    pid_file.write_text("4242\n")
    assert intake.admit(Datagram(report, 4242)) is not None
    assert intake.admit(Datagram(report, 99)) is None
    assert intake.admit(Datagram(report, None)) is None  # no credentials: no proof of who sent it
    # The prober is started again, with another PID: the file is read again.
    pid_file.write_text("5151\n")
    assert intake.admit(Datagram(report, 5151)) is not None
    assert intake.admit(Datagram(report, 4242)) is None
    assert intake.prober_pid == 5151
    assert intake.counts() == {PROBER_UNKNOWN: 1, FOREIGN_SENDER: 3}
    unknown, refused = log.lines  # each once; the refusal names the foreign sender's PID
    assert (unknown["kind"], unknown["reason"]) == (PROBE_DROPPED, PROBER_UNKNOWN)
    assert (refused["kind"], refused["reason"], refused["pid"], refused["prober_pid"]) == (
        FOREIGN_PROBE_REFUSED, FOREIGN_SENDER, 99, 4242)


@pytest.mark.parametrize("text", ["", "abc", "0", "4242 5151"])
def test_a_pid_file_without_a_pid_hears_nobody(tmp_path, text):
    pid_file = tmp_path / "prober.pid"
    pid_file.write_text(text)
    intake = ProbeIntake(SERVERS, pid_file, Log())
    assert intake.admit(Datagram(GOOD_TEXT.encode(), 4242)) is None
    assert intake.counts() == {PROBER_UNKNOWN: 1}


# -- the real socket ---------------------------------------------------------------------

CHILD = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(sys.argv[2].encode(), sys.argv[1])
print("sent", flush=True)
sys.stdin.read()  # alive until the parent has read the datagram
"""


@pytest.fixture
def probe_socket(tmp_path):
    sock = open_probe_socket(tmp_path / "probes.sock")
    yield sock, str(tmp_path / "probes.sock")
    sock.close()


def sent_by_a_child(path):
    """A child process (another PID) sends the good report; it stays alive until closed."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, path, GOOD_TEXT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "sent\n"
    return child


@pytest.mark.parametrize("named", ["this process", "the child"])
def test_a_childs_datagram_is_heard_only_when_the_pid_file_names_it(probe_socket, tmp_path, named):
    sock, path = probe_socket
    pid_file = tmp_path / "prober.pid"
    intake = ProbeIntake(SERVERS, pid_file, Log())
    child = sent_by_a_child(path)
    try:
        pid_file.write_text(f"{os.getpid() if named == 'this process' else child.pid}\n")
        datagram = receive_datagram(sock)
    finally:
        child.communicate("")
    assert datagram.pid == child.pid != os.getpid()
    fields = intake.admit(datagram)
    if named == "the child":
        assert fields is not None and fields["server"] == "primary"
    else:
        assert fields is None and intake.counts() == {FOREIGN_SENDER: 1}


def test_the_kernel_names_the_sender_of_each_datagram(probe_socket):
    sock, path = probe_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.sendto(GOOD_TEXT.encode(), path)
    datagram = receive_datagram(sock)
    assert (datagram.data, datagram.pid, datagram.truncated) == (GOOD_TEXT.encode(), os.getpid(), False)


@pytest.mark.parametrize("size, truncated", [(MAX_DATAGRAM, False), (MAX_DATAGRAM + 1, True)])
def test_a_datagram_over_the_buffer_is_marked_cut(probe_socket, size, truncated):
    sock, path = probe_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.sendto(padded_to(size), path)
    datagram = receive_datagram(sock)
    assert (len(datagram.data), datagram.truncated) == (MAX_DATAGRAM, truncated)


def test_a_passed_file_descriptor_is_dropped_and_never_opened_here(probe_socket, tmp_path):
    sock, path = probe_socket
    secret = open(tmp_path / "secret", "w")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.connect(path)
        socket.send_fds(sender, [GOOD_TEXT.encode()], [secret.fileno()])
    before = set(os.listdir("/proc/self/fd"))
    datagram = receive_datagram(sock)
    after = set(os.listdir("/proc/self/fd"))
    secret.close()
    assert datagram.ancillary_lost and after == before
    intake = ProbeIntake(SERVERS, None, Log())
    assert intake.admit(datagram) is None and intake.counts() == {ANCILLARY: 1}


# -- the loop ----------------------------------------------------------------------------


def test_a_receiver_counts_a_failing_socket_and_goes_on(tmp_path, monkeypatch):
    intake = ProbeIntake(SERVERS, None, Log())
    receiver = ProbeReceiver(tmp_path / "probes.sock", intake, lambda fields: None, pause_s=0.0)

    def broken(sock):
        raise OSError("ENOBUFS")

    monkeypatch.setattr(probe_intake, "receive_datagram", broken)
    receiver.step()
    assert intake.counts() == {RECEIVE_ERROR: 1}
    receiver.socket.close()
    with pytest.raises(LoopEnded, match="socket is closed"):  # a closed socket ends the loop
        receiver.step()


def test_a_receiver_counts_a_result_it_could_not_hand_over(tmp_path):
    intake = ProbeIntake(SERVERS, None, Log())

    def deliver(fields):
        raise AttributeError("'list' object has no attribute 'get'")

    receiver = ProbeReceiver(tmp_path / "probes.sock", intake, deliver, pause_s=0.0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.sendto(GOOD_TEXT.encode(), str(tmp_path / "probes.sock"))
    receiver.step()  # raises nothing
    assert intake.counts() == {ERROR: 1}
    receiver.socket.close()


def test_keep_running_goes_on_after_an_exception_and_says_why_it_ended():
    steps = iter([None, KeyError("boom"), None, LoopEnded("done here"), None])
    ran, ended = [], []

    def step():
        ran.append(1)
        outcome = next(steps)
        if outcome is not None:
            raise outcome

    keep_running(step, ended.append, pause_s=0.0)
    assert (len(ran), ended) == (4, ["done here"])


def test_keep_running_says_so_when_something_stronger_ends_it():
    ended = []

    def step():
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        keep_running(step, ended.append, pause_s=0.0)
    assert ended == ["SystemExit(3)"]
