"""The fabric's benchmark: how long a user goes without an answer when a cable between switches
is cut, with the switches' fast-failover groups and with the controller's reroute alone.

    python -m experiments bench fabric --trials 20 --rate 500

It runs core-link-down (topology two-tier: the cable between the primary's edge and the first
core) `--trials` times with `failover.switch_failover` on (every group has a backup bucket:
the switches at the cable's ends reroute at once) and off (one bucket each: the traffic waits
for the controller to hear the port go down and send the groups again), each trial 6 s of load
with the cut at 3 s. It writes `results/bench-fabric-<timestamp>/` (every run's folder,
`bench-fabric.json`, `bench-fabric.md`) and prints the table with the target and whether it
was met.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.results import files
from experiments.results.files import new_run_dir, write_json
from experiments.runs.trial import run_experiment
from experiments.testbed.scenarios import SCENARIOS
from topology.config import TestbedConfig

SCENARIO = "core-link-down"
TOPOLOGY = "two-tier"
CELLS = (("groups", True), ("controller only", False))  # label, failover.switch_failover
INTERRUPTION_TARGET_MS = 10.0  # the groups' median (issue "Beyond one switch")
KEYS = ("interruption_ms", "requests_failed", "vip_moves", "acked_writes_lost")
JSON_NAME = "bench-fabric.json"
REPORT_NAME = "bench-fabric.md"


def run_fabric_bench(
    config: TestbedConfig, trials: int, rate: float, out: Path, progress: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    folder = new_run_dir(out, "bench-fabric")
    started = time.monotonic()
    results: dict[str, Any] = {"rate": rate, "trials": trials, "topology": TOPOLOGY, "scenario": SCENARIO,
                               "cells": {}}
    for label, groups in CELLS:
        progress(f"bench fabric: {SCENARIO} on {TOPOLOGY}, {label}, {trials} trial(s) at {rate:g} req/s")
        cell = config.with_overrides({"network.topology": TOPOLOGY, "failover.switch_failover": groups,
                                      "load.rate": rate, "load.duration_s": 6.0, "load.fault_at_s": 3.0})
        run_dir, summary = run_experiment(cell, SCENARIOS[SCENARIO], folder / label.replace(" ", "-"), trials,
                                          progress)
        results["cells"][label] = {"run_dir": str(run_dir), **cell_figures(summary, trials)}
        write_json(folder / JSON_NAME, results)  # kept as it grows
    median = results["cells"]["groups"]["interruption_ms"]["median"]
    results["target"] = {"interruption_ms median <= 10 ms (groups)": median is not None
                         and median <= INTERRUPTION_TARGET_MS}
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    write_json(folder / JSON_NAME, results)
    files.write_atomic(folder / REPORT_NAME, fabric_table(results) + "\n")
    return folder, results


def cell_figures(summary: dict[str, Any], trials: int) -> dict[str, Any]:
    """Each key's median, p95 and max over the trials (one trial: its own figure for all three)."""
    if trials == 1:
        return {key: {"median": summary.get(key), "p95": summary.get(key), "max": summary.get(key), "n": 1}
                for key in KEYS}
    return {key: summary.get(key) or {} for key in KEYS}


def fabric_table(results: dict[str, Any]) -> str:
    """The benchmark's table (Markdown), with the target met or not."""
    def figure(cell: dict[str, Any], key: str, unit: str = "") -> str:
        f = cell.get(key) or {}
        if f.get("median") is None:
            return "-"
        return f"{f['median']:g} / {f['p95']:g}{unit} (max {f['max']:g})"

    lines = [f"{results['scenario']} on {results['topology']}, {results['trials']} trials at "
             f"{results['rate']:g} req/s (median / p95)", "",
             "| | " + " | ".join(results["cells"]) + " |", "|---|" + "---|" * len(results["cells"])]
    rows = (("interruption_ms", "longest time without an answer", " ms"),
            ("requests_failed", "requests failed per trial", ""),
            ("vip_moves", "VIP moves", ""), ("acked_writes_lost", "acknowledged writes lost", ""))
    for key, label, unit in rows:
        cells = " | ".join(figure(c, key, unit) for c in results["cells"].values())
        lines.append(f"| {label} | {cells} |")
    for target, met in (results.get("target") or {}).items():
        lines += ["", f"target: {target}: {'met' if met else 'NOT met'}"]
    return "\n".join(lines)
