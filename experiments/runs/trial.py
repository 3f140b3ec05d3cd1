"""One trial from a clean start to a clean stop, with a drive; and runs of several trials.

    results/<scenario>-<timestamp>/             one trial: its files are here
    results/<scenario>-<timestamp>/trial-NN/    several trials: one folder each, and the
                                                figures over all trials in the run's summary

`run_trial(config, scenario, trial_dir, drive)` starts the testbed and the live instruments
(the replication monitor), lets the drive do the load and the faults, checks the data
after the load, turns the event logs into events.csv and writes the summary. Every kind of
run is a drive given to it: `LoadThenFault` (a scenario's load and fault, on time: `make
run`), the soak (runs/soak.py), the bench's throughput rounds (runs/bench.py) and the live
demo (runs/demo.py). A drive may add its own figures to the summary (`Drive.summarize`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.failover import PROMOTED_LAGGING
from experiments.analysis import metrics
from experiments.analysis.metrics import RequestRecord
from experiments.analysis.stages import failover_stages_ms
from experiments.results import files
from experiments.results.files import new_run_dir
from experiments.results.records import (
    read_events,
    read_probes,
    read_read_only,
    read_replication,
    read_requests,
    write_events_csv,
    write_summary,
)
from experiments.runs.consistency import ReplicationConflict, check_consistency
from experiments.runs.failures import TrialFailed
from experiments.runs.replication import ReplicationMonitor
from experiments.runs.writers import ReadOnlySampler
from experiments.testbed.control import active_from_log
from experiments.testbed.progress import ControllerWatch, Progress
from experiments.testbed.scenarios import Scenario
from experiments.testbed.testbed import Testbed
from services.mariadb import SEMI_SYNC_WAIT_POINT
from topology.config import TestbedConfig

__all__ = ["Drive", "LoadThenFault", "TrialOutcome", "run_trial", "run_experiment"]

# Seconds between the load generator's start and its first request: time for it to start (it
# imports in about 0.12 s here; four times that leaves room on a loaded machine).
LOAD_START_DELAY_S = 0.5


@dataclass
class TrialOutcome:
    """What a trial recorded, for its summary: read back from the trial folder."""

    config: TestbedConfig
    scenario: str
    trial_dir: Path
    fault_at: float | None  # the fault the figures are measured around; None: no fault
    active_at_end: str
    events: list[dict[str, Any]]
    records: list[metrics.RequestRecord]
    data: dict[str, Any] = field(default_factory=dict)  # the data check, semi-sync fall-backs


class Drive:
    """What happens between the testbed's start and its stop: load and faults.

    `run` returns the time of the fault the figures are measured around (None: no fault);
    `summarize` turns the outcome into the summary (by default the figures of a trial).
    """

    checks_data = True  # after the load: every write against the databases, and them equal

    def run(self, testbed: Testbed) -> float | None:
        raise NotImplementedError

    def summarize(self, outcome: TrialOutcome) -> dict[str, Any]:
        return trial_summary(outcome)


class LoadThenFault(Drive):
    """The scenario's load, its fault on time (`load.fault_at_s` into the load), the end of the load."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def run(self, testbed: Testbed) -> float | None:
        start_at = start_load(testbed)
        fault_at = None
        if self.scenario.inject is not None:
            sleep_until(start_at + testbed.config.load.fault_at_s)
            primary = testbed.config.servers[0].name
            fault_at = testbed.record("fault", detail=self.scenario.name, server=primary)
            self.scenario.inject(testbed)
            testbed.record("fault_injected", detail=self.scenario.name)
        testbed.wait_load_done()
        testbed.record("load_finished")
        return fault_at


def start_load(testbed: Testbed, detail: str | None = None, **options: Any) -> float:
    """Start the config's load a moment from now and record it; returns when it starts."""
    load = testbed.config.load
    start_at = time.time() + LOAD_START_DELAY_S
    testbed.start_load(start_at, **options)
    testbed.record("load_started", detail=detail or f"{load.rate:g} req/s for {load.duration_s:g} s")
    return start_at


def run_trial(config: TestbedConfig, scenario: str, trial_dir: Path, drive: Drive,
              progress: Progress | None = None) -> dict[str, Any]:
    """One trial from a clean start to a clean stop; returns its summary (also on disk). With
    `progress`, each phase is printed as it happens (a single `run`).

    A replication conflict found after the load still writes the summary (with the
    database's message under "replication_error") before it fails the trial.
    """
    fault_at: float | None = None
    active_at_end = config.servers[0].name
    data: dict[str, Any] = {}
    requests = trial_dir / files.REQUESTS
    records: list[RequestRecord] | None = None
    untrusted: list[str] = []  # why the trial's figures cannot be trusted (a dead part, a short load)
    try:
        with Testbed(config, trial_dir, progress) as testbed:
            fault_at = drive_sampled(testbed, drive, data, progress)
            records = read_requests(requests) if requests.exists() else None  # read once, used thrice
            untrusted += trust_problems(testbed, data, records)
            active_at_end = active_from_log(trial_dir / files.CONTROLLER_EVENTS, active_at_end)
            # The data is checked against where the VIP's traffic really goes; the log must agree.
            on_data_plane = testbed.mechanism.holder_on_data_plane()
            data["vip_holder_on_data_plane"] = on_data_plane
            if on_data_plane is not None and on_data_plane != active_at_end:
                untrusted.append(f"the data plane sends the VIP's traffic to {on_data_plane}, but the "
                                 f"{testbed.mechanism.decider}'s events say {active_at_end} holds it")
                testbed.record("vip_holder_mismatch", server=on_data_plane, detail=untrusted[-1])
                active_at_end = on_data_plane
            if drive.checks_data:
                if progress is not None:
                    progress.say("checking every acknowledged write against the databases")
                data.update(check_data(testbed, active_at_end, records or []))
    finally:
        # Whatever happened, turn what was recorded into results.
        events = write_trial_events(trial_dir)
    outcome = TrialOutcome(config, scenario, trial_dir, fault_at, active_at_end, events, records or [], data)
    summary = drive.summarize(outcome)
    write_summary(trial_dir / files.SUMMARY, summary)
    if "replication_error" in data:
        raise ReplicationConflict(f"{data['replication_error']} (results kept in {trial_dir})")
    if untrusted:
        raise TrialFailed(f"{untrusted[0]}; results kept in {trial_dir}")
    return summary


def drive_sampled(
    testbed: Testbed, drive: Drive, data: dict[str, Any], progress: Progress | None
) -> float | None:
    """Run the drive (load and fault) while replication and each database's read_only are
    sampled (and, with `progress`, the controller's phases printed); returns the fault's time."""
    config, trial_dir = testbed.config, testbed.dir
    semi_sync = config.database.replication == "semi-sync"
    monitor = ReplicationMonitor(testbed.databases, testbed.mechanism.active_server,
                                 trial_dir / files.REPLICATION, semi_sync,
                                 cut_off=lambda: testbed.faults.links_down)
    monitor.start()
    writers = ReadOnlySampler(testbed.databases, trial_dir / files.READ_ONLY)
    writers.start()
    watch = ControllerWatch(trial_dir / files.CONTROLLER_EVENTS, progress) if progress else None
    if watch is not None:
        watch.start()
    try:
        return drive.run(testbed)
    finally:
        if watch is not None:
            watch.stop()
        writers.stop()
        monitor.stop()
        for at, server in monitor.fallbacks:
            testbed.record("semi_sync_fell_back", server=server, detail=f"at {at:.6f}")
        data["semi_sync_fell_back"] = len(monitor.fallbacks) if semi_sync else None


def trust_problems(testbed: Testbed, data: dict[str, Any], records: list[RequestRecord] | None) -> list[str]:
    """Why no figure of the trial can be trusted, if anything: a part of the mechanism died (it
    could not act after), or the load failed or was short (`records`: what requests.csv holds,
    None if there is none). Each is also put in `data`."""
    problems = []
    for name, meaning in testbed.mechanism.essential.items():
        if not testbed.runner.processes[name].running():
            data[f"{name}_died"] = testbed.runner.processes[name].log_tail(3) or "no output"
            testbed.record(f"{name}_died", detail=data[f"{name}_died"])
            problems.append(f"the {name} died during the trial, {meaning} "
                            f"(logs/{name}.log: {data[f'{name}_died']})")
    load_problem = testbed.load_problem(None if records is None else len(records))
    if load_problem is not None:
        data["load_problem"] = load_problem
        problems.append(load_problem)
    return problems


def trial_summary(outcome: TrialOutcome) -> dict[str, Any]:
    """The figures of a trial, as summary.json holds them."""
    config = outcome.config
    summary = {
        "scenario": outcome.scenario,
        "trial_dir": str(outcome.trial_dir),
        "fault_at": outcome.fault_at,
        "active_at_end": outcome.active_at_end,
        "replication": replication_settings(config),
        "mechanism": mechanism_label(config),
        **metrics.summarize(outcome.records, outcome.events, outcome.fault_at,
                            config.servers[0].name, config.servers[1].name),
        **outcome.data,
    }
    replication = read_replication(outcome.trial_dir / files.REPLICATION)
    summary["replication_lag_ms"] = metrics.replication_lag(replication)
    summary.update(metrics.both_writable(read_read_only(outcome.trial_dir / files.READ_ONLY)))
    faulted = next((e.get("server") for e in outcome.events if e["kind"] == "fault"), None)
    summary["failover_stages_ms"] = failover_stages_ms(
        outcome.fault_at, faulted or config.servers[0].name, outcome.events,
        read_probes(outcome.trial_dir / files.PROBES), outcome.records)
    # Each time the VIP went to a database that lacked what the failed one had: why.
    summary["promoted_lagging"] = [e.get("reason") or e.get("detail") for e in outcome.events
                                   if e["kind"] == PROMOTED_LAGGING]
    return summary


def check_data(testbed: Testbed, active: str, records: list[RequestRecord]) -> dict[str, Any]:
    """After the load: every write of requests.csv (`records`) against the active database,
    and the databases against each other (runs/consistency.py). A replication conflict is
    returned as "replication_error" (the database's own message), not raised."""
    testbed.databases[active].wait_relay_applied(timeout=10)
    try:
        return check_consistency(testbed, active, records)
    except ReplicationConflict as conflict:
        return {"replication_error": str(conflict)}


def write_trial_events(trial_dir: Path) -> list[dict[str, Any]]:
    """events.csv from the controller's and the experiment's event logs; returns the events.

    Their times are rounded to the microsecond, as events.csv holds them: the figures computed
    from the returned events are then exactly those computed again from the file.
    """
    if not trial_dir.is_dir():
        # Interrupted before the testbed made the trial's folder: nothing was recorded, and the
        # interrupt, not a missing folder, is what the run must report.
        return []
    logs = [trial_dir / files.CONTROLLER_EVENTS, trial_dir / files.EXPERIMENT_EVENTS]
    events = read_events([p for p in logs if p.exists()])
    events = [{**event, "time": round(event["time"], 6)} for event in events]
    write_events_csv(trial_dir / files.EVENTS, events)
    return events


def mechanism_label(config: TestbedConfig) -> str:
    """What moved the VIP: `sdn`, or keepalived's or HAProxy's mechanism and preset."""
    return label_of(config.failover.mechanism, config.failover.preset)


def label_of(mechanism: str, preset: str) -> str:
    """`sdn` (the controller has no preset), else e.g. `vrrp tuned`."""
    return mechanism if mechanism == "sdn" else f"{mechanism} {preset}"


def replication_settings(config: TestbedConfig) -> dict[str, Any]:
    """How the databases replicated, as the summary records it."""
    if config.database.replication != "semi-sync":
        return {"mode": "async"}
    return {"mode": "semi-sync", "wait_point": SEMI_SYNC_WAIT_POINT,
            "timeout_ms": config.database.semi_sync_timeout_ms}


def run_experiment(
    config: TestbedConfig,
    scenario: Scenario,
    out: Path,
    trials: int,
    progress: Callable[[str], None] = print,
    phases: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Run `trials` trials of a scenario's load and fault; returns the run folder and its summary.
    With `phases`, each trial's phases are printed (through `progress`) as they happen."""
    run_dir = new_run_dir(out, scenario.name)
    summaries = []
    started = time.monotonic()
    for trial in range(1, trials + 1):
        trial_dir = files.trial_dir(run_dir, trial, trials)
        progress_lines = Progress(progress) if phases else None
        summaries.append(run_trial(config, scenario.name, trial_dir, LoadThenFault(scenario), progress_lines))
        elapsed = time.monotonic() - started
        eta = elapsed / trial * (trials - trial)
        progress(
            f"trial {trial}/{trials} done: gap {summaries[-1].get('failover_gap_ms')} ms, "
            f"availability {summaries[-1].get('availability_pct')} %; "
            f"elapsed {elapsed:.0f} s, ETA {eta:.0f} s"
        )
    if trials == 1:
        return run_dir, summaries[0]
    summary = {"scenario": scenario.name, "trials": trials, **metrics.aggregate(summaries)}
    write_summary(run_dir / files.SUMMARY, summary)
    return run_dir, summary


def sleep_until(when: float) -> None:
    """Wait for a moment of the schedule (a fault's time), not for a condition."""
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)
