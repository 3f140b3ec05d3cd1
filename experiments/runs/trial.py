"""Run a scenario: for each trial, start the testbed, send load, inject the fault, record.

    results/<scenario>-<timestamp>/             one trial: its files are here
    results/<scenario>-<timestamp>/trial-NN/    several trials: one folder each, and the
                                                figures over all trials in summary.json
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.eventlog import EVENT_LOG
from experiments.analysis import metrics
from experiments.results import files
from experiments.results.records import (
    read_events,
    read_replication,
    read_requests,
    write_events_csv,
    write_summary,
)
from experiments.runs.consistency import ReplicationConflict, check_consistency
from experiments.runs.replication import ReplicationMonitor
from experiments.testbed.scenarios import Scenario
from experiments.testbed.testbed import EXPERIMENT_EVENTS, Testbed
from services.mariadb import SEMI_SYNC_WAIT_POINT
from topology.config import TestbedConfig

# Seconds between the load generator's start and its first request: time for it to start.
LOAD_START_DELAY_S = 1.0


def new_run_dir(out: Path, scenario: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.resolve()
    run_dir = out / f"{scenario}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = out / f"{scenario}-{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


# What happens between the testbed's start and its stop: load and faults; returns the time
# of the fault the figures are measured around (None: no fault).
Drive = Callable[[Testbed], "float | None"]


def run_trial(
    config: TestbedConfig, scenario: Scenario, trial_dir: Path, drive: Drive | None = None
) -> dict[str, Any]:
    """One trial from a clean start to a clean stop; returns its summary (also on disk).

    `drive` runs the load and faults (default: the scenario's load and fault, on time; the
    live demo passes its own). A replication conflict found after the load still writes the
    summary (with the database's message under "replication_error") before it fails the trial.
    """
    if drive is None:
        def drive(testbed: Testbed) -> float | None:
            return _load_and_fault(testbed, scenario)

    fault_at: float | None = None
    active_at_end = config.servers[0].name
    data: dict[str, Any] = {}
    try:
        with Testbed(config, trial_dir) as testbed:
            lag_file = trial_dir / files.REPLICATION
            semi_sync = config.database.replication == "semi-sync"
            monitor = ReplicationMonitor(testbed.databases, testbed.active_server, lag_file, semi_sync)
            monitor.start()
            try:
                fault_at = drive(testbed)
            finally:
                monitor.stop()
                for at, server in monitor.fallbacks:
                    testbed.record("semi_sync_fell_back", server=server, detail=f"at {at:.6f}")
            data["semi_sync_fell_back"] = len(monitor.fallbacks) if semi_sync else None
            active_at_end = _active_server(trial_dir, active_at_end)
            data.update(check_data(testbed, trial_dir, active_at_end))
    finally:
        # Whatever happened, turn what was recorded into results.
        events = write_trial_events(trial_dir)
    records = read_requests(trial_dir / files.REQUESTS)
    summary = {
        "scenario": scenario.name,
        "trial_dir": str(trial_dir),
        "fault_at": fault_at,
        "active_at_end": active_at_end,
        "replication": replication_settings(config),
        **metrics.summarize(
            records, events, fault_at, config.servers[0].name, config.servers[1].name
        ),
        **data,
    }
    replication = read_replication(trial_dir / files.REPLICATION)
    summary["replication_lag_ms"] = metrics.replication_lag(replication)
    write_summary(trial_dir / files.SUMMARY, summary)
    if "replication_error" in data:
        raise ReplicationConflict(f"{data['replication_error']} (results kept in {trial_dir})")
    return summary


def check_data(testbed: Testbed, trial_dir: Path, active: str) -> dict[str, Any]:
    """After the load: every write of requests.csv against the active database, and the
    databases against each other (experiments/runs/consistency.py). A replication conflict is
    returned as "replication_error" (the database's own message), not raised."""
    testbed.databases[active].wait_relay_applied(timeout=10)
    records = read_requests(trial_dir / files.REQUESTS)
    try:
        return check_consistency(testbed, active, records)
    except ReplicationConflict as conflict:
        return {"replication_error": str(conflict)}


def write_trial_events(trial_dir: Path) -> list[dict[str, Any]]:
    """events.csv from the controller's and the experiment's event logs; returns the events.

    Their times are rounded to the microsecond, as events.csv holds them: the figures computed
    from the returned events are then exactly those computed again from the file.
    """
    events = read_events(
        [p for p in (trial_dir / EVENT_LOG, trial_dir / EXPERIMENT_EVENTS) if p.exists()]
    )
    events = [{**event, "time": round(event["time"], 6)} for event in events]
    write_events_csv(trial_dir / files.EVENTS, events)
    return events


def replication_settings(config: TestbedConfig) -> dict[str, Any]:
    """How the databases replicated, as the summary records it."""
    if config.database.replication != "semi-sync":
        return {"mode": "async"}
    return {"mode": "semi-sync", "wait_point": SEMI_SYNC_WAIT_POINT,
            "timeout_ms": config.database.semi_sync_timeout_ms}


def _load_and_fault(testbed: Testbed, scenario: Scenario) -> float | None:
    """Send the load, inject the scenario's fault on time, wait for the load to end."""
    load = testbed.config.load
    start_at = time.time() + LOAD_START_DELAY_S
    testbed.start_load(start_at)
    testbed.record("load_started", detail=f"{load.rate:g} req/s for {load.duration_s:g} s")
    fault_at = None
    if scenario.inject is not None:
        _sleep_until(start_at + load.fault_at_s)
        fault_at = testbed.record("fault", detail=scenario.name, server=testbed.config.servers[0].name)
        scenario.inject(testbed)
        testbed.record("fault_injected", detail=scenario.name)
    testbed.wait_load_done()
    testbed.record("load_finished")
    return fault_at


def run_experiment(
    config: TestbedConfig,
    scenario: Scenario,
    out: Path,
    trials: int,
    progress: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    """Run `trials` trials; returns the run folder and its summary."""
    run_dir = new_run_dir(out, scenario.name)
    summaries = []
    started = time.monotonic()
    for trial in range(1, trials + 1):
        trial_dir = run_dir if trials == 1 else run_dir / f"trial-{trial:02d}"
        summaries.append(run_trial(config, scenario, trial_dir))
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


def _active_server(trial_dir: Path, default: str) -> str:
    """Who holds the VIP, from the controller's own log of its decisions."""
    active = default
    for event in read_events([trial_dir / EVENT_LOG]):
        if event["kind"] == "vip_moved":
            active = event["server"]
    return active


def _sleep_until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)
