"""The published study, reproduced: primary-crash over a sweep of load rates.

    python -m experiments run study --trials 3
    python -m experiments run study --rates 100 300 600 --trials 5

The study measured throughput, request loss, response time and availability before and
after the failover of its primary, and found them lower after *because the secondary is the
weaker machine*. That shows only when the load is more than the secondary can serve, so the
study runs `primary-crash` at each rate of a sweep, from well below the secondary's capacity
to above it. Its own config, `config/study.toml`, gives the secondary a quarter of the
machine (the defaults give it half, which serves more than the load generator sends on a
2-core machine while the primary's processes are gone). Each trial is 12 s of load with the
fault at 6 s, so both windows hold 6 s of service.

It writes `results/study-<timestamp>/`: every rate's run folder, `study.json`, `study.md` (the
study's table, each finding beside the figures that support or contradict it) and
`study.png` (the four figures against the rate, before and after).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.analysis.study import findings, study_row
from experiments.results import files
from experiments.results.files import new_run_dir, write_json
from experiments.results.study_report import write_study_report
from experiments.runs.trial import run_experiment
from experiments.testbed.scenarios import SCENARIOS
from services.web import PROJECT_ROOT
from topology.config import TestbedConfig

NAME = "study"
SUMMARY = ("the published study: primary-crash over a sweep of load rates, before and after, "
           "against its findings")
CONFIG = PROJECT_ROOT / "config" / "study.toml"
DEFAULT_RATES = (100.0, 200.0, 300.0, 450.0, 600.0, 800.0)
DURATION_S = 12.0
FAULT_AT_S = 6.0
SCENARIO = "primary-crash"
JSON = files.STUDY_JSON


def sweep(config: TestbedConfig, rates: tuple[float, ...]) -> list[tuple[float, TestbedConfig]]:
    """Each rate of the sweep with its config, validated before anything runs (ConfigError)."""
    return [(rate, config.with_overrides({"load.rate": rate, "load.duration_s": DURATION_S,
                                          "load.fault_at_s": FAULT_AT_S}))
            for rate in rates]


def run_study(configs: list[tuple[float, TestbedConfig]], trials: int, out: Path,
              progress: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:
    """Run the sweep of `sweep()`: `trials` trials of primary-crash at each rate."""
    folder = new_run_dir(out, NAME)
    secondary = configs[0][1].servers[1]
    results: dict[str, Any] = {"scenario": SCENARIO, "trials": trials, "duration_s": DURATION_S,
                               "fault_at_s": FAULT_AT_S, "secondary": secondary.name,
                               "secondary_cpu": secondary.cpu, "rows": []}
    for rate, config in configs:
        progress(f"{NAME}: {SCENARIO} at {rate:g} req/s, {trials} trial(s)")
        run_dir, summary = run_experiment(config, SCENARIOS[SCENARIO], folder / f"rate-{rate:g}", trials,
                                          progress)
        per_trial = summary.get("per_trial") or [summary]
        results["rows"].append({**study_row(rate, per_trial), "run_dir": str(run_dir)})
        write_json(folder / JSON, results)  # kept as it grows
    results["findings"] = findings(results["rows"])
    write_json(folder / JSON, results)
    write_study_report(folder, results)
    return folder, results
