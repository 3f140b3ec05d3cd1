"""`bench`: the failover benchmark against the controller's targets, and the load generator's."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from experiments.analysis.bench import BASELINE_RATE
from experiments.analysis.scale import DEFAULT_SIZES, Size, SizeError, parse_size, size_config
from experiments.cli.common import (
    Commands,
    UsageError,
    check_scenarios,
    check_trials,
    finite_float,
    prepare,
    run_with_testbed,
)
from topology.config import ConfigError, TestbedConfig

DEFAULT_SIZE_LABELS = tuple(size.label for size in DEFAULT_SIZES)


def add_commands(commands: Commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="the failover benchmark: many trials per scenario, gap median/p95 against targets",
        description="Runs primary-crash, web-crash and link-down --trials times each (6 s of load, "
        "fault at 3 s), then measures wrk throughput through the VIP and straight to the primary, "
        "and checks the figures against the controller's targets.",
    )
    bench.add_argument("what", choices=["failover", "loadgen", "mechanisms", "presets", "fabric", "scale"],
                       help="failover: the controller's targets; loadgen: is the load generator the "
                       "bottleneck (open loop at --rate, default 2000 for it, then wrk); mechanisms: "
                       "the same faults under the controller, keepalived and HAProxy (8 s trials, 20 s "
                       "as shipped); presets: "
                       "the search for the tuned presets (60 s without a fault per candidate); fabric: "
                       "a cable between switches cut (two-tier), with the switches' fast-failover "
                       "groups and with the controller's reroute alone; scale: set-up time, flows per "
                       "switch, controller memory and primary-crash's gap from 2 to 8 servers, 1 to 64 "
                       "clients, one switch to a 4 x 2 leaf-spine")
    bench.add_argument("--config", type=Path, metavar="FILE", help="TOML config (default: built-in defaults)")
    bench.add_argument("--trials", type=int, default=None,
                       help="trials per scenario (default 20; scale: 5 per size)")
    bench.add_argument("--rate", type=finite_float, help="requests per second (default 500; loadgen: 2000)")
    bench.add_argument("--scenarios", nargs="+", metavar="NAME", default=None,
                       help="only these scenarios (default: primary-crash web-crash db-crash link-down "
                       "primary-hang; "
                       "mechanisms: those and primary-hang flap controller-restart)")
    bench.add_argument("--baselines", nargs="?", type=finite_float, const=BASELINE_RATE, default=None,
                       metavar="RATE",
                       help="failover only: also five runs of 60 s and one of 10 minutes without a fault at "
                       "RATE req/s (default 1000; about 16 minutes): no false failover, and the long "
                       "one's availability")
    bench.add_argument("--wrk-rounds", type=int, default=None, metavar="N",
                       help="failover only: rounds of wrk through the VIP and straight to the primary, "
                       "4 s each way (default 5; fewer for a quick look, the ratio then noisier)")
    bench.add_argument("--mechanisms", nargs="+", metavar="CELL", default=None,
                       help="mechanisms only: the cells to run, each sdn or MECHANISM:PRESET "
                       "(default: sdn vrrp:defaults vrrp:tuned proxy:defaults proxy:tuned)")
    bench.add_argument("--resume", type=Path, metavar="FOLDER", default=None,
                       help="mechanisms only: go on with the bench that stopped in FOLDER (its rate and "
                       "trials), running the runs it lacks; a run it finished before it stopped is "
                       "taken from its folder (to run one again, move that run's folder away)")
    bench.add_argument("--sizes", nargs="+", metavar="SIZE", default=None,
                       help="scale only: the sizes, each TOPOLOGY/SERVERS/CLIENTS with the topology single, "
                       "two-tier or leaf-spine-LxS (default: " + " ".join(DEFAULT_SIZE_LABELS) + ")")
    bench.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                       help="folder for the results (default: results/)")
    bench.set_defaults(handler=bench_command)


# The options that belong to one kind of bench: (option, its attribute, the bench).
ONLY_FOR = (("--mechanisms", "mechanisms", "mechanisms"), ("--resume", "resume", "mechanisms"),
            ("--sizes", "sizes", "scale"), ("--baselines", "baselines", "failover"),
            ("--wrk-rounds", "wrk_rounds", "failover"))


def bench_command(args: argparse.Namespace) -> int:
    check_options(args)
    sizes = scale_sizes(args.sizes) if args.what == "scale" else ()
    cells = mechanism_cells(args.mechanisms) if args.what == "mechanisms" else ()
    config, lock = prepare(args, {"load.rate": args.rate},
                           check=check_sizes(sizes, args.rate) if args.what == "scale" else None)
    return run_with_testbed(lambda: run_bench_of(args, config, sizes, cells), lock, report=False)


def check_options(args: argparse.Namespace) -> None:
    """The options' defaults for this bench, and every check that needs no config."""
    check_scenarios(args.scenarios or [])
    if args.trials is None:
        args.trials = 5 if args.what == "scale" else 20
    check_trials(args.trials)
    if args.rate is None:  # not `or`: --rate 0 is refused by the config check, not replaced
        args.rate = 2000.0 if args.what == "loadgen" else 500.0
    for option, attribute, what in ONLY_FOR:
        if getattr(args, attribute) not in (None, False) and args.what != what:
            raise UsageError(f"{option} applies to `bench {what}` only")
    if args.baselines is not None and not 1 <= args.baselines <= 5000:
        raise UsageError("--baselines: the rate must be between 1 and 5000 requests per second")
    if args.wrk_rounds is not None and not 1 <= args.wrk_rounds <= 20:
        raise UsageError("--wrk-rounds: give a number of rounds from 1 to 20")
    if args.resume is not None:
        from experiments.runs.mechanisms_bench import ResumeError, resumed_results

        try:  # checked before the testbed starts, not after an hour
            resumed_results(args.resume, ())
        except ResumeError as exc:
            raise UsageError(str(exc)) from None


def run_bench_of(args: argparse.Namespace, config: TestbedConfig, sizes: tuple[Size, ...],
                 cells: tuple[tuple[str, str], ...]) -> Path:
    """Run the bench `args.what`, print its table; returns its folder."""
    if args.what == "scale":
        from experiments.results.scale_report import scale_table
        from experiments.runs.scale_bench import run_scale_bench

        folder, results = run_scale_bench(config, args.trials, args.rate, args.out, sizes)
        print(scale_table(results))
    elif args.what == "fabric":
        from experiments.runs.fabric_bench import fabric_table, run_fabric_bench

        folder, results = run_fabric_bench(config, args.trials, args.rate, args.out)
        print(fabric_table(results))
    elif args.what == "presets":
        from experiments.runs.preset_search import run_preset_search, search_table

        folder, results = run_preset_search(config, args.rate, args.out)
        print(search_table(results))
    elif args.what == "mechanisms":
        from experiments.results.mechanisms_report import mechanisms_table
        from experiments.runs.mechanisms_bench import SCENARIO_NAMES, run_mechanisms_bench

        folder, results = run_mechanisms_bench(config, args.trials, args.rate, args.out,
                                               tuple(args.scenarios or SCENARIO_NAMES), cells,
                                               resume=args.resume)
        print(mechanisms_table(results))
    elif args.what == "loadgen":
        from experiments.results.bench_report import loadgen_table
        from experiments.runs.bench import run_loadgen_bench

        folder, results = run_loadgen_bench(config, args.rate, args.out)
        print(loadgen_table(results))
    else:
        from experiments.results.bench_report import bench_table
        from experiments.runs.bench import BENCH_SCENARIOS, WRK_ROUNDS, run_bench

        folder, results = run_bench(config, args.trials, args.rate, args.out,
                                    tuple(args.scenarios or BENCH_SCENARIOS), baselines_rate=args.baselines,
                                    wrk_rounds=args.wrk_rounds or WRK_ROUNDS)
        print(bench_table(results))
    return folder


def scale_sizes(given: list[str] | None) -> tuple[Size, ...]:
    """The sizes of `--sizes`, or the defaults; a bad one is a usage error saying how to write it."""
    if given is None:
        return DEFAULT_SIZES
    try:
        return tuple(parse_size(text) for text in given)
    except SizeError as exc:
        raise UsageError(str(exc)) from None


def check_sizes(sizes: tuple[Size, ...], rate: float) -> Callable[[TestbedConfig], None]:
    """The config check of `bench scale`: every size's config holds (before any testbed starts)."""
    def check(config: TestbedConfig) -> None:
        for size in sizes:
            try:
                size_config(config, size, rate)
            except ConfigError as exc:
                raise UsageError(f"size {size.label}: {exc}") from None
    return check


def mechanism_cells(given: list[str] | None) -> tuple[tuple[str, str], ...]:
    """`sdn`, `vrrp:tuned`, ... as (mechanism, preset) pairs; a bad one is a usage error."""
    from experiments.runs.mechanisms_bench import CELLS
    from topology.config import MECHANISMS, PRESETS

    if given is None:
        return CELLS
    cells = []
    for text in given:
        mechanism, _, preset = text.partition(":")
        preset = preset or "tuned"
        if mechanism not in MECHANISMS or preset not in PRESETS or (mechanism == "sdn" and ":" in text):
            raise UsageError(f"--mechanisms {text!r}: give sdn, or vrrp or proxy with :defaults or :tuned "
                             "(e.g. vrrp:tuned)")
        cells.append((mechanism, preset))
    return tuple(cells)
