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

import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from experiments.analysis.bench import check_targets, gap_figures, paired_ratio
from experiments.results import files
from experiments.results.bench_report import bench_table
from experiments.results.records import read_requests
from experiments.runs.trial import run_experiment
from experiments.testbed.scenarios import SCENARIOS
from experiments.testbed.testbed import Testbed
from services.web import PROJECT_ROOT
from topology.config import TestbedConfig

BENCH_SCENARIOS = ("primary-crash", "web-crash", "db-crash", "link-down")
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


def measure_throughput(config: TestbedConfig, folder: Path) -> dict[str, Any]:
    """wrk through the VIP (from the client) and straight to the primary (from the monitor)."""
    primary = config.server_plans[0]
    vip_url = f"http://{config.network.vip}:{config.web.port}/"
    direct_url = f"http://{primary.ip}:{config.web.port}/"
    through_vip, direct = [], []
    with Testbed(config, folder) as testbed:
        for _ in range(WRK_ROUNDS):
            through_vip.append(wrk_requests_per_s(testbed, "client", vip_url, WRK_SECONDS))
            direct.append(wrk_requests_per_s(testbed, "monitor", direct_url, WRK_SECONDS))
    vip_rps, direct_rps = statistics.median(through_vip), statistics.median(direct)
    return {
        "through_vip_rps": round(vip_rps, 1),
        "direct_rps": round(direct_rps, 1),
        "ratio": paired_ratio(through_vip, direct),
        "rounds": {"through_vip": through_vip, "direct": direct},
        "wrk": f"-t2 -c16 -d{WRK_SECONDS}s, GET /",
    }


def run_bench(
    config: TestbedConfig,
    trials: int,
    rate: float,
    out: Path,
    scenarios: tuple[str, ...] = BENCH_SCENARIOS,
    progress: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    folder = out.resolve() / f"bench-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True)
    config = bench_config(config, rate)
    started = time.monotonic()
    results: dict[str, Any] = {"rate": rate, "trials": trials, "scenarios": {}}
    for name in scenarios:
        progress(f"bench: {name}, {trials} trial(s) at {rate:g} req/s")
        run_dir, summary = run_experiment(config, SCENARIOS[name], folder, trials, progress)
        results["scenarios"][name] = {"run_dir": str(run_dir), **gap_figures(summary, trials)}
    progress("bench: throughput through the VIP and straight to the primary (wrk)")
    results["throughput"] = measure_throughput(config, folder / "throughput")
    results["targets"] = check_targets(results)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    (folder / files.BENCH_JSON).write_text(json.dumps(results, indent=2) + "\n")
    (folder / files.BENCH_REPORT).write_text(bench_table(results) + "\n")
    return folder, results


# -- the load generator's own benchmark --------------------------------------------------------

GENERATOR_TARGET_RPS = 2000
SINK_PORT = 8080


def run_loadgen_bench(config: TestbedConfig, rate: float, out: Path) -> tuple[Path, dict[str, Any]]:
    """Is the load generator the bottleneck? Open-loop load at `rate`, then wrk, in one testbed.

    Both go from the client to a minimal responder on the monitor host (experiments/load/sink.py,
    no database behind it): the web service with its database cannot take 2,000 new
    connections a second on this 2-core machine, and the question here is the generator's.
    It passes when it sends every scheduled request close to its time (the lag from schedule
    to send stays small) with a record for each; wrk, closed-loop, shows what the same target
    takes from a tool written in C.
    """
    from experiments.analysis import metrics

    folder = out.resolve() / f"bench-loadgen-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    config = replace(config, load=replace(config.load, rate=rate, duration_s=5.0, fault_at_s=4.0))
    sink = f"http://{config.monitor.ip}:{SINK_PORT}"
    with Testbed(config, folder) as testbed:
        command = [sys.executable, "-m", "experiments.load.sink",
                   "--host", config.monitor.ip, "--port", str(SINK_PORT)]
        testbed.runner.start("sink", command, host=testbed.host("monitor"), cwd=PROJECT_ROOT)
        testbed.runner.wait_for("the sink answers", lambda: testbed.http_status("client", sink) == 200,
                                timeout=10, process="sink")
        testbed.start_load(time.time() + 1.0, url=sink)
        testbed.wait_load_done()
        wrk_rps = wrk_requests_per_s(testbed, "client", sink + "/", 5)
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
        "wrk_rps": wrk_rps,
    }
    (folder / files.BENCH_LOADGEN_JSON).write_text(json.dumps(results, indent=2) + "\n")
    return folder, results


