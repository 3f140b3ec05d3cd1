"""The live demo: a teacher drives a running testbed from one terminal screen.

    make demo                      # or: python -m experiments demo [--rate 200] [--out results/]
    make demo SCRIPT=lecture.txt   # plays timed commands, e.g. "20 fail primary"

The screen shows, several times a second, which server holds the virtual IP, each server's
probe state and probe latency, the requests per second the client gets answered, their p95
latency, the errors, the replication lag and the last events. At the bottom a prompt takes
the commands of `COMMANDS` (type `help`). A script has one command per line, preceded by the
seconds since the load started; `#` starts a comment.

The demo is one trial like any run (`experiments.runs.trial.run_trial` with the demo as its drive):
`quit` or Ctrl-C stops the load, checks that no acknowledged write was lost, stops everything
and writes requests.csv, events.csv, summary.json and the report in results/demo-<timestamp>/.

The pure parts (parsing commands and scripts, the live figures, the screen's text) are apart
from the effects (the testbed, the terminal) so that tests can check them line by line.
"""

from __future__ import annotations

import csv
import curses
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.analysis import metrics
from experiments.analysis.metrics import REQUEST_COLUMNS, RequestRecord
from experiments.dashboard.server import DashboardServer
from experiments.results import files
from experiments.results.tables import format_value
from experiments.runs.trial import Drive, start_load
from experiments.testbed.ovs import VIP_FLOW_PRIORITY, ofctl
from experiments.testbed.testbed import Testbed

REFRESH_S = 0.2  # the screen is redrawn five times a second
WINDOW_S = 1.0  # "last second" figures are over this long
# Rows reach requests.csv up to 0.25 s after a request ends (the load generator's flush), so
# the "last second" ends this long before now: a window still filling would show a false dip.
SETTLE_S = 0.5
HISTORY_S = 60.0  # the dashboard's charts show the last minute, second by second
MAX_MESSAGES = 8
MAX_EVENTS = 6
DEMO_DURATION_S = 3600.0  # the load runs at most this long; a demo is a lecture, not a soak
FAULT_VERBS = ("fail", "hang")
# What the dashboard's buttons may send; `quit` stays at the terminal (it ends the run).
DASHBOARD_VERBS = ("fail", "hang", "recover", "failback", "load", "status")
DASHBOARD_COMMANDS = ["fail SERVER", "hang SERVER", "recover SERVER", "failback", "load N"]
PARTS = ("web", "db", "link")

COMMANDS = {
    "fail SERVER [web|db|link]": "crash a server: all of it (web, database, link) or one part",
    "hang SERVER": "freeze the server's web server and database (SIGSTOP): alive, answering nothing",
    "recover SERVER": "bring the server back whole: link up, processes resumed or started again",
    "failback": "ask the controller to move the VIP back to the preferred server",
    "load N": "send N requests per second from now on (1 to 5000)",
    "status": "the controller's view of each server, and the VIP's flow in the switch",
    "help": "this list",
    "quit": "stop the load, check the data, stop everything, write the results (or Ctrl-C)",
}


def terminal_problem() -> str | None:
    """Why the demo's screen cannot be drawn here, or None; checked before the testbed starts.

    curses' initscr() on a terminal it cannot drive (TERM=dumb, say) ends the whole process on
    the spot, leaving the testbed it had started running: so it must never get that far.
    """
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "the demo needs a terminal: run it in a terminal window (or in tmux)"
    term = os.environ.get("TERM", "")
    try:
        curses.setupterm(term or None, sys.stdout.fileno())
    except curses.error:
        return f"the demo cannot draw on this terminal (TERM={term or 'unset'} is unknown); set TERM=xterm"
    if curses.tigetstr("cup") is None or curses.tigetstr("clear") is None:
        return (f"the demo cannot draw on this terminal (TERM={term} cannot move the cursor): "
                "run it in a terminal such as xterm, or in tmux")
    return None


class CommandError(ValueError):
    """A command the demo cannot take; the message says what is valid."""


@dataclass(frozen=True)
class Command:
    verb: str
    server: str = ""
    part: str = ""  # "fail" only: web, db, link or "" for the whole server
    rate: float = 0.0  # "load" only

    @property
    def text(self) -> str:
        if self.verb == "load":
            return f"load {self.rate:g}"
        return " ".join(word for word in (self.verb, self.server, self.part) if word)


def valid_commands() -> str:
    return "; ".join(COMMANDS)


def parse_command(line: str, servers: Sequence[str]) -> Command:
    """The command a person typed; CommandError says what is valid when it is not one."""
    words = line.split()
    if not words:
        raise CommandError(f"type a command: {valid_commands()}")
    verb, args = words[0].lower(), words[1:]
    if verb in ("help", "status", "failback", "quit"):
        if args:
            raise CommandError(f"{verb} takes nothing after it")
        return Command(verb)
    if verb == "load":
        if len(args) != 1:
            raise CommandError("load takes one number: requests per second, e.g. load 500")
        try:
            rate = float(args[0])
        except ValueError:
            raise CommandError(f"load: {args[0]!r} is not a number; e.g. load 500") from None
        if not 1 <= rate <= 5000:
            raise CommandError("load: the rate must be between 1 and 5000 requests per second")
        return Command("load", rate=rate)
    if verb in ("fail", "hang", "recover"):
        if not args:
            raise CommandError(f"{verb} needs a server: one of {', '.join(servers)}")
        server = args[0]
        if server not in servers:
            raise CommandError(f"{verb}: no server {server!r}; the servers are {', '.join(servers)}")
        if verb == "fail" and len(args) == 2:
            if args[1] not in PARTS:
                raise CommandError(f"fail {server}: no part {args[1]!r}; use web, db or link (or nothing)")
            return Command(verb, server, args[1])
        if len(args) > 1:
            usage = "fail SERVER [web|db|link]" if verb == "fail" else f"{verb} SERVER"
            raise CommandError(f"too many words; use {usage}")
        return Command(verb, server)
    raise CommandError(f"unknown command {words[0]!r}; valid: {valid_commands()}")


@dataclass(frozen=True)
class ScriptLine:
    at_s: float  # seconds after the load started
    command: Command


def parse_script(text: str, servers: Sequence[str], source: str = "script") -> list[ScriptLine]:
    """A lecture's timed commands, one `<seconds> <command>` a line; checked before anything starts."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        when, _, rest = line.partition(" ")
        try:
            at_s = float(when)
        except ValueError:
            raise CommandError(f"{source}:{number}: start with the seconds since the load started, "
                               f"e.g. '20 fail primary'") from None
        if not 0 <= at_s <= DEMO_DURATION_S:
            raise CommandError(f"{source}:{number}: the time must be between 0 and {DEMO_DURATION_S:g} s")
        try:
            command = parse_command(rest, servers)
        except CommandError as exc:
            raise CommandError(f"{source}:{number}: {exc}") from None
        if lines and at_s < lines[-1].at_s:
            raise CommandError(f"{source}:{number}: the times must not go back "
                               f"({at_s:g} < {lines[-1].at_s:g})")
        lines.append(ScriptLine(at_s, command))
    if not lines:
        raise CommandError(f"{source}: no command in it; a line is '<seconds> <command>'")
    return lines


# -- the live figures ----------------------------------------------------------------------


class CsvTail:
    """The rows appended to a CSV file since the last call; a row still being written waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.header: list[str] | None = None

    def new_rows(self) -> list[dict[str, str]]:
        try:
            with open(self.path, newline="") as f:
                f.seek(self.offset)
                text = f.read()
        except FileNotFoundError:
            return []
        complete = text[: text.rfind("\n") + 1]
        self.offset += len(complete.encode())
        rows = list(csv.reader(complete.splitlines()))
        if self.header is None and rows:
            self.header, rows = rows[0], rows[1:]
        return [dict(zip(self.header or [], row, strict=False)) for row in rows if row]


@dataclass
class LiveFigures:
    """What the client has seen: totals since the start and the last second's figures."""

    recent: deque[RequestRecord] = field(default_factory=deque)
    sent: int = 0
    ok: int = 0
    keep_s: float = HISTORY_S + SETTLE_S + WINDOW_S  # records older than this are dropped from `recent`

    def add(self, records: Iterable[RequestRecord]) -> None:
        for record in records:
            self.sent += 1
            self.ok += record.ok
            self.recent.append(record)

    def window(self, now: float) -> dict[str, Any]:
        """Figures over the requests that ended in the last second before `now - SETTLE_S`."""
        while self.recent and _ended_at(self.recent[0]) < now - self.keep_s:
            self.recent.popleft()
        end = now - SETTLE_S
        last = [r for r in self.recent if end - WINDOW_S < _ended_at(r) <= end]
        ok = [r for r in last if r.ok]
        served: dict[str, int] = {}
        for record in ok:
            served[record.served_by] = served.get(record.served_by, 0) + 1
        errors: dict[str, int] = {}
        for record in last:
            if not record.ok:
                reason = record.error or f"HTTP {record.status}"
                errors[reason] = errors.get(reason, 0) + 1
        p95 = metrics.percentile([r.latency_ms for r in ok if r.latency_ms is not None], 95)
        return {
            "answered_per_s": len(ok) / WINDOW_S,
            "p95_ms": p95,
            "errors": errors,
            "served_by": served,
            "sent": self.sent,
            "ok": self.ok,
            "availability_pct": self.ok / self.sent * 100 if self.sent else None,
        }


    def history(self, now: float) -> list[dict[str, Any]]:
        """The last HISTORY_S seconds before `now - SETTLE_S`, second by second, oldest first:
        each second's requests answered and failed (by when they ended) and the p50 and p95
        latency of those answered (None for a second with none)."""
        end = now - SETTLE_S
        first = end - HISTORY_S
        seconds: list[list[RequestRecord]] = [[] for _ in range(int(HISTORY_S))]
        for record in self.recent:
            at = _ended_at(record)
            if first <= at < end:
                seconds[min(int(at - first), len(seconds) - 1)].append(record)
        rows = []
        for index, records in enumerate(seconds):
            latencies = [r.latency_ms for r in records if r.ok and r.latency_ms is not None]
            rows.append({"at": first + index + 1, "answered": len(latencies),
                         "failed": sum(not r.ok for r in records),
                         "p50_ms": metrics.percentile(latencies, 50),
                         "p95_ms": metrics.percentile(latencies, 95)})
        return rows


def _ended_at(record: RequestRecord) -> float:
    # A failed request has no response time: it ended when it was given up on.
    return record.done_at if record.done_at is not None else record.sent_at


def latest_lags(rows: Iterable[dict[str, str]], lags: dict[str, float]) -> dict[str, float]:
    """The last measured lag of each "source -> target" pair, updated from replication.csv rows."""
    for row in rows:
        lags[f"{row['source']} -> {row['target']}"] = float(row["lag_ms"])
    return lags


# -- the screen ----------------------------------------------------------------------------


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch % 1 * 1000):03d}"


def describe_event(event: dict[str, Any]) -> str:
    words = [_clock(event["time"]), event["kind"]]
    if event.get("server"):
        words.append(str(event["server"]))
    if event.get("reason"):
        words.append(f"({event['reason']})")
    return "  ".join(words)


def _ms(value: float | None) -> str:
    return format_value(None if value is None else float(value), decimals=1, unit=" ms")


def _probe_cell(server: dict[str, Any]) -> str:
    """The last probe's result and age; a result older than the controller's budget is shown as
    stale, never as the current state."""
    age = server.get("last_probe_age_s")
    if server.get("probe_stale"):
        return "STALE" if age is None else f"STALE {age:.0f}s"
    result = {True: "ok", False: "failed", None: "-"}[server.get("last_probe_ok")]
    return result if age is None else f"{result} {age:.1f}s"


def _prober_warnings(status: dict[str, Any]) -> list[str]:
    """Lines that say the controller cannot see: the prober silent, a controller thread dead,
    datagrams dropped."""
    prober = status.get("prober") or {}
    lines = []
    if prober.get("silent"):
        age = prober.get("last_result_age_s")
        since = "no result yet" if age is None else f"last result {age:.1f} s ago"
        lines.append(f"WARNING: the prober is silent ({since}): the controller cannot see the servers")
    for part in ("receiver_alive", "ticker_alive"):
        if prober.get(part) is False:
            lines.append(f"WARNING: the controller's probe {part.split('_')[0]} thread is dead")
    dropped = status.get("probes_dropped") or {}
    if dropped:
        lines.append("probe datagrams dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
    return lines


def screen_lines(view: dict[str, Any], height: int = 50) -> list[str]:
    """The screen's text above the prompt, at most `height` lines, from one snapshot; pure.

    The figures come first; the messages stay just above the prompt, where the answer to a
    command is looked for; the events get the lines left between them (a small terminal
    shows fewer events, never fewer messages).
    """
    status = view.get("status") or {}
    figures = view["figures"]
    active = status.get("active")
    lines = [
        f"SDN HA testbed: live demo   {_clock(view['now'])}   load for {view['elapsed_s']:.0f} s   "
        f"results: {view['run_dir']}",
        "",
        f"VIP {view['vip']}  ->  {active or '(controller not answering)'}        "
        f"load {view['rate']:g} req/s open loop, {view['post_ratio']:.0%} writes",
        f"dashboard: {view.get('dashboard') or '(none)'}",
        "",
        f"{'server':<12}{'health':<8}{'port':<6}{'last probe':<12}{'probe latency':<15}database",
    ]
    for name in view["servers"]:
        server = (status.get("servers") or {}).get(name, {})
        health = "-" if "up" not in server else ("UP" if server["up"] else "DOWN")
        port = "-" if "port_up" not in server else ("up" if server["port_up"] else "down")
        probe = _probe_cell(server)
        database = {True: "read-only", False: "writable", None: "-"}[server.get("db_read_only")]
        if server.get("replication") not in (None, "running", "none"):  # a replica in trouble says so
            database += f", replication {server['replication']}"
        mark = "   <- VIP" if name == active else ""
        lines.append(f"{name:<12}{health:<8}{port:<6}{probe:<12}"
                     f"{_ms(server.get('last_probe_latency_ms')):<15}{database}{mark}")
    lines += _prober_warnings(status)
    served = ", ".join(f"{name} {count}" for name, count in sorted(figures["served_by"].items())) or "nobody"
    errors = ", ".join(f"{kind} {count}" for kind, count in sorted(figures["errors"].items())) or "0"
    availability = figures["availability_pct"]
    failed = figures["sent"] - figures["ok"]
    lags = "   ".join(f"{pair} {lag:.1f} ms" for pair, lag in sorted(view["lags"].items())) or "-"
    lines += [
        "",
        f"last second:  {figures['answered_per_s']:.0f} req/s answered   p95 {_ms(figures['p95_ms'])}   "
        f"errors {errors}   served by {served}",
        f"since start:  {figures['sent']} sent   {figures['ok']} ok   {failed} failed   "
        f"availability {'-' if availability is None else f'{availability:.2f} %'}",
        f"replication lag: {lags}",
    ]
    messages = ["", "messages:", *(f"  {m}" for m in view["messages"][-MAX_MESSAGES:])]
    room = min(height - len(lines) - len(messages) - 2, MAX_EVENTS)
    if room < 0:  # a small terminal: the top of the figures, then as many of the last messages as fit
        fit = min(len(messages), max(1, height - len(lines)))
        return lines[: height - fit] + messages[-fit:]
    shown = view["events"][-room:] if room else []
    return lines + ["", "events:", *(f"  {describe_event(e)}" for e in shown)] + messages


# -- the effects: commands on the testbed, the terminal ------------------------------------


class Demo:
    """One demo session on a running testbed: runs the commands and keeps what the screen shows."""

    def __init__(self, testbed: Testbed, script: list[ScriptLine] | None = None) -> None:
        self.testbed = testbed
        self.config = testbed.config
        self.servers = [s.name for s in self.config.servers]
        self.script = script or []
        self.rate = self.config.load.rate
        self.rate_file = testbed.dir / "load-rate"
        self.rate_file.write_text(f"{self.rate:g}\n")
        self.requests = CsvTail(testbed.dir / files.REQUESTS)
        self.replication = CsvTail(testbed.dir / files.REPLICATION)
        self.figures = LiveFigures()
        self.lags: dict[str, float] = {}
        self.messages: list[str] = [f"type help for the commands; the servers are {', '.join(self.servers)}"]
        self.commands: queue.Queue[Command] = queue.Queue()
        self.quitting = threading.Event()
        self.first_fault_at: float | None = None
        self.load_started_at = 0.0
        self.status: dict[str, Any] = {}
        self.lock = threading.Lock()  # messages are written by the worker and read by the screen
        self.view: dict[str, Any] | None = None  # the screen's latest snapshot, also the dashboard's
        self.dashboard_address = ""  # once it listens
        self.dashboard = DashboardServer(self.config.network.dashboard_port, testbed.control.token,
                                         self.dashboard_state, self.dashboard_command)

    # -- the session ----------------------------------------------------------------------

    def run(self) -> float | None:
        """The whole session: load, the screen and the commands; returns the first fault's time."""
        detail = f"{self.rate:g} req/s, demo"
        self.load_started_at = start_load(self.testbed, detail, rate_file=self.rate_file)
        self._start_dashboard()
        worker = threading.Thread(target=self._work, name="demo-commands", daemon=True)
        worker.start()
        if self.script:
            threading.Thread(target=self._play_script, name="demo-script", daemon=True).start()
        curses.use_env(False)  # the size from the terminal itself, not from stale LINES/COLUMNS
        try:
            curses.wrapper(self._screen)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends the demo the way `quit` does
        self.quitting.set()
        self.commands.put(Command("quit"))  # wakes the worker if it waits for a command
        worker.join()  # a command in progress (a restart, say) finishes first: bounded by its own waits
        self.dashboard.stop()
        self.testbed.runner.stop("loadgen")
        self.testbed.record("load_finished")
        return self.first_fault_at

    def _start_dashboard(self) -> None:
        try:
            self.dashboard.start()
        except OSError as exc:  # the demo goes on without it, and says so where it is looked for
            self.say(f"no dashboard: cannot listen on 127.0.0.1:{self.dashboard.port} ({exc.strerror}); "
                     "set network.dashboard_port to a free port")
            return
        self.dashboard_address = self.dashboard.address

    def dashboard_state(self) -> dict[str, Any]:
        """What the dashboard's page shows: the screen's latest snapshot and the last minute.
        `now` is when it was served; the page compares it with the snapshot's own `now` and
        says the figures are stale if the snapshot is old (the screen stopped refreshing)."""
        now = time.time()
        with self.lock:
            view = dict(self.view or {})
        for private in ("run_dir", "dashboard"):  # the page has no use for them (the token, for one)
            view.pop(private, None)
        return {**view, "served_at": now, "history": self.figures.history(view.get("now", now)),
                "dashboard_commands": DASHBOARD_COMMANDS}

    def dashboard_command(self, line: str) -> tuple[int, str]:
        """A command from the dashboard's page: (202, what was queued) or (400, why not)."""
        try:
            command = parse_command(line, self.servers)
        except CommandError as exc:
            return 400, str(exc)
        if command.verb not in DASHBOARD_VERBS:
            return 400, f"{command.verb} is typed at the demo's terminal, not sent from the dashboard"
        self.submit(command.text, source="dashboard>")
        return 202, command.text

    def say(self, text: str) -> None:
        """Show `text` (one message a line) under "messages"."""
        with self.lock:
            self.messages.extend(text.splitlines())

    def submit(self, line: str, source: str = ">") -> None:
        """A line typed (or played by the script): checked at once, then run in order."""
        self.say(f"{source} {line}")
        try:
            command = parse_command(line, self.servers)
        except CommandError as exc:
            self.say(str(exc))
            return
        if command.verb == "quit":
            self.say("quitting: stopping the load, checking the data, writing the results ...")
            self.quitting.set()
        elif command.verb == "help":
            for usage, what in COMMANDS.items():
                self.say(f"{usage:<27}{what}")
        else:
            self.commands.put(command)

    def _play_script(self) -> None:
        for line in self.script:
            while not self.quitting.is_set() and time.time() < self.load_started_at + line.at_s:
                time.sleep(0.05)
            if self.quitting.is_set():
                return
            self.submit(line.command.text, source="script>")

    def _work(self) -> None:
        while not self.quitting.is_set():
            command = self.commands.get()
            if self.quitting.is_set():
                return
            try:
                self.say(self.execute(command))
            except Exception as exc:  # noqa: BLE001 - shown to the teacher; the demo goes on
                self.say(f"{command.text}: failed: {exc}")

    def execute(self, command: Command) -> str:
        """Do `command` on the testbed; returns what was done, in one line."""
        testbed, server = self.testbed, command.server
        self.testbed.record("demo_command", detail=command.text)
        if command.verb in FAULT_VERBS:
            at = testbed.record("fault", server=server, detail=command.text)
            if self.first_fault_at is None:
                self.first_fault_at = at
        if command.verb == "fail" and not command.part:
            testbed.faults.crash(server)
            return f"{command.text}: web server killed, database killed, link down"
        if command.verb == "fail":
            faults = testbed.faults
            fault, done = {"web": (faults.kill_web, "web server killed"),
                           "db": (faults.kill_database, "database killed"),
                           "link": (faults.link_down, "link down")}[command.part]
            fault(server)
            return f"{command.text}: {done}"
        if command.verb == "hang":
            testbed.faults.hang(server)
            return f"{command.text}: web server and database frozen (SIGSTOP); recover {server} resumes them"
        if command.verb == "recover":
            done = testbed.faults.recover(server)
            return f"{command.text}: {', '.join(done) if done else 'nothing to do, it is whole'}"
        if command.verb == "failback":
            code, body = testbed.control.command("failback")
            reasons = "; ".join(d.get("reason", "") for d in body.get("decisions", []))
            reasons = reasons or body.get("error", "")
            return f"failback: {'done' if code == 200 else 'refused'}: {reasons}"
        if command.verb == "load":
            # Atomic: the load generator never reads half a number.
            files.write_atomic(self.rate_file, f"{command.rate:g}\n")
            self.rate = command.rate
            return f"load: {command.rate:g} requests per second from now on"
        if command.verb == "status":
            return self.status_text()
        raise CommandError(f"unknown command {command.text!r}")

    def status_text(self) -> str:
        status = self.status
        parts = [f"active {status.get('active')}, failback {status.get('failback')}"]
        for name, server in (status.get("servers") or {}).items():
            parts.append(f"{name}: up {server['up']}, failures {server['consecutive_failures']}, "
                         f"gtid {server['gtid'] or '-'}")
        flow = vip_flow(self.config.fabric.clients_edge, self.config.network.vip)
        return "\n".join([*parts, f"VIP flow: {flow}"])

    # -- the screen -----------------------------------------------------------------------

    def snapshot(self, now: float) -> dict[str, Any]:
        self.figures.add(_records(self.requests.new_rows()))
        latest_lags(self.replication.new_rows(), self.lags)
        try:
            self.status = self.testbed.control.status()
        except (OSError, ValueError):
            self.status = {}  # the controller is away (or restarting): the screen says so
        with self.lock:
            messages = list(self.messages)
        return {
            "now": now,
            "elapsed_s": max(0.0, now - self.load_started_at),
            "run_dir": self.testbed.dir,
            "vip": self.config.network.vip,
            "rate": self.rate,
            "post_ratio": self.config.load.post_ratio,
            "servers": self.servers,
            "status": self.status,
            "figures": self.figures.window(now),
            "lags": self.lags,
            "events": [e for e in self.status.get("recent_events", []) if e["kind"] != "flows_installed"],
            "messages": messages,
            "dashboard": self.dashboard_address,
        }

    def _screen(self, window: Any) -> None:
        curses.curs_set(1)
        window.timeout(int(REFRESH_S * 1000 / 2))  # getch waits at most this long
        typed = ""
        next_draw = 0.0
        while not self.quitting.is_set():
            now = time.time()
            if now >= next_draw:
                view = self.snapshot(now)
                with self.lock:
                    self.view = view
                _draw(window, view, f"command (help lists them) > {typed}")
                next_draw = now + REFRESH_S
            try:
                key = window.get_wch()
            except curses.error:
                continue  # nothing typed within the time-out
            if key in ("\n", "\r", curses.KEY_ENTER):
                if typed.strip():
                    self.submit(typed.strip())
                typed = ""
                next_draw = 0.0
            elif key in ("\x7f", "\b", curses.KEY_BACKSPACE):
                typed = typed[:-1]
            elif isinstance(key, str) and key.isprintable():
                typed += key
        _draw(window, self.snapshot(time.time()), "quitting ...")


def _records(rows: Iterable[dict[str, str]]) -> list[RequestRecord]:
    return [RequestRecord.from_csv_row(row) for row in rows if len(row) == len(REQUEST_COLUMNS)]


def _draw(window: Any, view: dict[str, Any], prompt: str) -> None:
    # The terminal's size as it is now (a window resized, a tmux pane created detached): curses
    # otherwise keeps the size it found at the start.
    columns, rows = os.get_terminal_size(sys.stdout.fileno())
    if rows > 0 and columns > 0 and (rows, columns) != window.getmaxyx():  # 0 x 0: a pty with no size set
        curses.resizeterm(rows, columns)
    height, width = window.getmaxyx()
    if height < 3 or width < 20:
        return  # nothing readable fits; the screen comes back when the terminal grows
    window.erase()
    for y, line in enumerate(screen_lines(view, height - 2)):
        window.addnstr(y, 0, line, width - 1)
    window.addnstr(height - 1, 0, prompt, width - 1)
    window.refresh()


def vip_flow(switch: str, vip: str) -> str:
    """The switch's flow that sends the VIP's traffic somewhere, as `ovs-ofctl` prints it."""
    out = ofctl(switch, "dump-flows", f"ip,nw_dst={vip}", check=False)
    flows = [line.strip() for line in out.splitlines() if VIP_FLOW_PRIORITY in line]
    if not flows:
        return "(none)"
    # Only the part a student needs: which cookie (holder) and what the flow does.
    fields = flows[0].split(", ")
    return ", ".join(f for f in fields if f.startswith(("cookie", "priority")) or "actions" in f)


class DemoDrive(Drive):
    """The demo as `run_trial`'s drive: the session's first fault is the one measured around."""

    def __init__(self, script: list[ScriptLine] | None) -> None:
        self.script = script

    def run(self, testbed: Testbed) -> float | None:
        return Demo(testbed, self.script).run()
