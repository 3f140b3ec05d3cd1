"""How the testbed's cost grows with its size: servers, clients and switches.

    python -m experiments bench scale --trials 5 --rate 500
    python -m experiments bench scale --sizes single/2/1 leaf-spine-4x2/8/64

For each size (experiments/analysis/scale.py: TOPOLOGY/SERVERS/CLIENTS; the defaults go from
one switch with two servers and one client to a 4 x 2 leaf-spine with eight servers and 64
clients) it starts one testbed and measures it idle: the time to set it up (network,
databases replicating in a ring, web servers, the VIP answering), every switch's flows and
groups as Open vSwitch lists them, and the controller's resident memory. Then `--trials`
trials of primary-crash (6 s of load at `--rate`, the fault at 3 s) give the failover gap.

It writes `results/bench-scale-<timestamp>/` (each size's folders, `bench-scale.json`, kept as
it grows, `bench-scale.md` and `bench-scale.png`) and prints the table with the two targets:
no switch but the clients' edge has more flows with more clients, and the gap at every size
within 20 % of the first size's (the reference).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from experiments.analysis.bench import gap_figures
from experiments.analysis.metrics import percentile
from experiments.analysis.scale import (
    DEFAULT_SIZES,
    Size,
    flows_without_clients_growth,
    gap_ratios,
    gap_within_tolerance,
    size_config,
)
from experiments.results import files
from experiments.results.files import new_run_dir, write_json
from experiments.results.scale_report import draw_scale, scale_table
from experiments.runs.resources import read_process
from experiments.runs.trial import run_experiment
from experiments.testbed.ovs import table_sizes
from experiments.testbed.scenarios import SCENARIOS
from experiments.testbed.testbed import Testbed
from topology.config import TestbedConfig

SCENARIO = "primary-crash"
TRIAL_KEYS = ("failover_gap_ms", "requests_failed", "acked_writes_lost", "availability_pct",
              "vip_moves_before_fault")
FLOWS_SETTLE_S = 10.0  # the switches' tables are read once two reads 0.2 s apart agree


def measure_idle(config: TestbedConfig, folder: Path) -> dict[str, Any]:
    """One testbed of this size, idle: its set-up time, each switch's flows and groups, the
    controller's memory."""
    started = time.monotonic()
    with Testbed(config, folder) as testbed:
        setup_s = time.monotonic() - started
        switches = config.fabric.switches
        tables: dict[str, dict[str, int]] = {}

        def settled() -> bool:
            now = {switch: table_sizes(switch) for switch in switches}
            done = now == tables
            tables.clear()
            tables.update(now)
            return done

        testbed.runner.wait_for("the switches' tables settle", settled, timeout=FLOWS_SETTLE_S,
                                process="controller", interval=0.2)
        rss_kb = read_process(testbed.runner.processes["controller"].pid).rss_kb
    return {"setup_s": round(setup_s, 2), "switches": tables, "clients_edge": config.fabric.clients_edge,
            "controller_rss_mb": round(rss_kb / 1024, 1)}


def trial_figures(summary: dict[str, Any], trials: int) -> dict[str, Any]:
    """A size's figures from its primary-crash run: the gap and the rest of TRIAL_KEYS, and the
    median latency before the fault (how loaded the testbed of that size is, with no fault)."""
    per_trial = summary.get("per_trial") or [summary]
    p50s = [t["latency_ms_before"]["p50"] for t in per_trial if (t.get("latency_ms_before") or {}).get("p50")]
    return {**gap_figures(summary, trials, TRIAL_KEYS), "latency_p50_before_ms": percentile(p50s, 50)}


def run_scale_bench(
    config: TestbedConfig, trials: int, rate: float, out: Path, sizes: Sequence[Size] = DEFAULT_SIZES,
    progress: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    folder = new_run_dir(out, "bench-scale")
    started = time.monotonic()
    results: dict[str, Any] = {"rate": rate, "trials": trials, "scenario": SCENARIO,
                               "reference": sizes[0].label, "sizes": {}}
    for size in sizes:
        cfg = size_config(config, size, rate)
        place = folder / size.label.replace("/", "-")
        progress(f"bench scale: {size.label} ({len(cfg.fabric.switches)} switch(es)), idle")
        figures: dict[str, Any] = {"shape": size.shape, "topology": size.topology, "servers": size.servers,
                                   "clients": size.clients, **measure_idle(cfg, place / "idle")}
        progress(f"bench scale: {size.label}, {SCENARIO}, {trials} trial(s) at {rate:g} req/s")
        run_dir, summary = run_experiment(cfg, SCENARIOS[SCENARIO], place, trials, progress)
        figures.update({"run_dir": str(run_dir), **trial_figures(summary, trials)})
        results["sizes"][size.label] = figures
        write_json(folder / files.BENCH_SCALE_JSON, results)  # kept as it grows
    ratios = gap_ratios(results["sizes"], results["reference"])
    for label, ratio in ratios.items():
        results["sizes"][label]["gap_vs_reference"] = ratio
    results["targets"] = {
        "no switch but the clients' edge has more flows with more clients":
            flows_without_clients_growth(results["sizes"]),
        "the failover gap median within 20 % of the reference's at every size": gap_within_tolerance(ratios),
    }
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    write_json(folder / files.BENCH_SCALE_JSON, results)
    files.write_atomic(folder / files.BENCH_SCALE_REPORT, scale_table(results) + "\n")
    draw_scale(results, folder / files.BENCH_SCALE_PNG)
    return folder, results
