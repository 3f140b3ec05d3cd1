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

import csv
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from experiments.analysis import metrics
from experiments.results import files
from experiments.results.records import read_replication, read_requests, write_summary
from experiments.runs.replication import ReplicationMonitor
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
RESOURCES_CSV = files.RESOURCES
RESOURCE_COLUMNS = ("time", "fds", "threads", "rss_kb")

# The bounds, in one place. A whole-server crash is seen on the port-down event, as in
# primary-crash, so the failover controller's primary-crash targets apply (GAP_TARGETS in
# experiments/runs/bench.py: median <= 100 ms, p95 <= 200 ms). With ~10 faults a p95 is the
# second-largest gap, so the p95 target is held by every single failover instead.
GAP_LIMIT_MS = 200.0  # every failover
GAP_MEDIAN_LIMIT_MS = 100.0  # the median over the soak's failovers
# Controller growth from the baseline (after the first fault cycle) to the end. Measured in a
# 150 s run with three faults (results/soak-20261126-230958): 8 descriptors and 10 threads when
# steady, one more of each only while a failover or a recovery is being handled (a database
# connection to fence or free a server); resident memory rose about 1 MB in each of the first
# two fault cycles, then stayed flat. The bounds leave room for such a transient caught by the
# last sample and for allocator noise, while a leak of one descriptor or thread per failover,
# or of 2 MB per failover, exceeds them within the ten faults of the full soak.
GROWTH_BOUNDS = {"fds": 4, "threads": 2, "rss_kb": 16 * 1024}


@dataclass(frozen=True)
class SoakSettings:
    duration_s: float = DEFAULT_DURATION_S
    period_s: float = DEFAULT_PERIOD_S
    recover_after_s: float = RECOVER_AFTER_S
    sample_interval_s: float = SAMPLE_INTERVAL_S


@dataclass(frozen=True)
class Sample:
    """One reading of the controller process from /proc."""

    time: float
    fds: int
    threads: int
    rss_kb: int


# -- the pure parts ---------------------------------------------------------------------------


def fault_offsets(duration_s: float, period_s: float, recover_after_s: float) -> list[float]:
    """Seconds into the load of each fault: half a period in, then every period.

    A fault is scheduled only if its server is brought back before the load ends, so every
    fault has a whole failover and recovery inside the load. For 600 s and 60 s: 30, 90, ... 570.
    """
    if period_s <= recover_after_s:
        raise ValueError(f"the period ({period_s} s) must be longer than the recovery ({recover_after_s} s)")
    offsets = []
    at = period_s / 2
    while at + recover_after_s < duration_s:
        offsets.append(at)
        at += period_s
    return offsets


def fault_windows(fault_times: Sequence[float]) -> list[tuple[float, float]]:
    """For each fault, the span of time its failover is judged in: halfway to its neighbours.

    The first window starts at -inf and the last ends at +inf, so every request and event
    belongs to exactly one window.
    """
    middles = [(a + b) / 2 for a, b in zip(fault_times, fault_times[1:], strict=False)]
    bounds = [-math.inf, *middles, math.inf]
    return list(zip(bounds, bounds[1:], strict=False))[: len(fault_times)]


def per_fault_figures(
    records: Sequence[metrics.RequestRecord],
    events: Sequence[Mapping[str, Any]],
    faults: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Each fault's failover, judged on the requests sent and the events within its window.

    `faults` are {"at": epoch s, "server": the server that crashed}. `moved_to` is the first
    VIP move at or after the fault; the gap is from the last success served by the crashed
    server to the first served by `moved_to` (metrics.failover_gap_ms) within the window.
    """
    windows = fault_windows([f["at"] for f in faults])
    figures = []
    for index, (fault, (start, end)) in enumerate(zip(faults, windows, strict=True), start=1):
        at, server = fault["at"], fault["server"]
        in_window = [r for r in records if start <= r.sent_at < end]
        moves = [e for e in events
                 if e["kind"] == metrics.VIP_MOVED and at <= e["time"] < end]
        moved_to = moves[0].get("server") if moves else None
        gap = metrics.failover_gap_ms(in_window, server, moved_to) if moved_to else None
        detection = (moves[0]["time"] - at) * 1000 if moves else None
        after = [r for r in in_window if r.sent_at >= at]
        figures.append({
            "fault": index,
            "at": round(at, 6),
            "server": server,
            "moved_to": moved_to,
            "vip_moves": len(moves),
            "detection_ms": _rounded(detection),
            "failover_gap_ms": _rounded(gap),
            "requests_in_window": len(in_window),
            "requests_failed_after_fault": sum(1 for r in after if not r.ok),
        })
    return figures


def resource_growth(
    samples: Sequence[Sample], baseline_at: float, bounds: Mapping[str, float] = GROWTH_BOUNDS
) -> dict[str, Any]:
    """Growth of each resource from the first sample at or after `baseline_at` to the last one.

    `within` is True only if every growth is at most its bound; with no sample at or after
    the baseline there is nothing to judge, and `within` is False.
    """
    later = [s for s in samples if s.time >= baseline_at]
    if not later:
        return {"baseline": None, "end": None, "max": None, "growth": None,
                "bounds": dict(bounds), "within": False, "samples": len(samples)}
    baseline, end = later[0], samples[-1]
    growth = {key: getattr(end, key) - getattr(baseline, key) for key in bounds}
    return {
        "baseline": asdict(baseline),
        "end": asdict(end),
        "max": {key: max(getattr(s, key) for s in samples) for key in bounds},
        "growth": growth,
        "bounds": dict(bounds),
        "within": all(growth[key] <= bounds[key] for key in bounds),
        "samples": len(samples),
    }


def gap_statistics(figures: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Median, p95 and max of the measured failover gaps (ms)."""
    gaps = [f["failover_gap_ms"] for f in figures if f["failover_gap_ms"] is not None]
    return {
        "n": len(gaps),
        "median": _rounded(metrics.percentile(gaps, 50)),
        "p95": _rounded(metrics.percentile(gaps, 95)),
        "max": _rounded(max(gaps)) if gaps else None,
    }


def verdict(summary: Mapping[str, Any]) -> list[str]:
    """Every way the soak failed, one line each; an empty list means it passed.

    Reads the summary's `faults_planned`, `faults`, `failover_gap_ms`, the write set check,
    `db_consistent`, `controller_running_at_end` and `controller_resources`.
    """
    failures = []
    faults = summary.get("faults") or []
    if len(faults) != summary.get("faults_planned"):
        failures.append(f"{len(faults)} fault(s) injected of {summary.get('faults_planned')} planned")
    for fault in faults:
        name = f"fault {fault['fault']} ({fault['server']})"
        if fault["moved_to"] is None or fault["moved_to"] == fault["server"]:
            failures.append(f"{name}: the VIP did not move away (moved_to {fault['moved_to']})")
        elif fault["vip_moves"] != 1:
            failures.append(f"{name}: the VIP moved {fault['vip_moves']} times, not once")
        gap = fault["failover_gap_ms"]
        if gap is None:
            failures.append(f"{name}: no failover gap could be measured")
        elif gap > GAP_LIMIT_MS:
            failures.append(f"{name}: failover gap {gap} ms > {GAP_LIMIT_MS:g} ms")
        if not fault.get("healthy_again", True):
            failures.append(f"{name}: the server was not up again before the next fault")
    median = (summary.get("failover_gap_ms") or {}).get("median")
    if median is not None and median > GAP_MEDIAN_LIMIT_MS:
        failures.append(f"failover gap median {median} ms > {GAP_MEDIAN_LIMIT_MS:g} ms")
    for key in ("acked_writes_lost", "unexpected_writes", "failed_but_present_writes", "duplicate_writes"):
        if summary.get(key) != 0:
            failures.append(f"{key} = {summary.get(key)}, expected 0")
    if summary.get("db_consistent") is not True:
        failures.append(f"databases not consistent after the soak ({summary.get('replication_error', '')})")
    if summary.get("controller_running_at_end") is not True:
        failures.append("the controller was not running at the end")
    resources = summary.get("controller_resources") or {}
    if not resources.get("within"):
        growth, bounds = resources.get("growth") or {}, resources.get("bounds") or {}
        over = [f"{k} +{growth[k]} > +{bounds[k]}" for k in bounds if k in growth and growth[k] > bounds[k]]
        failures.append("controller growth beyond bounds: " + (", ".join(over) or "no samples"))
    return failures


def soak_report(summary: Mapping[str, Any]) -> str:
    """The soak's figures as a short Markdown page: settings, faults, data, resources, verdict."""
    s = summary
    gaps = s.get("failover_gap_ms") or {}
    res = s.get("controller_resources") or {}
    lines = [
        "# Soak",
        "",
        f"{s['duration_s']:g} s of open-loop load at {s['rate']:g} req/s ({s['post_ratio']:g} writes), "
        f"a whole-server crash of the server holding the VIP every {s['period_s']:g} s "
        f"(first at {s['period_s'] / 2:g} s), each brought back {s['recover_after_s']:g} s later; "
        f"failback \"{s['failback']}\".",
        "",
        f"**Verdict: {'passed' if s['passed'] else 'FAILED'}**",
        "",
    ]
    lines += [f"- {failure}" for failure in s.get("failures", [])]
    lines += [
        "| fault | at (s) | crashed | VIP moved to | detection (ms) | failover gap (ms) | failed requests "
        "| crashed server up again after (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in s.get("faults", []):
        lines.append(
            f"| {f['fault']} | {f['at_s']:g} | {f['server']} | {f['moved_to'] or '-'} | "
            f"{_cell(f['detection_ms'])} | {_cell(f['failover_gap_ms'])} | "
            f"{f['requests_failed_after_fault']} | {_cell(f.get('back_up_after_s'))} |"
        )
    lines += [
        "",
        f"Failover gap over {gaps.get('n')} failovers: median {_cell(gaps.get('median'))} ms, "
        f"p95 {_cell(gaps.get('p95'))} ms, max {_cell(gaps.get('max'))} ms "
        f"(bounds: each <= {GAP_LIMIT_MS:g} ms, median <= {GAP_MEDIAN_LIMIT_MS:g} ms).",
        "",
        f"Requests: {s.get('requests_total')} sent, {s.get('requests_failed')} failed, "
        f"availability {s.get('availability_pct')} %.",
        f"Writes: {s.get('acked_writes')} acknowledged, {s.get('acked_writes_lost')} lost, "
        f"{s.get('unexpected_writes')} unexpected, {s.get('duplicate_writes')} duplicated; "
        f"databases consistent: {s.get('db_consistent')}.",
        "",
        "Controller process (from /proc, every "
        f"{s['sample_interval_s']:g} s, {res.get('samples')} samples; baseline once the first fault "
        "cycle is over):",
        "",
        "| | baseline | end | max | growth | bound |",
        "|---|---|---|---|---|---|",
    ]
    names = {"fds": "open file descriptors", "threads": "threads", "rss_kb": "resident memory (kB)"}
    for key, label in names.items():
        base, end = res.get("baseline") or {}, res.get("end") or {}
        growth, bounds, most = res.get("growth") or {}, res.get("bounds") or {}, res.get("max") or {}
        lines.append(f"| {label} | {base.get(key, '-')} | {end.get(key, '-')} | {most.get(key, '-')} | "
                     f"{_signed(growth.get(key))} | +{bounds.get(key, '-')} |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+d}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- the controller's resources -------------------------------------------------------------


def read_process(pid: int) -> Sample:
    """Open descriptors, threads and resident memory (kB) of process `pid`, now."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return Sample(time.time(), fds, int(fields["Threads"][0]), int(fields["VmRSS"][0]))


class ResourceSampler:
    """Samples one process every `interval` seconds in a thread, into a CSV and a list."""

    def __init__(self, pid: int, out: Path, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[Sample] = []
        self.file = open(out, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(RESOURCE_COLUMNS)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(self.interval + 1)
        self.file.close()

    def _run(self) -> None:
        while True:
            try:
                sample = read_process(self.pid)
            except (OSError, KeyError, ValueError):
                return  # the process is gone: the verdict's controller check says so
            self.samples.append(sample)
            self.writer.writerow([f"{sample.time:.3f}", sample.fds, sample.threads, sample.rss_kb])
            self.file.flush()
            if self.stopping.wait(self.interval):
                return


def read_resources(path: Path) -> list[Sample]:
    """The samples of a controller-resources.csv."""
    with open(path, newline="") as f:
        return [Sample(float(r["time"]), int(r["fds"]), int(r["threads"]), int(r["rss_kb"]))
                for r in csv.DictReader(f)]


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
            sampler = ResourceSampler(controller.pid, run_dir / RESOURCES_CSV, settings.sample_interval_s)
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
    write_report(run_dir, summary)
    return run_dir, summary


def write_report(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """soak.md and controller-resources.png from the summary and the samples."""
    text = soak_report(summary)
    if (run_dir / RESOURCES_CSV).exists():
        draw_resources(read_resources(run_dir / RESOURCES_CSV), summary, run_dir / files.RESOURCES_PNG)
        text += "\n![controller resources](controller-resources.png)\n"
    (run_dir / files.SOAK_REPORT).write_text(text)


def draw_resources(samples: Sequence[Sample], summary: Mapping[str, Any], path: Path) -> None:
    """Descriptors, threads and resident memory of the controller over the soak, faults marked.

    A leak shows as a staircase, a step per fault; a steady controller as flat lines with
    short spikes while a failover or recovery is handled. The dashed line is the baseline.
    """
    from experiments.results.report import _figure  # matplotlib: only when a picture is drawn

    start = summary.get("load_start") or (samples[0].time if samples else 0.0)
    baseline = (summary.get("controller_resources") or {}).get("baseline") or {}
    panels = [("fds", "open file descriptors", 1), ("threads", "threads", 1),
              ("rss_kb", "resident memory (MB)", 1024)]
    with _figure(path, rows=len(panels)) as axes:
        for ax, (key, label, scale) in zip(axes, panels, strict=True):
            ax.plot([s.time - start for s in samples], [getattr(s, key) / scale for s in samples],
                    drawstyle="steps-post", color="tab:blue")
            if key in baseline:
                ax.axhline(baseline[key] / scale, color="grey", linestyle="--", linewidth=1)
            for fault in summary.get("faults", []):
                ax.axvline(fault["at_s"], color="tab:red", linewidth=0.8)
            ax.set_ylabel(label)
            low, high = ax.get_ylim()
            ax.set_ylim(min(0, low), high * 1.15)
        axes[0].set_title("controller process; red: a server crashes")
        axes[-1].set_xlabel("seconds since the load started")


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
        "detection_ms": {"median": _rounded(metrics.percentile(
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
