"""`list` (the scenarios) and `run` (a scenario, or the compare-replication experiment)."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli.common import (
    Commands,
    UsageError,
    add_load_options,
    check_scenarios,
    check_trials,
    finite_float,
    overrides_from,
    prepare,
    run_with_testbed,
)
from topology.config import ConfigError, TestbedConfig


def add_commands(commands: Commands) -> None:
    from experiments.testbed.scenarios import SCENARIOS

    listing = commands.add_parser("list", help="list the scenarios, one line each")
    listing.set_defaults(handler=list_command)

    run = commands.add_parser(
        "run",
        help="run a scenario and write results/<scenario>-<timestamp>/",
        description="Start the testbed, send open-loop load from the client to the virtual IP, "
        "inject the scenario's fault, and write requests.csv, events.csv and summary.json. "
        "Options given here override the config file.",
    )
    run.add_argument("scenario", help=f"one of: {', '.join(SCENARIOS)}; or the experiments "
                     "compare-replication (primary-crash, or --under's scenario, under both "
                     "replication modes) and study (the published study: primary-crash over a "
                     "sweep of load rates, with config/study.toml unless --config)")
    run.add_argument("--under", metavar="SCENARIO",
                     help="compare-replication only: the scenario to run under both modes "
                     "(default primary-crash; partition-crash shows what async loses)")
    add_load_options(run, "requests per second, sent open-loop (default 200)")
    run.add_argument("--duration", type=finite_float, metavar="SECONDS",
                     help="seconds of load (default 20); the fault then comes at half of it, "
                     "unless --fault-at says otherwise")
    run.add_argument("--fault-at", type=finite_float, metavar="SECONDS",
                     help="seconds into the load when the fault is injected (default 10)")
    run.add_argument("--trials", type=int, default=1, help="how many times to repeat the trial (default 1)")
    run.add_argument("--rates", type=finite_float, nargs="+", metavar="RATE",
                     help="study only: the load rates of the sweep (default 100 200 300 450 600 800)")
    run.set_defaults(handler=run_command)


def list_command(args: argparse.Namespace) -> int:
    from experiments.runs import compare_replication, study
    from experiments.testbed.scenarios import SCENARIOS

    width = max(len(name) for name in [*SCENARIOS, compare_replication.NAME, study.NAME])
    for name, scenario in SCENARIOS.items():
        print(f"{name:<{width}}  {scenario.summary}")
    print(f"{compare_replication.NAME:<{width}}  (an experiment) {compare_replication.SUMMARY}")
    print(f"{study.NAME:<{width}}  (an experiment) {study.SUMMARY}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    from experiments.runs import compare_replication, study
    from experiments.testbed.scenarios import SCENARIOS

    if args.scenario == study.NAME:
        return study_command(args)
    if args.rates is not None:
        raise UsageError(f"--rates applies only to {study.NAME}")
    comparing = args.scenario == compare_replication.NAME
    scenario = (args.under or compare_replication.DEFAULT_SCENARIO) if comparing else args.scenario
    if args.under is not None and not comparing:
        raise UsageError(f"--under applies only to {compare_replication.NAME}; "
                         f"to run {args.under} alone: run {args.under}")
    check_scenarios([scenario])
    check_trials(args.trials)
    # What the scenario needs (a failback policy, say), unless the command line says otherwise.
    needs = SCENARIOS[scenario].overrides
    config, lock = prepare(args, {**needs, **overrides_from(args)}, scenarios=(scenario,))

    from experiments.results.replication_report import comparison_table
    from experiments.results.tables import summary_table
    from experiments.runs.trial import run_experiment

    def work() -> Path:
        if comparing:
            folder, results = compare_replication.run_compare_replication(
                config, args.trials, args.out, scenario
            )
            print(comparison_table(results))
            return folder
        run_dir, summary = run_experiment(config, SCENARIOS[args.scenario], args.out, args.trials,
                                          phases=True)
        print(summary_table(summary))
        return run_dir

    return run_with_testbed(work, lock, report=not comparing)


def study_command(args: argparse.Namespace) -> int:
    """`run study`: primary-crash over a sweep of load rates, with config/study.toml by default."""
    from experiments.runs import study

    for option, value in (("--rate", args.rate), ("--duration", args.duration), ("--fault-at", args.fault_at),
                          ("--under", args.under)):
        if value is not None:
            raise UsageError(f"{option} does not apply to {study.NAME}: it sweeps --rates, "
                             f"{study.DURATION_S:g} s of load each, the fault at {study.FAULT_AT_S:g} s")
    check_trials(args.trials)
    args.config = args.config or study.CONFIG
    rates = tuple(args.rates or study.DEFAULT_RATES)

    def check_study(config: TestbedConfig) -> None:
        if config.failover.mechanism != "sdn" or len(config.servers) != 2:
            raise UsageError(f"{study.NAME} reproduces a study of two servers and the controller: "
                             "give a config with two servers and failover.mechanism sdn")
        try:
            study.sweep(config, rates)
        except ConfigError as exc:
            raise UsageError(f"--rates: {exc}") from None

    config, lock = prepare(args, overrides_from(args, duration=False), (study.SCENARIO,), check_study)
    configs = study.sweep(config, rates)

    from experiments.results.study_report import study_table

    def work() -> Path:
        folder, results = study.run_study(configs, args.trials, args.out)
        print(study_table(results))
        return folder

    return run_with_testbed(work, lock, report=False)
