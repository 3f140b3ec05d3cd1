"""What the commands share: the usage error, the parser, the checks before a run, and the run.

A command checks everything it can before it touches the machine, in this order: its options
(`check_scenarios`, `check_trials`), the config (`load_config`), the out folder
(`check_out_folder`), then the machine (`check_prerequisites`) and the run lock (`take_lock`).
Every problem found on the way is raised as `UsageError` (or `ConfigError`), and only
`experiments/__main__.py` prints it: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from experiments.testbed.runlock import LOCK_NAME as RUN_LOCK_NAME
from topology.config import TestbedConfig, load_config

LOCK_NAME = RUN_LOCK_NAME  # a module attribute, so that tests can point it elsewhere
USAGE_ERROR = 2

# What `add_subparsers` returns: each command group adds its commands to it.
Commands = argparse._SubParsersAction


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a `UsageError`, not a usage block and exit.

    So a wrong option is reported like every other bad input: one line, saying which command
    was given what, and where its options are listed. `--help` still prints and exits 0.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}; see `{self.prog} --help`")


def add_load_options(parser: argparse.ArgumentParser, rate_help: str) -> None:
    """The options `run` and `demo` share: the config, the load, the replication, the results."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML config (default: built-in defaults, as in config/default.toml)")
    parser.add_argument("--rate", type=float, help=rate_help)
    parser.add_argument("--post-ratio", type=float, metavar="SHARE",
                        help="share of requests that are writes, 0 to 1 (default 0.3)")
    parser.add_argument("--replication", choices=["async", "semi-sync"],
                        help="how the databases replicate (default async, or the config's)")
    parser.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                        help="folder for the results (default: results/)")


def overrides_from(args: argparse.Namespace, duration: bool = True) -> dict[str, Any]:
    """The config keys the command line's options set (`duration`: it has --duration and --fault-at)."""
    pairs = {
        "load.rate": args.rate,
        "load.post_ratio": args.post_ratio,
        "database.replication": args.replication,
    }
    if duration:
        fault_at = args.fault_at
        if fault_at is None and args.duration is not None:
            fault_at = args.duration / 2
        pairs |= {"load.duration_s": args.duration, "load.fault_at_s": fault_at}
    return {key: value for key, value in pairs.items() if value is not None}


def check_scenarios(names: list[str]) -> None:
    from experiments.runs import compare_replication
    from experiments.testbed.scenarios import SCENARIOS

    for name in names:
        if name not in SCENARIOS:
            raise UsageError(f"unknown scenario {name!r}; choose one of: "
                             f"{', '.join(SCENARIOS)}, {compare_replication.NAME}")


def check_trials(trials: int) -> None:
    if not 1 <= trials <= 1000:
        raise UsageError("--trials must be between 1 and 1000")


def check_out_folder(out: Path, option: str = "--out") -> None:
    """Create `out` and write in it now, not after the testbed took 20 s to start."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{option} {out}: cannot write there ({exc.strerror})") from None


def check_prerequisites() -> None:
    """What a run needs from the machine; each missing piece says how to get it."""
    from experiments.testbed.prerequisites import machine_problem

    problem = machine_problem()
    if problem:
        raise UsageError(problem)


def take_lock() -> Any:
    """Only one run at a time (see experiments/testbed/runlock.py)."""
    from experiments.testbed.runlock import RunLock, RunLockBusy

    try:
        return RunLock(LOCK_NAME)
    except RunLockBusy as exc:
        raise UsageError(str(exc)) from None


def prepare(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[TestbedConfig, Any]:
    """Everything checked before a testbed starts: config, out folder, machine, lock."""
    config = load_config(args.config, overrides)
    check_out_folder(args.out)
    check_prerequisites()
    return config, take_lock()


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM takes the same path as Ctrl-C: the `with Testbed` blocks clean up on the way out.
    raise KeyboardInterrupt


def _hang_up(signum: int, frame: object) -> None:
    # The terminal is gone (window closed, ssh dropped): by default SIGHUP would kill the run on
    # the spot and leave the whole testbed running. Stop it like Ctrl-C instead; what would be
    # printed has nowhere to go, and writing to the dead terminal would fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    raise KeyboardInterrupt


def run_with_testbed(work: Callable[[], Path], lock: Any, report: bool) -> int:
    """Run `work` (which starts testbeds) under the lock, stopping cleanly on Ctrl-C or SIGTERM.

    Returns the exit code: 0, 1 for a failed run, 130 when interrupted (what was recorded is kept).
    """
    from experiments.runs.consistency import ReplicationConflict
    from services.runner import StartupError

    # Both set here: a shell that starts a job in the background makes it ignore SIGINT, and
    # Python then leaves SIGINT ignored; a run must stop cleanly on either signal regardless.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _hang_up)
    try:
        folder = work()
        print(f"results: {folder}")
        return 0 if not report or report_written(folder) else 1
    except KeyboardInterrupt:
        print("interrupted: everything the run started was stopped; results so far are kept", file=sys.stderr)
        return 130
    except StartupError as exc:
        print(f"error: the testbed did not start: {exc}", file=sys.stderr)
        return 1
    except ReplicationConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.close()


def report_written(run_dir: Path) -> bool:
    """Write report.md and its pictures; a failure here never touches the recorded results."""
    try:
        # Imported here, inside the try: matplotlib takes a second to import, and an interrupt
        # then is an interrupt while writing the report too.
        from experiments.results.report import ReportError, write_report

        try:
            print(f"report: {write_report(run_dir)}")
            return True
        except ReportError as exc:
            print(f"error: no report ({exc}); the results are kept in {run_dir}", file=sys.stderr)
            return False
    except KeyboardInterrupt:
        print(f"interrupted while writing the report; the results are kept in {run_dir}: "
              f"`python -m experiments report {run_dir}` writes it", file=sys.stderr)
        raise
