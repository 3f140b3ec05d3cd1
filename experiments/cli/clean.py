"""`clean`: remove exactly what killed runs recorded in their state.json, under the run lock."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli.common import Commands, UsageError, take_lock


def add_commands(commands: Commands) -> None:
    clean = commands.add_parser(
        "clean",
        help="remove what killed runs left (processes, bridge, interfaces, cgroups, temp folders)",
        description="Reads every state.json under the results folder whose run is no longer active "
        "and removes exactly what it lists: the processes (only if still the very ones recorded), "
        "the bridge, the interfaces, the cgroups and the run's hatb-* temporary folders. "
        "Never matches anything by name. Waits for no run: if one is active, exits with code 2.",
    )
    clean.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                       help="folder to search for state.json files (default: results/)")
    clean.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    clean.set_defaults(handler=clean_command)


def clean_command(args: argparse.Namespace) -> int:
    """`clean`, under the run lock: nothing may be removed while a run is creating things."""
    from experiments.testbed.cleanup import clean

    try:
        lock = take_lock()
    except UsageError as exc:
        raise UsageError(f"cannot clean now: {exc}") from None
    problems: list[str] = []  # clean() prints each on stderr as it happens
    try:
        removed = clean(args.results, dry_run=args.dry_run, problems=problems)
    finally:
        lock.close()
    print("\n".join(removed) if removed else "nothing to clean")
    return 1 if problems else 0
