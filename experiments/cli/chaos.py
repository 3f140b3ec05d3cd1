"""`chaos`: the nemesis, random faults under load with the invariants checked all along."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli.common import (
    Commands,
    UsageError,
    add_load_options,
    finite_float,
    overrides_from,
    prepare,
    run_with_testbed,
)

LONGEST_S = 24 * 3600.0


def add_commands(commands: Commands) -> None:
    chaos = commands.add_parser(
        "chaos",
        help="the nemesis: random faults from the catalogue under load, invariants checked; exit 1 on a "
        "violation",
        description="One testbed, one load for --duration seconds, and faults drawn from --seed (the same "
        "seed, the same faults): server, web and database crashes, hangs and link flaps of the active "
        "server or a standby, replication cuts, controller restarts, the prober killed. Each is held, "
        "recovered and waited for. Checked all along: never two writable databases; the VIP on a server "
        "that is up within each fault's detection bound; the controller's probe ages bounded; no "
        "acknowledged write lost. Writes results/chaos-<timestamp>/ with chaos.md.",
    )
    add_load_options(chaos, "requests per second (default 200)")
    chaos.add_argument("--seed", type=int, default=1, help="the draw of faults (default 1)")
    chaos.add_argument("--duration", type=finite_float, default=120.0, metavar="SECONDS",
                       help="seconds of load, faults included (default 120; at least 30)")
    chaos.set_defaults(handler=chaos_command)


def chaos_command(args: argparse.Namespace) -> int:
    if not 30 <= args.duration <= LONGEST_S:
        raise UsageError(f"--duration must be between 30 and {LONGEST_S:g} seconds, got {args.duration:g}")
    config, lock = prepare(args, overrides_from(args, duration=False))
    if config.failover.mechanism != "sdn":
        lock.close()
        raise UsageError("the nemesis checks the controller's own view: failover.mechanism must be sdn, "
                         f"not {config.failover.mechanism}")

    from experiments.runs.chaos import run_chaos

    def work() -> Path:
        folder, summary = run_chaos(config, args.seed, args.duration, args.out)
        print(f"chaos: {summary['faults_injected']} faults, {summary['invariants_checked']} checks, "
              f"no violation; report: {folder / 'chaos.md'}")
        return folder

    return run_with_testbed(work, lock, report=False)
