"""The failover benchmark's verdicts: each target checked against the figures measured."""

from __future__ import annotations

from typing import Any

import pytest

from experiments.analysis.bench import GAP_TARGETS, check_targets, paired_ratio
from experiments.results.bench_report import bench_table
from experiments.runs.bench import BENCH_SCENARIOS


def results(gaps: dict[str, dict[str, float | None]], ratio: float | None = 1.0) -> dict[str, Any]:
    scenarios = {
        name: {
            "failover_gap_ms": {"n": 20, "max": None, **gap},
            "detection_ms": {"median": 10.0},
            "availability_pct": {"median": 99.5},
            "requests_failed": {"median": 3},
        }
        for name, gap in gaps.items()
    }
    return {"rate": 500, "trials": 20, "scenarios": scenarios,
            "throughput": {"ratio": ratio, "wrk": "-t2", "through_vip_rps": 1, "direct_rps": 1}}


def verdicts(checks: list[dict[str, Any]]) -> dict[str, bool]:
    return {check["what"]: check["met"] for check in checks}


@pytest.mark.parametrize("gaps, ratio, expected", [
    # every scenario well inside its targets
    ({"primary-crash": {"median": 6, "p95": 12}, "db-crash": {"median": 15, "p95": 30}}, 1.0,
     {"primary-crash failover gap median": True, "primary-crash failover gap p95": True,
      "db-crash failover gap median": True, "db-crash failover gap p95": True,
      "db-crash requests failed per failover, median": True,
      "throughput through the VIP / straight to the primary": True}),
    # on the limit is met; just over it is not
    ({"db-crash": {"median": 20.0, "p95": 40.01}}, 0.95,
     {"db-crash failover gap median": True, "db-crash failover gap p95": False,
      "db-crash requests failed per failover, median": True,
      "throughput through the VIP / straight to the primary": True}),
    # no gap measured (no trial saw the VIP move) is a failure, not a pass
    ({"link-down": {"median": None, "p95": None}}, 0.9,
     {"link-down failover gap median": False, "link-down failover gap p95": False,
      "throughput through the VIP / straight to the primary": False}),
    # a scenario that was not run gets no verdict; a missing ratio fails
    ({}, None, {"throughput through the VIP / straight to the primary": False}),
])
def test_check_targets(gaps: dict, ratio: float | None, expected: dict[str, bool]) -> None:
    assert verdicts(check_targets(results(gaps, ratio))) == expected


def test_every_benchmarked_scenario_has_a_gap_target() -> None:
    assert {scenario for scenario, _, _ in GAP_TARGETS} == set(BENCH_SCENARIOS)


def test_the_table_says_no_for_a_missed_target() -> None:
    figures = results({"web-crash": {"median": 15, "p95": 19}})
    figures["targets"] = check_targets(figures)
    table = bench_table(figures)
    assert "| web-crash failover gap median | <= 8 ms | 15 | NO |" in table
    assert "| web-crash failover gap p95 | <= 20 ms | 19 | yes |" in table


@pytest.mark.parametrize(("baseline", "expected"), [
    ({"what": "5 run(s) of 60 s at 1000 req/s", "false_failovers": 0, "availability_pct": 99.9,
      "availability_target": None}, {"false failovers in 5 run(s) of 60 s at 1000 req/s": True}),
    ({"what": "1 run(s) of 600 s at 1000 req/s", "false_failovers": 1, "availability_pct": 99.995,
      "availability_target": 99.99},
     {"false failovers in 1 run(s) of 600 s at 1000 req/s": False,
      "availability over 1 run(s) of 600 s at 1000 req/s": True}),
])
def test_the_long_runs_without_a_fault_are_targets_too(baseline, expected):
    figures = {**results({}), "baselines": [baseline]}
    checks = verdicts(check_targets(figures))
    assert {k: v for k, v in checks.items() if "throughput" not in k} == expected


@pytest.mark.parametrize("through_vip, direct, expected", [
    ([100.0, 100.0, 100.0], [100.0, 100.0, 100.0], 1.0),
    # a slow spell covers round 1 and the direct half of round 2: the median of the paired
    # ratios stays 1.0, where the ratio of the two medians (100 / 60) would say 1.67
    ([60.0, 100.0, 100.0], [60.0, 60.0, 100.0], 1.0),
    ([90.0, 95.0, 100.0], [100.0, 100.0, 100.0], 0.95),
    ([], [], None),
    ([100.0], [0.0], None),
])
def test_the_throughput_ratio_is_the_median_of_each_rounds_ratio(through_vip, direct, expected):
    assert paired_ratio(through_vip, direct) == expected


def test_each_scenario_runs_with_what_it_needs(tmp_path, monkeypatch):
    """failback needs failback "auto": the bench gives it, as `run` does; the others run as set up."""
    from experiments.runs import bench
    from topology.config import TestbedConfig

    ran: dict[str, tuple[str, float]] = {}

    def run_experiment(config, scenario, folder, trials, progress):
        ran[scenario.name] = (config.failover.failback, config.failover.hold_down_s)
        return folder, {"per_trial": []}

    monkeypatch.setattr(bench, "run_experiment", run_experiment)
    monkeypatch.setattr(bench, "measure_throughput", lambda config, folder, count: {})
    monkeypatch.setattr(bench, "check_targets", lambda results: [])
    monkeypatch.setattr(bench, "bench_table", lambda results: "")
    bench.run_bench(TestbedConfig(), 1, 500, tmp_path, scenarios=("failback", "web-crash"),
                    progress=lambda s: None)
    assert ran == {"failback": ("auto", 1.0), "web-crash": ("never", 2.0)}
