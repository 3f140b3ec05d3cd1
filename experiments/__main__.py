"""The testbed's command line: `python -m experiments --help`.

    python -m experiments list                        the scenarios, one line each
    python -m experiments run primary-crash           one trial of the default experiment
    python -m experiments run web-crash --rate 500 --trials 5 --out results/
    python -m experiments report results/primary-crash-20261126-204730
    python -m experiments compare results/baseline-* results/primary-crash-*
    python -m experiments bench failover --trials 20 --rate 500
    python -m experiments chaos --seed 7 --duration 120   random faults, invariants checked
    python -m experiments demo                        the live demo a teacher drives (make demo)
    python -m experiments exec client curl -s http://10.0.0.100/    look around a running testbed
    python -m experiments controller                  the controller alone, for `mn --custom`
    python -m experiments topology --topology two-tier  each switch's ports; --picture draws it
    python -m experiments machines check --config lab.toml   the other machines servers run on

Each command lives in experiments/cli/, its options beside its body. Bad input (an unknown
option or scenario, a config value out of range) is a one-line error and exit code 2, checked
before anything starts; `main` is the one place that prints it. Ctrl-C, SIGTERM or SIGHUP, at
any moment after `main` begins, stops everything the run started (exit code 130) and keeps
what was recorded so far.
"""

from __future__ import annotations

import argparse
import sys

from experiments.cli import bench, chaos, clean, controller, demo, machines, results, run, topology
from experiments.cli import exec as exec_
from experiments.cli.common import INTERRUPTED, USAGE_ERROR, Parser, UsageError, stop_signals_handled
from topology.config import ConfigError

# In the order `--help` lists them.
GROUPS = (run, bench, chaos, demo, exec_, controller, topology, machines, results, clean)


def build_parsers() -> tuple[Parser, dict[str, Parser]]:
    """The top parser, and each command's own parser by name."""
    parser = Parser(
        prog="sdn-ha",
        description="SDN high-availability testbed: run failover experiments and record what users saw.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser, commands.choices


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options; a wrong one raises UsageError."""
    parser, commands = build_parsers()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Said by the command's parser, so the message points at that command's --help.
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one command; every usage or config error becomes one line on stderr and exit code 2."""
    # The stop signals' handlers first, before the checks (the machine check runs commands),
    # the lock or a testbed: a signal then is a clean stop, never a traceback or a dead run.
    with stop_signals_handled():
        try:
            args = parse(argv)
            return args.handler(args)
        except ConfigError as exc:
            print(f"error: config {exc}", file=sys.stderr)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
        except KeyboardInterrupt:  # not inside a run (run_with_testbed says so itself)
            print("interrupted: nothing is left running", file=sys.stderr)
            return INTERRUPTED
    return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
