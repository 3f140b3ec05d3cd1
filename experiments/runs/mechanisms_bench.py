"""The same load and faults under the controller, keepalived and HAProxy, side by side.

    python -m experiments bench mechanisms --trials 20 --rate 500

For each cell (a mechanism and, for keepalived and HAProxy, a preset: as shipped or tuned) it
runs a no-fault trial first (the latency each adds, and whether it fails over by itself), then
`--trials` trials of each scenario that applies to it (controller-restart needs a
controller). A trial of the controller or a tuned peer is 8 s of load with the fault at 2 s;
a peer as shipped gets 20 s with the fault at 3 s, because it takes seconds to notice
(keepalived: three 1 s advertisements; HAProxy: three checks 2 s apart, each waiting up to
2 s for a dead server) and the service must be back within the load for the gap to be
measured. It writes `results/bench-mechanisms-<timestamp>/` (every run's folder,
`bench-mechanisms.json`, `.md` and the picture of the gaps) and prints the table.

The JSON is rewritten after every cell, so a bench that stops half-way keeps what it ran:
`--resume FOLDER` runs only the cells that folder lacks (at its rate and trials) and
rewrites its table and picture.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.analysis.bench import GAP_KEYS, gap_figures
from experiments.results import files
from experiments.results.files import new_run_dir, write_json
from experiments.results.mechanisms_report import draw_gaps, mechanisms_table
from experiments.runs.trial import label_of, mechanism_label, run_experiment
from experiments.testbed.scenarios import SCENARIOS
from topology.config import TestbedConfig

CELLS = (("sdn", "tuned"), ("vrrp", "defaults"), ("vrrp", "tuned"), ("proxy", "defaults"), ("proxy", "tuned"))
SCENARIO_NAMES = ("primary-crash", "web-crash", "db-crash", "link-down", "primary-hang", "flap",
                  "controller-restart")
# (seconds of load, the fault's time in it) per preset; the controller's cell runs as "tuned".
TIMINGS = {"tuned": (8.0, 2.0), "defaults": (20.0, 3.0)}


def cell_timing(mechanism: str, preset: str) -> tuple[float, float]:
    return TIMINGS["tuned" if mechanism == "sdn" else preset]


def cell_config(config: TestbedConfig, mechanism: str, preset: str, rate: float) -> TestbedConfig:
    duration_s, fault_at_s = cell_timing(mechanism, preset)
    return replace(config, failover=replace(config.failover, mechanism=mechanism, preset=preset),
                   load=replace(config.load, rate=rate, duration_s=duration_s, fault_at_s=fault_at_s))


# What the table shows of a scenario: the failover figures, the requests failed and the
# acknowledged writes lost.
SCENARIO_KEYS = (*GAP_KEYS, "requests_failed", "acked_writes_lost", "vip_moves", "both_writable_ms")


class ResumeError(ValueError):
    """A folder `--resume` cannot continue: the message says why."""


def resumed_results(folder: Path, scenarios: tuple[str, ...]) -> dict[str, Any]:
    """The results a stopped bench left in `folder`: every cell it recorded, whole or not (the
    runs a cell lacks are looked for on disk, then run: see `finished_run`)."""
    path = folder / files.BENCH_MECHANISMS_JSON
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResumeError(f"--resume {folder}: no bench results to continue there ({exc})") from None
    if not isinstance(results, dict) or not isinstance(results.get("cells"), dict):
        raise ResumeError(f"--resume {folder}: {path.name} is not a mechanisms bench's results")
    results["scenarios"] = list(dict.fromkeys([*results.get("scenarios", []), *scenarios]))
    return results


def finished_run(place: Path, name: str, trials: int) -> tuple[Path, dict[str, Any]] | None:
    """A run of scenario `name` with all its `trials` that a stopped bench left in `place` (its
    summary is written once the last trial is done), or None: the newest one."""
    for run_dir in sorted(place.glob(f"{name}-*"), reverse=True):
        try:
            summary = json.loads((run_dir / files.SUMMARY).read_text())
        except (OSError, ValueError):
            continue  # stopped before its last trial: run again
        if summary.get("scenario") == name and (summary.get("trials") or 1) == trials:
            return run_dir, summary
    return None


def in_bench_order(cells: dict[str, Any]) -> dict[str, Any]:
    """The cells in the order of CELLS (a resumed bench adds its cells at the end)."""
    order = [label_of(mechanism, preset) for mechanism, preset in CELLS]
    rank = {label: i for i, label in enumerate(order)}
    return dict(sorted(cells.items(), key=lambda item: rank.get(item[0], len(order))))


def run_mechanisms_bench(
    config: TestbedConfig, trials: int, rate: float, out: Path,
    scenarios: tuple[str, ...] = SCENARIO_NAMES, cells: tuple[tuple[str, str], ...] = CELLS,
    progress: Callable[[str], None] = print, resume: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    started = time.monotonic()
    if resume is None:
        folder = new_run_dir(out, "bench-mechanisms")
        results: dict[str, Any] = {"rate": rate, "trials": trials, "scenarios": list(scenarios),
                                   "cells": {}}
    else:
        folder, results = resume, resumed_results(resume, scenarios)
        rate, trials = results["rate"], results["trials"]
        progress(f"bench mechanisms: resuming {folder} at its {rate:g} req/s, {trials} trial(s) per cell")
    for mechanism, preset in cells:
        cfg = cell_config(config, mechanism, preset, rate)
        label = mechanism_label(cfg)
        cell = results["cells"].setdefault(label, {
            "mechanism": mechanism, "preset": preset if mechanism != "sdn" else None,
            "duration_s": cfg.load.duration_s, "fault_at_s": cfg.load.fault_at_s, "scenarios": {}})
        place = folder / label.replace(" ", "-")
        if "baseline" not in cell:
            found = finished_run(place, "baseline", 1)
            if found is None:
                progress(f"bench mechanisms: {label}, no fault")
            run_dir, baseline = found or run_experiment(cfg, SCENARIOS["baseline"], place, 1, progress)
            cell["baseline"] = {"latency_ms": baseline.get("latency_ms_before"),
                                "requests_failed": baseline.get("requests_failed"),
                                "false_failovers": baseline.get("vip_moves"), "run_dir": str(run_dir)}
            write_json(folder / files.BENCH_MECHANISMS_JSON, results)  # kept as it grows
        for name in scenarios:
            if name in cell["scenarios"]:
                continue  # recorded before the bench was stopped
            if mechanism not in SCENARIOS[name].mechanisms:
                cell["scenarios"][name] = {"applies": False}
                continue
            found = finished_run(place, name, trials)
            if found is None:
                progress(f"bench mechanisms: {label}, {name}, {trials} trial(s) at {rate:g} req/s")
            else:
                progress(f"bench mechanisms: {label}, {name}: its {trials} trial(s) found in {found[0]}")
            run_dir, summary = found or run_experiment(cfg, SCENARIOS[name], place, trials, progress)
            cell["scenarios"][name] = {"applies": True, "run_dir": str(run_dir),
                                       **gap_figures(summary, trials, SCENARIO_KEYS),
                                       "failover_stages_ms": summary.get("failover_stages_ms")}
            write_json(folder / files.BENCH_MECHANISMS_JSON, results)  # kept as it grows
    results["cells"] = in_bench_order(results["cells"])
    results["elapsed_s"] = round(results.get("elapsed_s", 0) + time.monotonic() - started, 1)
    write_json(folder / files.BENCH_MECHANISMS_JSON, results)
    files.write_atomic(folder / files.BENCH_MECHANISMS_REPORT, mechanisms_table(results) + "\n")
    draw_gaps(results, folder / files.BENCH_MECHANISMS_PNG)
    return folder, results
