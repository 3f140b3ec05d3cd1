"""The failover benchmark: how fast the VIP moves, over many trials, against stated targets.

    python -m experiments bench failover --trials 20 --rate 500

For each scenario (primary-crash, web-crash, db-crash, link-down) it runs `--trials` trials of a short
load (6 s, the fault at 3 s) and takes the median, p95 and max of the failover gap (last
success served by the primary to the first served by the secondary). Then, in one testbed,
it measures the throughput `wrk` gets through the VIP and straight to the primary's IP, side
by side, alternating. It writes `results/bench-<timestamp>/` (every run's folder, `bench.json`
and `bench.md`) and prints the table with each target and whether it was met.

Straight to the primary means from the monitor host: the client reaches the web port only
through the VIP (the switch rewrites replies from port 80 to come from the VIP), while the
monitor's traffic crosses the same switch untouched.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.analysis import metrics
from experiments.analysis.bench import (
    GAP_KEYS,
    LONG_AVAILABILITY_TARGET,
    check_targets,
    gap_figures,
    paired_ratio,
)
from experiments.results import files
from experiments.results.bench_report import bench_table
from experiments.results.files import new_run_dir, write_json
from experiments.results.records import read_requests
from experiments.runs.trial import Drive, run_experiment, run_trial, start_load
from experiments.testbed.scenarios import SCENARIOS
from experiments.testbed.testbed import Testbed
from services.web import PROJECT_ROOT
from topology.config import TestbedConfig

BENCH_SCENARIOS = ("primary-crash", "web-crash", "db-crash", "link-down", "primary-hang")
# `--baselines`: runs without a fault (at 1,000 req/s unless told), five of 60 s and one of 10
# minutes (about 16 minutes in all): not one false failover, and the long one's availability.
BASELINES = ((5, 60.0), (1, 600.0))
# What the table shows of each scenario: the failover figures, the requests failed, the time
# two databases were writable together and the acknowledged writes lost.
BENCH_KEYS = (*GAP_KEYS, "requests_failed", "both_writable_ms", "acked_writes_lost")
WRK_SECONDS = 4
# Alternating rounds, VIP then direct. This machine's throughput drifts by about 10 % within a
# minute, so the ratio is the median of each round's own ratio (two runs seconds apart), not the
# ratio of two medians, which a slow minute on one side moves.
WRK_ROUNDS = 5


def bench_config(config: TestbedConfig, rate: float) -> TestbedConfig:
    return replace(config, load=replace(config.load, rate=rate, duration_s=6.0, fault_at_s=3.0))


def wrk_requests_per_s(testbed: Testbed, host: str, url: str, seconds: int) -> float:
    """Closed-loop throughput of GET `url` from `host`, as wrk measures it (2 threads, 16 connections)."""
    out = testbed.host(host).cmd(f"wrk -t2 -c16 -d{seconds}s --timeout 2s {url}")
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not match:
        raise RuntimeError(f"wrk printed no Requests/sec line:\n{out}")
    return float(match.group(1))


class ThroughputRounds(Drive):
    """wrk through the VIP (from the client) and straight to the primary (from the monitor),
    alternating, `rounds` times: no open-loop load, no fault."""

    checks_data = False  # wrk only reads

    def __init__(self, rounds: int = WRK_ROUNDS) -> None:
        self.rounds = rounds
        self.through_vip: list[float] = []
        self.direct: list[float] = []

    def run(self, testbed: Testbed) -> float | None:
        config = testbed.config
        vip_url = f"http://{config.network.vip}:{config.web.port}/"
        direct_url = f"http://{config.server_plans[0].ip}:{config.web.port}/"
        for _ in range(self.rounds):
            self.through_vip.append(wrk_requests_per_s(testbed, "client", vip_url, WRK_SECONDS))
            self.direct.append(wrk_requests_per_s(testbed, "monitor", direct_url, WRK_SECONDS))
        return None


def measure_throughput(config: TestbedConfig, folder: Path, count: int = WRK_ROUNDS) -> dict[str, Any]:
    """The throughput rounds in a trial of their own; their figures."""
    rounds = ThroughputRounds(count)
    run_trial(config, "throughput", folder, rounds)
    return {
        "through_vip_rps": round(statistics.median(rounds.through_vip), 1),
        "direct_rps": round(statistics.median(rounds.direct), 1),
        "ratio": paired_ratio(rounds.through_vip, rounds.direct),
        "rounds": {"through_vip": rounds.through_vip, "direct": rounds.direct},
        "wrk": f"-t2 -c16 -d{WRK_SECONDS}s, GET /",
    }


def run_baselines(config: TestbedConfig, folder: Path, rate: float,
                  progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """The long runs without a fault (BASELINES) at `rate`: each one's false failovers and
    availability."""
    runs = []
    for count, seconds in BASELINES:
        load = replace(config.load, rate=rate, duration_s=seconds, fault_at_s=seconds / 2)
        progress(f"bench: {count} run(s) of {seconds:g} s without a fault at {rate:g} req/s")
        run_dir, summary = run_experiment(replace(config, load=load), SCENARIOS["baseline"],
                                          folder / f"baseline-{seconds:g}s", count, progress)
        trials = summary.get("per_trial") or [summary]
        availability = min((t["availability_pct"] for t in trials if t.get("availability_pct") is not None),
                           default=None)
        runs.append({"what": f"{count} run(s) of {seconds:g} s at {rate:g} req/s",
                     "run_dir": str(run_dir),
                     "false_failovers": sum(t.get("vip_moves") or 0 for t in trials),
                     "availability_pct": availability,
                     "availability_target": LONG_AVAILABILITY_TARGET if seconds >= 600 else None})
    return runs


def run_bench(
    config: TestbedConfig,
    trials: int,
    rate: float,
    out: Path,
    scenarios: tuple[str, ...] = BENCH_SCENARIOS,
    progress: Callable[[str], None] = print,
    baselines_rate: float | None = None,
    wrk_rounds: int = WRK_ROUNDS,
) -> tuple[Path, dict[str, Any]]:
    folder = new_run_dir(out, "bench")
    base_config = config
    config = bench_config(config, rate)
    started = time.monotonic()
    results: dict[str, Any] = {"rate": rate, "trials": trials, "scenarios": {}, "baselines": []}
    for name in scenarios:
        progress(f"bench: {name}, {trials} trial(s) at {rate:g} req/s")
        scenario = SCENARIOS[name]
        # What the scenario needs (failback "auto" for failback), as `run` gives it.
        needs = config.with_overrides(scenario.overrides) if scenario.overrides else config
        run_dir, summary = run_experiment(needs, scenario, folder, trials, progress)
        results["scenarios"][name] = {"run_dir": str(run_dir), **gap_figures(summary, trials, BENCH_KEYS),
                                      "failover_stages_ms": summary.get("failover_stages_ms")}
        write_json(folder / files.BENCH_JSON, results)  # kept as it grows
    if baselines_rate is not None:
        results["baselines"] = run_baselines(base_config, folder, baselines_rate, progress)
    progress("bench: throughput through the VIP and straight to the primary (wrk)")
    results["throughput"] = measure_throughput(config, folder / "throughput", wrk_rounds)
    results["targets"] = check_targets(results)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    write_json(folder / files.BENCH_JSON, results)
    files.write_atomic(folder / files.BENCH_REPORT, bench_table(results) + "\n")
    return folder, results


# -- the load generator's own benchmark --------------------------------------------------------

GENERATOR_TARGET_RPS = 2000
SINK_PORT = 8080


class LoadgenRound(Drive):
    """Open-loop load from the client to a minimal responder on the monitor host, then wrk
    against the same responder."""

    checks_data = False  # the responder has no database: nothing was written

    def __init__(self) -> None:
        self.wrk_rps: float | None = None

    def run(self, testbed: Testbed) -> float | None:
        config = testbed.config
        sink = f"http://{config.monitor.ip}:{SINK_PORT}"
        command = [sys.executable, "-m", "experiments.load.sink",
                   "--host", config.monitor.ip, "--port", str(SINK_PORT)]
        testbed.runner.start("sink", command, host=testbed.host("monitor"), cwd=PROJECT_ROOT)
        testbed.runner.wait_for("the sink answers", lambda: testbed.http_status("client", sink) == 200,
                                timeout=10, process="sink")
        start_load(testbed, url=sink)
        testbed.wait_load_done()
        testbed.record("load_finished")
        self.wrk_rps = wrk_requests_per_s(testbed, "client", sink + "/", 5)
        return None


def run_loadgen_bench(config: TestbedConfig, rate: float, out: Path) -> tuple[Path, dict[str, Any]]:
    """Is the load generator the bottleneck? Open-loop load at `rate`, then wrk, in one testbed.

    Both go from the client to a minimal responder on the monitor host (experiments/load/sink.py,
    no database behind it): the web service with its database cannot take 2,000 new
    connections a second on this 2-core machine, and the question here is the generator's.
    It passes when it sends every scheduled request close to its time (the lag from schedule
    to send stays small) with a record for each; wrk, closed-loop, shows what the same target
    takes from a tool written in C.
    """
    folder = new_run_dir(out, "bench-loadgen")
    config = replace(config, load=replace(config.load, rate=rate, duration_s=5.0, fault_at_s=4.0))
    drive = LoadgenRound()
    run_trial(config, "bench-loadgen", folder, drive)
    records = read_requests(folder / files.REQUESTS)
    lags = [(r.sent_at - r.scheduled_at) * 1000 for r in records]
    span = max(r.scheduled_at for r in records) - min(r.scheduled_at for r in records)
    results = {
        "rate": rate,
        "scheduled": round(rate * config.load.duration_s),
        "recorded": len(records),
        "ok": sum(1 for r in records if r.ok),
        "send_rate_rps": round(len(records) / (span + 1 / rate), 1) if records else None,
        "send_lag_ms": {p: metrics.percentile(lags, q) for p, q in (("p50", 50), ("p99", 99), ("max", 100))},
        "wrk_rps": drive.wrk_rps,
    }
    write_json(folder / files.BENCH_LOADGEN_JSON, results)
    return folder, results
