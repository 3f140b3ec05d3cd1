"""SIGINT or SIGTERM at any moment of a run stops everything it started and keeps what it recorded.

Each case runs the real command line (`python -m experiments run ...`) as a subprocess, waits
for a condition that says the run has reached a given point (a state file, an event, a frozen
process: never a blind sleep), sends SIGINT or SIGTERM, and then checks that:

- the command exits with code 130, says "interrupted" and prints no traceback;
- every state.json of the run lists nothing: no process, Mininet shell, bridge, interface,
  cgroup or temporary folder;
- nothing the run ever listed is still there: no process or Mininet shell (the shells hold the
  hosts' network namespaces, so their being gone is the namespaces being gone), no bridge, no
  interface, no cgroup, no hatb-* folder; no process at all names the run's folder; `ip netns`
  no network namespace is held that was not before, and `leftovers()` finds nothing;
- what was recorded is kept: events.csv for every trial that began, requests.csv with rows once
  the load had begun, the summaries of the trials that had finished.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.runner import is_recorded_process
from tests.integration.conftest import leftovers, mininet_shells

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.01  # the earliest points are only milliseconds wide


def wait_for_file_text(folder: Path, name: str, text: str, timeout: float) -> Path:
    """The first file `name` under `folder` that holds `text`; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in folder.rglob(name):
            if text in path.read_text():
                return path
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {name} under {folder}")


# -- what the run listed, as seen while it ran ---------------------------------------------------

@dataclass
class Seen:
    """Everything any state.json of the run ever listed, gathered while polling."""

    processes: dict[str, dict[str, Any]] = field(default_factory=dict)  # "name pid" -> record
    folders: set[str] = field(default_factory=set)
    cgroups: set[str] = field(default_factory=set)
    bridges: set[str] = field(default_factory=set)
    interfaces: set[str] = field(default_factory=set)
    latest: dict[Path, dict[str, Any]] = field(default_factory=dict)  # trial folder -> its state

    def update(self, out: Path) -> None:
        # Where a run writes state.json (a run folder, or its trial folders), not a recursive
        # walk: the run deletes the datadirs underneath while this looks.
        for path in [*out.glob("*/state.json"), *out.glob("*/trial-*/state.json")]:
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):  # replaced (atomically) between listing and reading
                continue
            self.latest[path.parent] = state
            for kind in ("processes", "shells"):
                for name, record in state[kind].items():
                    self.processes[f"{kind} {name} {record['pid']}"] = record
            self.folders |= set(state["folders"])
            self.cgroups |= set(state["cgroups"])
            self.bridges |= set(state["bridges"])
            self.interfaces |= set(state["interfaces"])


def experiment_events(out: Path) -> list[str]:
    """The kinds of every experiment event of the run so far, in order."""
    kinds = []
    for path in sorted(out.rglob("experiment-events.jsonl")):
        for line in path.read_text().splitlines():
            try:
                kinds.append(json.loads(line)["kind"])
            except ValueError:  # a line being written
                pass
    return kinds


def process_state(record: dict[str, Any] | None) -> str | None:
    """The one-letter state of a recorded process (R, S, T...), None if it is gone."""
    if record is None or not is_recorded_process(record):
        return None
    text = Path(f"/proc/{record['pid']}/stat").read_text()
    return text[text.rfind(")") + 2]


def current(seen: Seen, name: str) -> dict[str, Any] | None:
    """The record of process `name` in the newest state file that lists it."""
    for state in seen.latest.values():
        if name in state["processes"]:
            return state["processes"][name]
    return None


# -- the points at which a run is interrupted -----------------------------------------------------

def state_file_written(out: Path, seen: Seen) -> bool:
    """The very start: the first trial has created its state file and its temporary folder."""
    return bool(seen.latest)


def network_building(out: Path, seen: Seen) -> bool:
    """Set-up, while Mininet builds the network: its first node shell runs, none is recorded yet.

    (Only one testbed runs on the machine at a time, so the shells are this run's.)
    """
    return not any(state["shells"] for state in seen.latest.values()) and bool(mininet_shells())


def databases_starting(out: Path, seen: Seen) -> bool:
    """Set-up under way: both databases are listed, the testbed is not ready yet."""
    listed = all(current(seen, f"mariadb-{s}") for s in ("primary", "secondary"))
    return listed and "testbed_ready" not in experiment_events(out)


def requests_recorded(out: Path, seen: Seen) -> bool:
    """During the load: the load generator has recorded a second's worth of requests."""
    return any(len(p.read_text().splitlines()) > 200 for p in out.rglob("requests.csv"))


def controller_dead(out: Path, seen: Seen) -> bool:
    """During controller-restart's fault: the controller is dead and not yet started again."""
    kinds = experiment_events(out)
    dead = process_state(current(seen, "controller")) is None
    return "fault" in kinds and "fault_injected" not in kinds and dead


def primary_frozen(out: Path, seen: Seen) -> bool:
    """During primary-hang's fault: the primary's web server and database are SIGSTOPped."""
    return "fault_injected" not in experiment_events(out) and all(
        process_state(current(seen, name)) == "T" for name in ("web-primary", "mariadb-primary")
    )


def database_coming_back(out: Path, seen: Seen) -> bool:
    """After the load, in the consistency check: the crashed primary's database is restarted
    (a second mariadb-primary was recorded) and is being waited for."""
    started = [key for key in seen.processes if key.startswith("processes mariadb-primary ")]
    return "load_finished" in experiment_events(out) and len(started) > 1


def first_trial_done(out: Path, seen: Seen) -> bool:
    """Between two trials: the first one's summary is written, the second is about to start."""
    return any(out.glob("*/trial-01/summary.json"))


def report_drawing(out: Path, seen: Seen) -> bool:
    """The report is being written: its first picture is there, report.md is not yet."""
    return any(out.glob("*/throughput.png"))


@dataclass(frozen=True)
class Point:
    name: str
    scenario: str
    options: tuple[str, ...]
    signum: signal.Signals
    reached: Callable[[Path, Seen], bool]
    load_started: bool  # requests.csv must exist, with rows
    summaries: tuple[str, ...] = ()  # summary.json files (relative to the run folder) that must exist
    no_summaries: tuple[str, ...] = ("summary.json",)  # ... and those that must not (not finished)
    stderr: str = "interrupted"


POINTS = [
    Point("setup-state-file", "baseline", ("--duration", "5"), signal.SIGTERM, state_file_written, False),
    Point("setup-network", "baseline", ("--duration", "5"), signal.SIGINT, network_building, False),
    Point("setup-databases", "baseline", ("--duration", "5"), signal.SIGINT, databases_starting, False),
    Point("load", "baseline", ("--duration", "30"), signal.SIGINT, requests_recorded, True),
    Point("fault-controller-dead", "controller-restart", ("--duration", "8", "--fault-at", "1"),
          signal.SIGTERM, controller_dead, True),
    Point("fault-primary-frozen", "primary-hang", ("--duration", "8", "--fault-at", "1"),
          signal.SIGINT, primary_frozen, True),
    Point("consistency-check", "primary-crash", ("--duration", "3", "--fault-at", "1"),
          signal.SIGTERM, database_coming_back, True),
    Point("between-trials", "baseline", ("--duration", "2", "--trials", "2"), signal.SIGTERM,
          first_trial_done, True, summaries=("trial-01/summary.json",),
          no_summaries=("summary.json", "trial-02/summary.json")),
    Point("report", "baseline", ("--duration", "2"), signal.SIGINT, report_drawing, True,
          summaries=("summary.json",), no_summaries=("report.md",),
          stderr="interrupted while writing the report"),
]


LISTS = ("processes", "shells", "bridges", "interfaces", "cgroups", "folders")  # of a state file


# -- the checks ------------------------------------------------------------------------------------

def netns() -> set[str]:
    """Every network namespace some process is in, by its identity (`net:[inode]`).

    Mininet's hosts are namespaces without a name (`ip netns list` never shows them), held by
    their shells: one still held after the run is a host the run left behind.
    """
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found.add(os.readlink(f"/proc/{entry}/ns/net"))
            except OSError:
                continue  # gone meanwhile, or a kernel thread
    return found


def processes_naming(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the run's folder): none may be left."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                words = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(text.encode() in word for word in words):
                found.append(f"{entry}: {b' '.join(words).decode(errors='replace')}")
    return found


def what_is_left(out: Path, seen: Seen) -> list[str]:
    """What the run listed at any time, or started with its folder in the command, still there."""
    left = [f"{key}: {r['cmdline']}" for key, r in seen.processes.items() if is_recorded_process(r)]
    left += processes_naming(str(out))
    bridges = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout.split()
    left += [f"bridge {b}" for b in seen.bridges if b in bridges]
    left += [f"interface {i}" for i in seen.interfaces if Path(f"/sys/class/net/{i}").exists()]
    left += [f"cgroup {c}" for c in seen.cgroups if Path(f"/sys/fs/cgroup/cpu/{c}").exists()]
    left += [f"folder {f}" for f in seen.folders if Path(f).exists()]
    return left + leftovers()


def clean(out: Path) -> None:
    """Whatever failed, leave the machine clean for the next test (removes only what is listed)."""
    subprocess.run([sys.executable, "-m", "experiments", "clean", "--results", str(out)],
                   cwd=ROOT, capture_output=True, timeout=120)


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_interrupt_stops_everything_and_keeps_the_records(point: Point, tmp_path: Path) -> None:
    """An interrupt at `point` stops every process, bridge, interface, namespace, cgroup and
    temporary folder of the run, exits 130 without a traceback, and keeps the records so far."""
    out = tmp_path / "out"
    namespaces = netns()
    seen = Seen()
    run = subprocess.Popen(
        [sys.executable, "-m", "experiments", "run", point.scenario, *point.options, "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 150
        while True:
            if out.exists():
                seen.update(out)
                if point.reached(out, seen):
                    break
            assert run.poll() is None, f"the run ended before {point.name}: {run.communicate()}"
            assert time.monotonic() < deadline, f"{point.name} never reached"
            time.sleep(POLL_S)
        run.send_signal(point.signum)
        stdout, stderr = run.communicate(timeout=90)
        seen.update(out)  # what was started between the last look and the signal

        assert run.returncode == 130, stdout[-2000:] + stderr[-3000:]
        assert point.stderr in stderr and "Traceback" not in stderr, stderr[-3000:]
        for trial, state in seen.latest.items():
            listed = {k: state[k] for k in LISTS}
            assert not any(listed.values()), f"{trial / 'state.json'} still lists {listed}"
        assert what_is_left(out, seen) == []
        assert netns() - namespaces == set(), "network namespaces the run left behind"

        (run_dir,) = out.iterdir()
        for trial in seen.latest:
            assert (trial / "events.csv").exists(), f"no events.csv in {trial}"
        requests = list(run_dir.rglob("requests.csv"))
        if point.load_started:
            assert requests and len(requests[0].read_text().splitlines()) > 1, "no request kept"
        else:
            assert requests == [], "the load never started, yet there is a requests.csv"
        for name in point.summaries:
            assert (run_dir / name).exists(), f"{name} was lost"
        for name in point.no_summaries:
            assert not (run_dir / name).exists(), f"{name} written for a run cut short at {point.name}"
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        clean(out)
