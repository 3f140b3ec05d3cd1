"""The soak: long load with a whole-server crash every period, and a watch on the controller.

    run_soak(config, SoakSettings(duration_s=600, period_s=60), Path("results"))

One testbed, one open-loop load for the whole duration. The first fault comes half a period
into the load, then one every period: the server holding the VIP at that moment (as the
controller says) crashes whole (web server and database killed, link down, as
`primary-crash` does to the primary), and `recover_after_s` later it is brought back
(`Testbed.recover`) and waited for until the controller counts it up again. With failback
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

The pure parts (the schedule, the per-fault windows, the growth check, the verdict) are
functions of recorded data, tested without a testbed in tests/test_soak.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
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
from experiments.results.records import read_replication, read_requests, write_summary
from experiments.results.soak_report import write_soak_report
from experiments.runs.replication import ReplicationMonitor
from experiments.runs.resources import ResourceSampler
from experiments.runs.trial import (
    LOAD_START_DELAY_S,
    check_data,
    new_run_dir,
    replication_settings,
    write_trial_events,
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


# -- the pure parts ---------------------------------------------------------------------------


# -- the controller's resources -------------------------------------------------------------


# -- the soak itself --------------------------------------------------------------------------


def soak_config(config: TestbedConfig, settings: SoakSettings) -> TestbedConfig:
    """The config with the soak's load length (and its first fault, for the record)."""
    load = replace(config.load, duration_s=settings.duration_s, fault_at_s=settings.period_s / 2)
    return replace(config, load=load)


def run_soak(
    config: TestbedConfig, settings: SoakSettings, out: Path, progress: Any = print
) -> tuple[Path, dict[str, Any]]:
    """One soak from a clean start to a clean stop; returns its folder and summary (also on disk)."""
    config = soak_config(config, settings)
    run_dir = new_run_dir(out, "soak")
    offsets = fault_offsets(settings.duration_s, settings.period_s, settings.recover_after_s)
    faults: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    samples: list[Sample] = []
    load_start = None
    try:
        with Testbed(config, run_dir) as testbed:
            controller = testbed.runner.processes["controller"]
            sampler = ResourceSampler(controller.pid, run_dir / files.RESOURCES, settings.sample_interval_s)
            monitor = ReplicationMonitor(testbed.databases, testbed.active_server,
                                         run_dir / files.REPLICATION)
            sampler.start()
            monitor.start()
            try:
                load_start = time.time() + LOAD_START_DELAY_S
                testbed.start_load(load_start)
                testbed.record("load_started",
                               detail=f"{config.load.rate:g} req/s for {settings.duration_s:g} s")
                for offset in offsets:
                    faults.append(_fault_cycle(testbed, load_start, offset, settings, progress))
                testbed.wait_load_done()
                testbed.record("load_finished")
            finally:
                monitor.stop()
                sampler.stop()
                samples = sampler.samples
            data["controller_running_at_end"] = controller.running()
            active = testbed.active_server() or config.servers[0].name
            data["active_at_end"] = active
            data.update(check_data(testbed, run_dir, active))
            if "replication_error" in data:
                data["db_consistent"] = False
    finally:
        events = write_trial_events(run_dir)
    summary = summarize_soak(config, settings, run_dir, load_start, offsets, faults, events, samples, data)
    write_summary(run_dir / files.SUMMARY, summary)
    write_soak_report(run_dir, summary)
    return run_dir, summary


def _fault_cycle(
    testbed: Testbed, load_start: float, offset: float, settings: SoakSettings, progress: Any
) -> dict[str, Any]:
    """At `offset` into the load crash the active server whole, bring it back, wait till it is up."""
    _sleep_until(load_start + offset)  # the schedule itself, not a wait for a condition
    server = testbed.active_server()
    if server is None:
        raise RuntimeError(f"at {offset:g} s the controller could not say who holds the VIP")
    at = testbed.record("fault", detail="server-crash", server=server)
    testbed.crash(server)
    testbed.record("fault_injected", detail="server-crash", server=server)
    _sleep_until(at + settings.recover_after_s)  # how long the server stays down: the schedule
    recovered_at = testbed.record("recover", server=server)
    for line in testbed.recover(server):
        testbed.record("recovered", server=server, detail=line)
    healthy = True
    try:
        testbed.runner.wait_for(
            f"{server} is up again for the controller and replicates",
            lambda: _server_up(testbed, server) and testbed.databases[server].replica_running(),
            timeout=min(HEALTHY_TIMEOUT_S, settings.period_s - settings.recover_after_s),
            process="controller",
            interval=0.2,
        )
    except RuntimeError as error:  # StartupError: recorded and judged, the soak goes on
        healthy = False
        testbed.record("not_healthy", server=server, detail=str(error))
    healthy_at = testbed.record("healthy" if healthy else "still_down", server=server)
    progress(f"fault at {offset:g} s: {server} crashed, now {testbed.active_server()} holds the VIP; "
             f"{server} back {'and up' if healthy else 'but NOT up'} after {healthy_at - at:.1f} s")
    return {"at": at, "offset_s": offset, "server": server, "recovered_at": recovered_at,
            "healthy_at": healthy_at, "healthy_again": healthy}


def _server_up(testbed: Testbed, server: str) -> bool:
    return bool(testbed.controller()[1]["servers"][server]["up"])


def summarize_soak(
    config: TestbedConfig,
    settings: SoakSettings,
    run_dir: Path,
    load_start: float | None,
    offsets: Sequence[float],
    faults: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    samples: Sequence[Sample],
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """Every figure of the soak, as summary.json holds it, with the verdict."""
    records = read_requests(run_dir / files.REQUESTS) if (run_dir / files.REQUESTS).exists() else []
    figures = per_fault_figures(records, events, faults)
    for figure, fault in zip(figures, faults, strict=True):
        figure.update(at_s=fault["offset_s"], healthy_again=fault["healthy_again"],
                      back_up_after_s=round(fault["healthy_at"] - fault["at"], 3))
    # The baseline comes once the first fault cycle is over: the first failover and recovery
    # create what the controller keeps for good (connections, buffers), which is not a leak.
    baseline_at = faults[0]["healthy_at"] if faults else math.inf
    total = len(records)
    ok = sum(1 for r in records if r.ok)
    summary: dict[str, Any] = {
        "scenario": "soak",
        "run_dir": str(run_dir),
        "duration_s": settings.duration_s,
        "period_s": settings.period_s,
        "recover_after_s": settings.recover_after_s,
        "sample_interval_s": settings.sample_interval_s,
        "rate": config.load.rate,
        "post_ratio": config.load.post_ratio,
        "failback": config.failover.failback,
        "replication": replication_settings(config),
        "load_start": load_start,
        "faults_planned": len(offsets),
        "faults": figures,
        "failover_gap_ms": gap_statistics(figures),
        "detection_ms": {"median": rounded(metrics.percentile(
            [f["detection_ms"] for f in figures if f["detection_ms"] is not None], 50))},
        "gap_limits_ms": {"each": GAP_LIMIT_MS, "median": GAP_MEDIAN_LIMIT_MS},
        "requests_total": total,
        "requests_failed": total - ok,
        "availability_pct": round(ok / total * 100, 3) if total else None,
        **data,
        "controller_resources": resource_growth(samples, baseline_at),
        "replication_lag_ms": metrics.replication_lag(read_replication(run_dir / files.REPLICATION))
        if (run_dir / files.REPLICATION).exists() else None,
    }
    summary.pop("table_checksums", None)  # per-table detail; db_consistent says what matters
    failures = verdict(summary)
    summary["passed"] = not failures
    summary["failures"] = failures
    return summary


def _sleep_until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)
