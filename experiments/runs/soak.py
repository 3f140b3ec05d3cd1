"""The soak: long load with a whole-server crash every period, and a watch on the controller.

    run_soak(config, SoakSettings(duration_s=600, period_s=60), Path("results"))

One testbed, one open-loop load for the whole duration. The first fault comes half a period
into the load, then one every period: the server holding the VIP at that moment (as the
controller says) crashes whole (web server and database killed, link down, as
`primary-crash` does to the primary), and `recover_after_s` later it is brought back
(`Faults.recover`) and waited for until the controller counts it up again. With failback
"never" the VIP stays where the failover put it, so the faults alternate between the servers.

Meanwhile the controller's open file descriptors, threads and resident memory are sampled
every `sample_interval_s` from /proc into `controller-resources.csv`. A leak per failover
(a socket, a thread, a buffer kept per event) shows as growth from a baseline, taken once the
first fault cycle is over, to the end.

    results/soak-<timestamp>/
        requests.csv, events.csv, probes.csv, replication.csv, logs/   as for any trial
        controller-resources.csv    time, fds, threads, rss_kb
        summary.json                per-fault figures, the write set check, growth, verdict
        soak.md                     the same, short, for people
        controller-resources.png    descriptors, threads and memory over time, faults marked

    python -m experiments report results/soak-<timestamp>    rewrites soak.md and the picture

It is a drive of `run_trial` (runs/trial.py), like any run: the same start, instruments, data
check and event logs. The pure parts (the schedule, the per-fault windows, the growth check, the
verdict) are in experiments/analysis/soak.py; soak.md in experiments/results/soak_report.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from experiments.analysis import metrics
from experiments.analysis.soak import (
    GAP_LIMIT_MS,
    GAP_MEDIAN_LIMIT_MS,
    Sample,
    fault_offsets,
    gap_statistics,
    per_fault_figures,
    resource_growth,
    rounded,
    verdict,
)
from experiments.results import files
from experiments.results.files import new_run_dir
from experiments.results.records import read_replication, read_summary
from experiments.results.soak_report import write_soak_report
from experiments.runs.consistency import ReplicationConflict
from experiments.runs.resources import ResourceSampler
from experiments.runs.trial import (
    Drive,
    TrialOutcome,
    replication_settings,
    run_trial,
    sleep_until,
    start_load,
)
from experiments.testbed.testbed import Testbed
from topology.config import TestbedConfig

DEFAULT_DURATION_S = 600.0
DEFAULT_PERIOD_S = 60.0
RECOVER_AFTER_S = 20.0  # how long a crashed server stays down
SAMPLE_INTERVAL_S = 2.0
HEALTHY_TIMEOUT_S = 60.0  # a recovered server not up again by then fails the soak


@dataclass(frozen=True)
class SoakSettings:
    duration_s: float = DEFAULT_DURATION_S
    period_s: float = DEFAULT_PERIOD_S
    recover_after_s: float = RECOVER_AFTER_S
    sample_interval_s: float = SAMPLE_INTERVAL_S


def soak_config(config: TestbedConfig, settings: SoakSettings) -> TestbedConfig:
    """The config with the soak's load length (and its first fault, for the record)."""
    load = replace(config.load, duration_s=settings.duration_s, fault_at_s=settings.period_s / 2)
    return replace(config, load=load)


def run_soak(
    config: TestbedConfig, settings: SoakSettings, out: Path, progress: Any = print
) -> tuple[Path, dict[str, Any]]:
    """One soak from a clean start to a clean stop; returns its folder and summary (also on disk).

    A replication conflict fails the soak's verdict (its summary says so) instead of the run.
    """
    run_dir = new_run_dir(out, "soak")
    try:
        summary = run_trial(soak_config(config, settings), "soak", run_dir, Soak(settings, progress))
    except ReplicationConflict:
        summary = read_summary(run_dir)  # written before the conflict was raised
    write_soak_report(run_dir, summary)
    return run_dir, summary


class Soak(Drive):
    """The soak's load and fault cycles, with the controller's resources sampled meanwhile."""

    def __init__(self, settings: SoakSettings, progress: Any = print) -> None:
        self.settings = settings
        self.progress = progress
        self.offsets = fault_offsets(settings.duration_s, settings.period_s, settings.recover_after_s)
        self.faults: list[dict[str, Any]] = []
        self.samples: list[Sample] = []
        self.load_start: float | None = None
        self.controller_running_at_end: bool | None = None

    def run(self, testbed: Testbed) -> float | None:
        controller = testbed.runner.processes["controller"]
        interval = self.settings.sample_interval_s
        sampler = ResourceSampler(controller.pid, testbed.dir / files.RESOURCES, interval)
        sampler.start()
        try:
            self.load_start = start_load(
                testbed, f"{testbed.config.load.rate:g} req/s for {self.settings.duration_s:g} s")
            for offset in self.offsets:
                self.faults.append(self._fault_cycle(testbed, offset))
            testbed.wait_load_done()
            testbed.record("load_finished")
        finally:
            sampler.stop()
            self.samples = sampler.samples
        self.controller_running_at_end = controller.running()
        return None  # ten faults, not one: the soak's own figures judge each (see summarize)

    def _fault_cycle(self, testbed: Testbed, offset: float) -> dict[str, Any]:
        """At `offset` into the load crash the active server whole, bring it back, wait till it is up."""
        settings = self.settings
        sleep_until(self.load_start + offset)
        server = testbed.control.active_server()
        if server is None:
            raise RuntimeError(f"at {offset:g} s the controller could not say who holds the VIP")
        at = testbed.record("fault", detail="server-crash", server=server)
        testbed.faults.crash(server)
        testbed.record("fault_injected", detail="server-crash", server=server)
        sleep_until(at + settings.recover_after_s)  # how long the server stays down: the schedule
        recovered_at = testbed.record("recover", server=server)
        for line in testbed.faults.recover(server):
            testbed.record("recovered", server=server, detail=line)
        healthy = True
        try:
            testbed.runner.wait_for(
                f"{server} is up again for the controller and replicates",
                lambda: testbed.control.server_up(server) and testbed.databases[server].replica_running(),
                timeout=min(HEALTHY_TIMEOUT_S, settings.period_s - settings.recover_after_s),
                process="controller",
                interval=0.2,
            )
        except RuntimeError as error:  # StartupError: recorded and judged, the soak goes on
            healthy = False
            testbed.record("not_healthy", server=server, detail=str(error))
        healthy_at = testbed.record("healthy" if healthy else "still_down", server=server)
        self.progress(f"fault at {offset:g} s: {server} crashed, now {testbed.control.active_server()} "
                      f"holds the VIP; {server} back {'and up' if healthy else 'but NOT up'} after "
                      f"{healthy_at - at:.1f} s")
        return {"at": at, "offset_s": offset, "server": server, "recovered_at": recovered_at,
                "healthy_at": healthy_at, "healthy_again": healthy}

    def summarize(self, outcome: TrialOutcome) -> dict[str, Any]:
        """Every figure of the soak, as summary.json holds it, with the verdict."""
        data = {"controller_running_at_end": self.controller_running_at_end,
                "active_at_end": outcome.active_at_end, **outcome.data}
        if "replication_error" in data:
            data["db_consistent"] = False
        lag_file = outcome.trial_dir / files.REPLICATION
        summary = {**self._settings_figures(outcome), **self._fault_figures(outcome), **data,
                   "controller_resources": resource_growth(self.samples, self._baseline_at()),
                   "replication_lag_ms": metrics.replication_lag(read_replication(lag_file))
                   if lag_file.exists() else None}
        summary.pop("table_checksums", None)  # per-table detail; db_consistent says what matters
        failures = verdict(summary)
        summary["passed"] = not failures
        summary["failures"] = failures
        return summary

    def _baseline_at(self) -> float:
        # The baseline comes once the first fault cycle is over: the first failover and recovery
        # create what the controller keeps for good (connections, buffers), which is not a leak.
        return self.faults[0]["healthy_at"] if self.faults else math.inf

    def _settings_figures(self, outcome: TrialOutcome) -> dict[str, Any]:
        settings, config = self.settings, outcome.config
        return {
            "scenario": "soak",
            "run_dir": str(outcome.trial_dir),
            "duration_s": settings.duration_s,
            "period_s": settings.period_s,
            "recover_after_s": settings.recover_after_s,
            "sample_interval_s": settings.sample_interval_s,
            "rate": config.load.rate,
            "post_ratio": config.load.post_ratio,
            "failback": config.failover.failback,
            "replication": replication_settings(config),
            "load_start": self.load_start,
        }

    def _fault_figures(self, outcome: TrialOutcome) -> dict[str, Any]:
        records = outcome.records
        figures = per_fault_figures(records, outcome.events, self.faults)
        for figure, fault in zip(figures, self.faults, strict=True):
            figure.update(at_s=fault["offset_s"], healthy_again=fault["healthy_again"],
                          back_up_after_s=round(fault["healthy_at"] - fault["at"], 3))
        detections = [f["detection_ms"] for f in figures if f["detection_ms"] is not None]
        ok = sum(1 for r in records if r.ok)
        return {
            "faults_planned": len(self.offsets),
            "faults": figures,
            "failover_gap_ms": gap_statistics(figures),
            "detection_ms": {"median": rounded(metrics.percentile(detections, 50))},
            "gap_limits_ms": {"each": GAP_LIMIT_MS, "median": GAP_MEDIAN_LIMIT_MS},
            "requests_total": len(records),
            "requests_failed": len(records) - ok,
            "availability_pct": round(ok / len(records) * 100, 3) if records else None,
        }
