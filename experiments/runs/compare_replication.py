"""Asynchronous versus semi-synchronous replication: where acknowledged writes are lost.

    python -m experiments run compare-replication --trials 20 --rate 500
    python -m experiments run compare-replication --under partition-crash --trials 5

Runs `primary-crash` (or the scenario `--under` names) `--trials` times with each
replication mode and writes, in
`results/compare-replication-<timestamp>/`, both runs' folders, `compare-replication.md` (a
side-by-side table), `compare-replication.json` and `compare-replication.png`:
acknowledged writes lost in each trial, and the latency of writes, for both modes.

The lesson it shows: with asynchronous replication the primary acknowledges a write before
any replica has it, so a crash can lose the last writes the clients were told are saved; with
semi-synchronous replication (wait point AFTER_SYNC) the acknowledgement waits until a replica
has the write, so none is lost, and every write pays a round trip to the replica for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.results.files import new_run_dir
from experiments.results.replication_report import MODES, mode_figures, write_replication_report
from experiments.runs.trial import run_experiment
from experiments.testbed.scenarios import SCENARIOS
from topology.config import TestbedConfig

NAME = "compare-replication"
DEFAULT_SCENARIO = "primary-crash"
SUMMARY = (f"{DEFAULT_SCENARIO} (or the scenario --under names) under asynchronous and "
           "semi-synchronous replication, side by side")


def run_compare_replication(
    config: TestbedConfig, trials: int, out: Path, scenario: str = DEFAULT_SCENARIO,
    progress: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any]]:
    folder = new_run_dir(out, NAME)
    results: dict[str, Any] = {"scenario": scenario, "trials": trials, "rate": config.load.rate, "modes": {}}
    for mode in MODES:
        progress(f"{NAME}: {scenario} with {mode} replication, {trials} trial(s)")
        mode_config = replace(config, database=replace(config.database, replication=mode))
        run_dir, _ = run_experiment(mode_config, SCENARIOS[scenario], folder / mode, trials, progress)
        results["modes"][mode] = mode_figures(run_dir)
    write_replication_report(folder, NAME, results)
    return folder, results


