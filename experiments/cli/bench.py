"""`bench`: the failover benchmark against the controller's targets, and the load generator's."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli.common import (
    Commands,
    check_scenarios,
    check_trials,
    finite_float,
    prepare,
    run_with_testbed,
)


def add_commands(commands: Commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="the failover benchmark: many trials per scenario, gap median/p95 against targets",
        description="Runs primary-crash, web-crash and link-down --trials times each (6 s of load, "
        "fault at 3 s), then measures wrk throughput through the VIP and straight to the primary, "
        "and checks the figures against the controller's targets.",
    )
    bench.add_argument("what", choices=["failover", "loadgen"],
                       help="failover: the controller's targets; loadgen: is the load generator the "
                       "bottleneck (open loop at --rate, default 2000 for it, then wrk)")
    bench.add_argument("--config", type=Path, metavar="FILE", help="TOML config (default: built-in defaults)")
    bench.add_argument("--trials", type=int, default=20, help="trials per scenario (default 20)")
    bench.add_argument("--rate", type=finite_float, help="requests per second (default 500; loadgen: 2000)")
    bench.add_argument("--scenarios", nargs="+", metavar="NAME", default=None,
                       help="only these scenarios (default: primary-crash web-crash link-down)")
    bench.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                       help="folder for the results (default: results/)")
    bench.set_defaults(handler=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    from experiments.results.bench_report import bench_table, loadgen_table
    from experiments.runs.bench import BENCH_SCENARIOS, run_bench, run_loadgen_bench

    check_scenarios(args.scenarios or [])
    check_trials(args.trials)
    if args.rate is None:  # not `or`: --rate 0 is refused by the config check, not replaced
        args.rate = 2000.0 if args.what == "loadgen" else 500.0
    config, lock = prepare(args, {"load.rate": args.rate})

    def work() -> Path:
        if args.what == "loadgen":
            folder, results = run_loadgen_bench(config, args.rate, args.out)
            print(loadgen_table(results))
        else:
            folder, results = run_bench(config, args.trials, args.rate, args.out,
                                        tuple(args.scenarios or BENCH_SCENARIOS))
            print(bench_table(results))
        return folder

    return run_with_testbed(work, lock, report=False)
