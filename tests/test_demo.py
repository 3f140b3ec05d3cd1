"""The live demo's pure parts: what a typed line means, a lecture script, the live figures and
the screen's text; what each command does to a testbed (a stand-in that records the calls);
and `exec`'s answers when it cannot run. No testbed, no terminal."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.analysis.metrics import RequestRecord
from experiments.load.loadgen import Recorder
from experiments.runs.demo import (
    Command,
    CommandError,
    CsvTail,
    Demo,
    LiveFigures,
    describe_event,
    latest_lags,
    parse_command,
    parse_script,
    screen_lines,
)
from experiments.runs.replication import COLUMNS
from experiments.testbed.hostexec import ExecError, host_command, running_testbed
from topology.config import load_config

SERVERS = ["primary", "secondary"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("fail primary", Command("fail", "primary")),
        ("  FAIL   secondary  db ", Command("fail", "secondary", "db")),
        ("fail primary web", Command("fail", "primary", "web")),
        ("fail primary link", Command("fail", "primary", "link")),
        ("hang primary", Command("hang", "primary")),
        ("recover secondary", Command("recover", "secondary")),
        ("failback", Command("failback")),
        ("load 500", Command("load", rate=500.0)),
        ("load 1", Command("load", rate=1.0)),
        ("status", Command("status")),
        ("help", Command("help")),
        ("quit", Command("quit")),
    ],
)
def test_commands_a_teacher_types(line, expected):
    assert parse_command(line, SERVERS) == expected


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("fial primary", "unknown command 'fial'; valid: fail SERVER [web|db|link]; hang SERVER;"),
        ("", "type a command"),
        ("fail", "fail needs a server: one of primary, secondary"),
        ("fail tertiary", "no server 'tertiary'; the servers are primary, secondary"),
        ("fail primary disk", "no part 'disk'; use web, db or link"),
        ("fail primary web now", "too many words; use fail SERVER [web|db|link]"),
        ("hang primary web", "too many words; use hang SERVER"),
        ("load", "load takes one number"),
        ("load lots", "'lots' is not a number"),
        ("load 0", "between 1 and 5000"),
        ("load 9000", "between 1 and 5000"),
        ("quit now", "quit takes nothing after it"),
    ],
)
def test_a_mistyped_command_says_what_is_valid(line, says):
    with pytest.raises(CommandError, match=None) as error:
        parse_command(line, SERVERS)
    assert says in str(error.value)


def test_a_command_reads_back_as_typed():
    for line in ("fail primary db", "hang secondary", "load 250", "failback"):
        assert parse_command(line, SERVERS).text == line


def test_a_lecture_script_is_timed_commands_with_comments():
    text = "# lecture 3\n5 fail primary  # the crash\n\n12.5 recover primary\n30 quit\n"
    script = parse_script(text, SERVERS)
    assert [(line.at_s, line.command.text) for line in script] == [
        (5.0, "fail primary"), (12.5, "recover primary"), (30.0, "quit")]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("fail primary\n", "lecture.txt:1: start with the seconds since the load started"),
        ("5 fail primary\n3 recover primary\n", "lecture.txt:2: the times must not go back (3 < 5)"),
        ("5 fial primary\n", "lecture.txt:1: unknown command 'fial'"),
        ("-1 status\n", "lecture.txt:1: the time must be between 0 and 3600 s"),
        ("# only a comment\n", "lecture.txt: no command in it"),
    ],
)
def test_a_bad_script_names_the_line(text, says):
    with pytest.raises(CommandError) as error:
        parse_script(text, SERVERS, "lecture.txt")
    assert says in str(error.value)


def record(request_id: int, sent_at: float, latency_ms: float | None, status: int = 200,
           served_by: str = "primary", error: str = "") -> RequestRecord:
    return RequestRecord(request_id, "GET", "", sent_at, sent_at, latency_ms, status, served_by, error, None)


NOW = 1000.0  # the last second is the one that ended SETTLE_S (0.5 s) before now: (998.5, 999.5]


@pytest.mark.parametrize(
    ("records", "answered", "p95", "errors", "served"),
    [
        ([], 0, None, {}, {}),
        # Ten answered within the window, one before it, one not yet settled.
        ([record(i, 998.6 + i * 0.05, 10.0) for i in range(10)]
         + [record(10, 998.0, 10.0), record(11, 999.6, 10.0)], 10, 10.0, {}, {"primary": 10}),
        # Failures count where they were given up on; a 503 is an error, named by its status.
        ([record(0, 999.0, None, 0, "", "timeout"), record(1, 999.0, 5.0, 503),
          record(2, 999.0, 4.0, 200, "secondary")], 1, 4.0, {"timeout": 1, "HTTP 503": 1}, {"secondary": 1}),
    ],
)
def test_last_second_figures(records, answered, p95, errors, served):
    figures = LiveFigures()
    figures.add(records)
    window = figures.window(NOW)
    assert window["answered_per_s"] == answered
    assert window["p95_ms"] == p95
    assert window["errors"] == errors
    assert window["served_by"] == served
    assert window["sent"] == len(records)


def test_totals_count_everything_and_old_records_are_dropped():
    figures = LiveFigures()
    figures.add([record(0, 900.0, 1.0), record(1, 999.0, None, 0, "", "refused")])
    window = figures.window(NOW)
    assert (window["sent"], window["ok"], window["availability_pct"]) == (2, 1, 50.0)
    assert len(figures.recent) == 1  # 900 s is more than the dashboard's minute ago


def test_the_dashboards_last_minute_is_second_by_second_by_when_each_request_ended():
    figures = LiveFigures()
    # The minute ends at NOW - SETTLE_S = 999.5: second 59 is [998.5, 999.5), second 0 [939.5, 940.5).
    figures.add([record(0, 998.6, 2.0), record(1, 998.7, 4.0), record(2, 999.0, None, 0, "", "timeout"),
                 record(3, 940.0, 10.0), record(4, 930.0, 1.0), record(5, 999.6, 1.0)])
    history = figures.history(NOW)
    assert len(history) == 60 and history[-1]["at"] == 999.5
    assert history[-1] == {"at": 999.5, "answered": 2, "failed": 1, "p50_ms": 3.0, "p95_ms": 3.9}
    assert history[0]["answered"] == 1  # 930 s is before the minute; 999.6 s not settled yet
    assert sum(row["answered"] + row["failed"] for row in history) == 4
    assert history[30] == {"at": 970.5, "answered": 0, "failed": 0, "p50_ms": None, "p95_ms": None}


def test_the_dashboard_sends_the_demos_commands_but_quit_stays_at_the_terminal(tmp_path: Path):
    demo = Demo(StandInTestbed(tmp_path))
    assert demo.dashboard_command("fail primary") == (202, "fail primary")
    assert demo.commands.get_nowait() == Command("fail", "primary")
    assert demo.messages[-1] == "dashboard> fail primary"
    status, why = demo.dashboard_command("quit")
    assert status == 400 and "terminal" in why and not demo.quitting.is_set()
    status, why = demo.dashboard_command("fail tertiary")
    assert status == 400 and "no server 'tertiary'" in why
    assert demo.commands.empty()


def test_the_dashboards_state_never_carries_the_token_or_the_run_folder(tmp_path: Path):
    demo = Demo(StandInTestbed(tmp_path))
    demo.dashboard_address = "http://127.0.0.1:8080/#token=the-run-token"
    demo.view = demo.snapshot(NOW)
    state = demo.dashboard_state()
    assert "the-run-token" not in json.dumps(state, default=str)
    assert state["now"] == NOW and state["served_at"] > NOW and len(state["history"]) == 60


def test_csv_tail_gives_each_complete_row_once(tmp_path):
    path = tmp_path / "replication.csv"
    tail = CsvTail(path)
    assert tail.new_rows() == []  # no file yet
    path.write_text("time,source,target,lag_ms\n1.0,primary,secondary,0.8\n2.0,prim")
    assert tail.new_rows() == [{"time": "1.0", "source": "primary", "target": "secondary", "lag_ms": "0.8"}]
    with open(path, "a") as f:
        f.write("ary,secondary,1.5\n")
    rows = tail.new_rows()
    assert [row["lag_ms"] for row in rows] == ["1.5"]
    assert latest_lags(rows, {"primary -> secondary": 0.8}) == {"primary -> secondary": 1.5}


def test_the_last_lag_of_each_pair_wins_and_other_pairs_stay():
    lags = {"primary -> tertiary": 3.0}
    rows = [{"source": "primary", "target": "secondary", "lag_ms": "0.8"},
            {"source": "secondary", "target": "primary", "lag_ms": "1.0"},
            {"source": "primary", "target": "secondary", "lag_ms": "2.5"}]
    result = latest_lags(rows, lags)
    assert result is lags  # the demo keeps one dict and updates it on every redraw
    assert lags == {"primary -> tertiary": 3.0, "primary -> secondary": 2.5, "secondary -> primary": 1.0}


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"kind": "vip_moved", "server": "secondary", "reason": "primary is down"},
         ["vip_moved", "secondary", "(primary is down)"]),
        ({"kind": "server_down", "server": "primary", "reason": ""}, ["server_down", "primary"]),
        ({"kind": "switch_connected"}, ["switch_connected"]),
    ],
)
def test_an_event_reads_as_its_time_kind_server_and_reason(event: dict, words: list[str]):
    clock, *rest = describe_event({"time": 1_800_000_000.25, **event}).split("  ")
    assert rest == words
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.250", clock)  # to the millisecond


def view(messages: list[str], events: int = 10) -> dict:
    status = {"active": "secondary", "servers": {
        "primary": {"up": False, "port_up": False, "last_probe_ok": False, "last_probe_latency_ms": 35.0,
                    "db_read_only": None},
        "secondary": {"up": True, "port_up": True, "last_probe_ok": True, "last_probe_latency_ms": 1.5,
                      "db_read_only": False}}}
    figures = LiveFigures().window(NOW)
    return {"now": NOW, "elapsed_s": 12.0, "run_dir": "results/demo-x", "vip": "10.0.0.100", "rate": 200.0,
            "post_ratio": 0.3, "servers": SERVERS, "status": status, "figures": figures,
            "lags": {"secondary -> primary": 1.25},
            "events": [{"time": NOW - i, "kind": "vip_moved", "server": "secondary",
                        "reason": "primary is down"} for i in range(events)],
            "messages": messages}


def test_the_screen_shows_where_the_vip_is_and_each_server():
    lines = screen_lines(view(["> fail primary", "fail primary: web server killed"]))
    text = "\n".join(lines)
    assert "VIP 10.0.0.100  ->  secondary" in text
    assert [line for line in lines if line.startswith("primary ")][0].split()[:4] == [
        "primary", "DOWN", "down", "failed"]
    assert "writable   <- VIP" in [line for line in lines if line.startswith("secondary ")][0]
    assert "replication lag: secondary -> primary 1.2 ms" in text
    assert "primary is down" in text


@pytest.mark.parametrize("height", [48, 30, 24, 20])
def test_the_last_messages_stay_on_screen_whatever_its_height(height):
    messages = [f"message {i}" for i in range(20)]
    lines = screen_lines(view(messages), height)
    assert len(lines) <= height
    assert lines[-1] == "  message 19"  # the answer to the last command is always there
    assert lines[2].startswith("VIP")  # and where the VIP is
    assert sum(line.startswith("  message") for line in lines) >= min(8, height - 12)


def test_the_screen_says_when_the_controller_does_not_answer():
    shown = view([])
    shown["status"] = {}
    lines = screen_lines(shown)
    assert lines[2].startswith("VIP 10.0.0.100  ->  (controller not answering)")
    assert [line for line in lines if line.startswith("primary ")][0].split() == ["primary"] + ["-"] * 5
    assert "availability -" in "\n".join(lines)  # nothing sent yet: no percentage to show


# -- what the commands do to a testbed ----------------------------------------------------------


class StandInTestbed:
    """The calls Demo makes on a Testbed, recorded instead of done."""

    def __init__(self, folder: Path, answer: tuple[int, dict] = (200, {})) -> None:
        self.config = load_config(None, {})
        self.dir = folder
        self.answer = answer  # to a command posted to the controller
        self.status_body: dict = {"active": "primary", "servers": {}, "recent_events": []}
        self.calls: list[tuple[str, str]] = []
        self.events: list[tuple[str, dict]] = []
        # The fault primitives (testbed.faults) and the controller's client (testbed.control)
        # are this one object, so that every call lands in `calls`.
        self.faults = self
        self.control = self
        self.token = "the-run-token"  # testbed.control.token: the dashboard's commands need it

    def record(self, kind: str, **fields: object) -> float:
        self.events.append((kind, fields))
        return 1000.0 + len(self.events)

    def crash(self, server: str) -> None:
        self.calls.append(("crash", server))

    def kill_web(self, server: str) -> None:
        self.calls.append(("kill_web", server))

    def kill_database(self, server: str) -> None:
        self.calls.append(("kill_database", server))

    def link_down(self, server: str) -> None:
        self.calls.append(("link_down", server))

    def hang(self, server: str) -> None:
        self.calls.append(("hang", server))

    def recover(self, server: str) -> list[str]:
        self.calls.append(("recover", server))
        return ["link up", "database started"] if server == "primary" else []

    def status(self) -> dict:
        return self.status_body

    def command(self, name: str) -> tuple[int, dict]:
        self.calls.append(("controller", name))
        return self.answer


@pytest.mark.parametrize(
    ("line", "call", "says"),
    [
        ("fail primary", ("crash", "primary"), "fail primary: web server killed, database killed, link down"),
        ("fail primary web", ("kill_web", "primary"), "fail primary web: web server killed"),
        ("fail secondary db", ("kill_database", "secondary"), "fail secondary db: database killed"),
        ("fail primary link", ("link_down", "primary"), "fail primary link: link down"),
        ("hang secondary", ("hang", "secondary"), "hang secondary: web server and database frozen (SIGSTOP)"),
        ("recover primary", ("recover", "primary"), "recover primary: link up, database started"),
        ("recover secondary", ("recover", "secondary"), "recover secondary: nothing to do, it is whole"),
        ("failback", ("controller", "failback"), "failback: done: "),
    ],
)
def test_each_command_makes_its_one_call_on_the_testbed(tmp_path: Path, line: str, call: tuple, says: str):
    testbed = StandInTestbed(tmp_path)
    answer = Demo(testbed).execute(parse_command(line, SERVERS))
    assert testbed.calls == [call]
    assert answer.startswith(says)
    assert testbed.events[0] == ("demo_command", {"detail": line})


def test_only_faults_are_recorded_as_faults_and_the_first_one_is_kept(tmp_path: Path):
    testbed = StandInTestbed(tmp_path)
    demo = Demo(testbed)
    for line in ("recover primary", "hang secondary", "fail primary db"):
        demo.execute(parse_command(line, SERVERS))
    faults = [(fields["server"], fields["detail"]) for kind, fields in testbed.events if kind == "fault"]
    assert faults == [("secondary", "hang secondary"), ("primary", "fail primary db")]
    assert demo.first_fault_at == 1003.0  # the time of "hang secondary"'s fault event


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ((200, {"decisions": [{"kind": "vip_moved", "reason": "failback requested"}]}),
         "failback: done: failback requested"),
        ((409, {"error": "primary is not caught up"}), "failback: refused: primary is not caught up"),
    ],
)
def test_failback_says_what_the_controller_answered(tmp_path: Path, answer: tuple[int, dict], says: str):
    demo = Demo(StandInTestbed(tmp_path, answer))
    assert demo.execute(Command("failback")) == says


def test_load_rewrites_the_rate_the_load_generator_reads(tmp_path: Path):
    demo = Demo(StandInTestbed(tmp_path))
    assert demo.rate_file.read_text() == "200\n"  # the config's rate, before the load starts
    assert demo.execute(Command("load", rate=750.0)) == "load: 750 requests per second from now on"
    assert demo.rate_file.read_text() == "750\n"
    assert demo.rate == 750.0  # and the screen shows it


def test_a_typed_line_is_checked_at_once_and_queued_only_when_valid(tmp_path: Path):
    demo = Demo(StandInTestbed(tmp_path))
    demo.submit("fial primary")
    assert demo.commands.empty()
    assert demo.messages[-2:][0] == "> fial primary"
    assert demo.messages[-1].startswith("unknown command 'fial'")
    demo.submit("fail primary web", source="script>")
    assert demo.commands.get_nowait() == Command("fail", "primary", "web")
    assert demo.messages[-1] == "script> fail primary web"


def test_help_lists_every_command_and_quit_stops_without_queueing(tmp_path: Path):
    demo = Demo(StandInTestbed(tmp_path))
    demo.submit("help")
    listed = [message.split()[0] for message in demo.messages[2:]]
    assert listed == ["fail", "hang", "recover", "failback", "load", "status", "help", "quit"]
    assert not demo.quitting.is_set()
    demo.submit("quit")
    assert demo.quitting.is_set() and demo.commands.empty()


def test_the_screen_counts_the_rows_the_load_generator_and_the_monitor_wrote(tmp_path: Path):
    testbed = StandInTestbed(tmp_path)
    testbed.status_body["recent_events"] = [{"time": NOW - 2, "kind": "flows_installed"},
                                            {"time": NOW - 1, "kind": "vip_moved", "server": "primary"}]
    demo = Demo(testbed)
    recorder = Recorder(tmp_path / "requests.csv")
    for r in (record(0, NOW - 1.0, 10.0), record(1, NOW - 0.9, 30.0, 201),
              record(2, NOW - 1.0, None, 0, "", "refused")):
        recorder.write(r)
    recorder.flush()
    with open(tmp_path / "replication.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerows([COLUMNS, [NOW - 1, "primary", "secondary", "0.800"],
                          [NOW - 0.5, "primary", "secondary", "1.500"]])
    shown = demo.snapshot(NOW)
    figures = shown["figures"]
    assert (figures["sent"], figures["ok"], figures["answered_per_s"]) == (3, 2, 2.0)
    assert figures["errors"] == {"refused": 1} and figures["served_by"] == {"primary": 2}
    assert shown["lags"] == {"primary -> secondary": 1.5}
    assert [e["kind"] for e in shown["events"]] == ["vip_moved"]  # flows_installed is noise on screen
    assert "VIP 10.0.0.100  ->  primary" in screen_lines(shown)[2]
    recorder.close()
    assert demo.snapshot(NOW)["figures"]["sent"] == 3  # each row is counted once


def test_exec_without_a_running_testbed_says_how_to_start_one(tmp_path):
    with pytest.raises(ExecError, match="no testbed is running .*`make demo`"):
        running_testbed(tmp_path)


def test_exec_names_the_hosts_when_the_host_is_wrong(tmp_path):
    config = load_config(None, {})
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    data = {"shells": {"client": {"pid": os.getpid()}}, "folders": []}
    with pytest.raises(ExecError, match="no host 'router'.*hosts are client, monitor, primary, secondary"):
        host_command(tmp_path / "state.json", data, "router", ["true"])
    with pytest.raises(ExecError, match="host client is not running any more"):
        host_command(tmp_path / "state.json", data, "client", ["true"])  # no start time: not ours


def test_exec_command_line_without_a_testbed_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "experiments", "exec", "--results", str(tmp_path),
                             "client", "curl", "-s", "http://10.0.0.100/"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no testbed is running") and "Traceback" not in result.stderr


def test_a_stale_probe_is_shown_stale_with_its_age_never_as_the_current_state():
    shown = view([])
    shown["status"]["servers"]["secondary"].update(last_probe_age_s=19.4, probe_stale=True)
    shown["status"]["servers"]["primary"].update(last_probe_age_s=0.04, probe_stale=False)
    lines = screen_lines(shown)
    secondary = [line for line in lines if line.startswith("secondary ")][0]
    assert "STALE 19s" in secondary and " ok" not in secondary
    assert [line for line in lines if line.startswith("primary ")][0].split()[3:5] == ["failed", "0.0s"]


@pytest.mark.parametrize(
    ("prober", "dropped", "says"),
    [
        ({"silent": True, "last_result_age_s": 3.21}, {},
         "WARNING: the prober is silent (last result 3.2 s ago): the controller cannot see the servers"),
        ({"silent": True, "last_result_age_s": None}, {}, "WARNING: the prober is silent (no result yet)"),
        ({"silent": False, "receiver_alive": False}, {},
         "WARNING: the controller's probe receiver thread is dead"),
        ({"silent": False, "ticker_alive": False}, {},
         "WARNING: the controller's probe ticker thread is dead"),
        ({"silent": False}, {"not_json": 2, "foreign_sender": 1},
         "probe datagrams dropped: foreign_sender 1, not_json 2"),
    ],
)
def test_the_screen_says_when_the_controller_cannot_see(prober: dict, dropped: dict, says: str):
    shown = view([])
    shown["status"].update(prober=prober, probes_dropped=dropped)
    assert any(line.startswith(says) for line in screen_lines(shown))


def test_a_seeing_controller_gets_no_warning():
    shown = view([])
    shown["status"].update(prober={"silent": False, "receiver_alive": True, "ticker_alive": True},
                           probes_dropped={})
    assert not any("WARNING" in line or "dropped" in line for line in screen_lines(shown))
