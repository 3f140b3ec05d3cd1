"""The same load and faults under the controller, keepalived and HAProxy, side by side.

    python -m experiments bench mechanisms --trials 20 --rate 500

For each cell (a mechanism and, for keepalived and HAProxy, a preset: as shipped or tuned) it
runs a no-fault trial first (the latency each adds, and whether it fails over by itself), then
`--trials` trials of each scenario that applies to it (controller-restart needs a
controller). Every trial is 14 s of load with the fault at 3 s: a peer as shipped takes
seconds to notice (keepalived: three 1 s advertisements; HAProxy: three checks 2 s apart), and
the service must be back within the load for the gap to be measured. It writes
`results/bench-mechanisms-<timestamp>/` (every run's folder, `bench-mechanisms.json`, `.md`
and the picture of the gaps) and prints the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from controller.failover import VIP_MOVED
from experiments.analysis.bench import GAP_KEYS, gap_figures
from experiments.results import files
from experiments.results.files import new_run_dir, write_json
from experiments.results.mechanisms_report import draw_gaps, mechanisms_table
from experiments.results.records import read_events
from experiments.runs.trial import mechanism_label, run_experiment
from experiments.testbed.scenarios import SCENARIOS
from topology.config import TestbedConfig

CELLS = (("sdn", "tuned"), ("vrrp", "defaults"), ("vrrp", "tuned"), ("proxy", "defaults"), ("proxy", "tuned"))
SCENARIO_NAMES = ("primary-crash", "web-crash", "db-crash", "link-down", "primary-hang", "flap",
                  "controller-restart")
DURATION_S = 14.0
FAULT_AT_S = 3.0


def cell_config(config: TestbedConfig, mechanism: str, preset: str, rate: float) -> TestbedConfig:
    return replace(config, failover=replace(config.failover, mechanism=mechanism, preset=preset),
                   load=replace(config.load, rate=rate, duration_s=DURATION_S, fault_at_s=FAULT_AT_S))


def moves_in(run_dir: Path) -> int:
    """How many times the VIP moved in the trials under `run_dir` (a no-fault run: all false)."""
    logs = list(run_dir.rglob(files.CONTROLLER_EVENTS))
    return sum(1 for log in logs for event in read_events(log) if event["kind"] == VIP_MOVED)


# What the table shows of a scenario: the failover figures, the requests failed and the
# acknowledged writes lost.
SCENARIO_KEYS = (*GAP_KEYS, "requests_failed", "acked_writes_lost")


def run_mechanisms_bench(
    config: TestbedConfig, trials: int, rate: float, out: Path,
    scenarios: tuple[str, ...] = SCENARIO_NAMES, cells: tuple[tuple[str, str], ...] = CELLS,
    progress: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    folder = new_run_dir(out, "bench-mechanisms")
    started = time.monotonic()
    results: dict[str, Any] = {"rate": rate, "trials": trials, "duration_s": DURATION_S,
                               "fault_at_s": FAULT_AT_S, "scenarios": list(scenarios), "cells": {}}
    for mechanism, preset in cells:
        cfg = cell_config(config, mechanism, preset, rate)
        label = mechanism_label(cfg)
        cell: dict[str, Any] = {"mechanism": mechanism, "preset": preset if mechanism != "sdn" else None,
                                "scenarios": {}}
        results["cells"][label] = cell
        place = folder / label.replace(" ", "-")
        progress(f"bench mechanisms: {label}, no fault")
        run_dir, baseline = run_experiment(cfg, SCENARIOS["baseline"], place, 1, progress)
        cell["baseline"] = {"latency_ms": baseline.get("latency_ms_before"),
                            "requests_failed": baseline.get("requests_failed"),
                            "false_failovers": moves_in(run_dir), "run_dir": str(run_dir)}
        for name in scenarios:
            if mechanism not in SCENARIOS[name].mechanisms:
                cell["scenarios"][name] = {"applies": False}
                continue
            progress(f"bench mechanisms: {label}, {name}, {trials} trial(s) at {rate:g} req/s")
            run_dir, summary = run_experiment(cfg, SCENARIOS[name], place, trials, progress)
            cell["scenarios"][name] = {"applies": True, "run_dir": str(run_dir),
                                       **gap_figures(summary, trials, SCENARIO_KEYS)}
        write_json(folder / files.BENCH_MECHANISMS_JSON, results)  # kept as it grows
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    write_json(folder / files.BENCH_MECHANISMS_JSON, results)
    files.write_atomic(folder / files.BENCH_MECHANISMS_REPORT, mechanisms_table(results) + "\n")
    draw_gaps(results, folder / files.BENCH_MECHANISMS_PNG)
    return folder, results
