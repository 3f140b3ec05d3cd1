"""What the commands share: the usage error, the parser, the checks before a run, and the run.

A command checks everything it can before it touches the machine, in this order: its options
(`check_scenarios`, `check_trials`; numbers are `finite_float`), the config (`checked_config`:
its path, `load_config`, the CPU-limited servers' cgroups), the out folder
(`check_out_folder`), then the machine (`check_prerequisites`) and the run lock (`take_lock`).
Every problem found on the way is raised as `UsageError` (or `ConfigError`), and only
`experiments/__main__.py` prints it: one line, exit code 2. It also installs the stop signals'
handlers (`stop_signals_handled`) before any of this.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from experiments.testbed.cleanup import CGROUP_CONTROLLERS
from experiments.testbed.cleanup import CGROUP_ROOT as MACHINE_CGROUP_ROOT
from experiments.testbed.runlock import LOCK_NAME as RUN_LOCK_NAME
from services.runner import STOP_SIGNALS
from topology.config import MECHANISMS, PRESETS, ConfigError, TestbedConfig, load_config
from topology.fabric import TOPOLOGIES

LOCK_NAME = RUN_LOCK_NAME  # a module attribute, so that tests can point it elsewhere
CGROUP_ROOT = MACHINE_CGROUP_ROOT  # the same, for the cgroups a run must not take over
USAGE_ERROR = 2
INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C

# What a path given to a run may hold. The run folder's path goes into MariaDB's option files,
# where `#` starts a comment (with one, MariaDB made its data folder outside the run folder),
# quotes and backslashes are read and a newline ends the value; and into the commands the run
# prints for a person to paste into a shell, where a space, `$`, a backtick, `;`, `&`, `|`,
# `*`, `~` ... mean something. So: letters, digits and these, which neither reads.
PATH_PUNCTUATION = "._-+,@:/"

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


def finite_float(text: str) -> float:
    """A number option: argparse's `float` would take nan and inf, which no setting can use."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def add_load_options(parser: argparse.ArgumentParser, rate_help: str) -> None:
    """The options `run` and `demo` share: the config, the load, the replication, the results."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML config (default: built-in defaults, as in config/default.toml)")
    parser.add_argument("--rate", type=finite_float, help=rate_help)
    parser.add_argument("--post-ratio", type=finite_float, metavar="SHARE",
                        help="share of requests that are writes, 0 to 1 (default 0.3)")
    parser.add_argument("--replication", choices=["async", "semi-sync"],
                        help="how the databases replicate (default async, or the config's)")
    parser.add_argument("--mechanism", choices=list(MECHANISMS),
                        help="what moves the VIP: sdn (the controller, default), vrrp (keepalived) "
                        "or proxy (HAProxy)")
    parser.add_argument("--topology", choices=list(TOPOLOGIES),
                        help="the network: single (one switch, default), two-tier (an edge switch per "
                        "server, two cores) or leaf-spine (network.leaves and network.spines)")
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="vrrp and proxy: their settings as shipped (defaults) or tuned (default)")
    parser.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                        help="folder for the results (default: results/)")


def overrides_from(args: argparse.Namespace, duration: bool = True) -> dict[str, Any]:
    """The config keys the command line's options set (`duration`: it has --duration and --fault-at)."""
    pairs = {
        "load.rate": args.rate,
        "load.post_ratio": args.post_ratio,
        "database.replication": args.replication,
        "failover.mechanism": args.mechanism,
        "failover.preset": args.preset,
        "network.topology": getattr(args, "topology", None),
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


def check_mechanism(scenario: str, config: TestbedConfig) -> None:
    """A scenario that needs another mechanism (controller-restart needs a controller)."""
    from experiments.testbed.scenarios import SCENARIOS

    allowed = SCENARIOS[scenario].mechanisms
    if config.failover.mechanism not in allowed:
        raise UsageError(f"{scenario} applies to failover.mechanism {' or '.join(allowed)} only, not "
                         f"{config.failover.mechanism}: {SCENARIOS[scenario].summary}")
    topologies = SCENARIOS[scenario].topologies
    if config.network.topology not in topologies:
        raise UsageError(f"{scenario} applies to network.topology {' or '.join(topologies)} only (it cuts "
                         f"a cable between switches), not {config.network.topology}: add --topology two-tier")


def check_trials(trials: int) -> None:
    if not 1 <= trials <= 1000:
        raise UsageError("--trials must be between 1 and 1000")


def check_path_characters(path: Path, option: str) -> None:
    """Only letters, digits and PATH_PUNCTUATION in `path` as the run will use it (resolved:
    the current folder's part and a symlink's target reach the option files too)."""
    full = str(path.resolve())
    bad = sorted({ch for ch in full if not (ch.isalnum() or ch in PATH_PUNCTUATION)})
    if bad:
        where = "" if full == str(path) else f" {full!r}"
        raise UsageError(
            f"{option} {str(path)!r}: {' '.join(repr(ch) for ch in bad)} not allowed in the path{where}; "
            f"use letters, digits and {' '.join(PATH_PUNCTUATION)} (MariaDB's option files or shells "
            "read the others)"
        )


def check_cgroups(config: TestbedConfig, root: Path) -> None:
    """No CPU-limited server may be named like a cgroup the machine has (under `root`).

    Mininet's CPULimitedHost makes the cgroup /<name> (`cgcreate -g cpu,cpuacct,cpuset:/<name>`)
    and deletes it with everything under it (`cgdelete -r`) when the host stops: another
    program's cgroup of that name would be taken over, and then deleted.
    """
    for i, server in enumerate(config.servers):
        if server.cpu >= 1.0:
            continue  # a plain Mininet host: no cgroup
        places = [root / controller / server.name for controller in CGROUP_CONTROLLERS]
        if (root / "cgroup.controllers").exists():  # cgroup v2: one hierarchy for all controllers
            places.append(root / server.name)
        found = " ".join(str(place) for place in places if place.exists())
        if found:
            take_lock().close()  # an active run's own cgroup: then say that a run is active
            # rmdir is the safe advice: it removes an empty cgroup only, never one in use.
            raise ConfigError(
                f"servers[{i}].name",
                f"the cgroup {found} exists, and Mininet deletes the cgroup named like a server with "
                "cpu < 1 when the run ends; rename the server, or, if an earlier run left it, "
                f"`sdn-ha clean` or `sudo rmdir {found}` removes it",
            )


def check_out_folder(out: Path, option: str = "--out") -> None:
    """Create `out` and write in it now, not after the testbed took 20 s to start."""
    check_path_characters(out, option)
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


def checked_config(args: argparse.Namespace, overrides: dict[str, Any]) -> TestbedConfig:
    """The config of `--config` (or the defaults) with `overrides`, and the cgroups it would make."""
    if args.config is not None:
        check_path_characters(args.config, "--config")
    config = load_config(args.config, overrides)
    check_cgroups(config, CGROUP_ROOT)
    return config


def prepare(args: argparse.Namespace, overrides: dict[str, Any], scenarios: tuple[str, ...] = (),
            check: Callable[[TestbedConfig], None] | None = None) -> tuple[TestbedConfig, Any]:
    """Everything checked before a testbed starts: config (and that each of `scenarios` applies
    to its mechanism, and the command's own `check`, which raises UsageError), out folder,
    machine, lock."""
    config = checked_config(args, overrides)
    for scenario in scenarios:
        check_mechanism(scenario, config)
    if check is not None:
        check(config)
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


@contextmanager
def stop_signals_handled() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt in the block; the old handlers come back after.

    `main` enters it first, before the machine check, the lock or any testbed: from then on a
    stop signal at any moment unwinds through the `with Testbed` blocks, which clean up (and
    hold the signals while they do, see `Testbed.stop`). All three are set: a shell that starts
    a job in the background makes it ignore SIGINT, and Python then leaves SIGINT ignored.
    """
    previous = {sig: signal.signal(sig, _hang_up if sig == signal.SIGHUP else _interrupt)
                for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def run_with_testbed(work: Callable[[], Path], lock: Any, report: bool) -> int:
    """Run `work` (which starts testbeds) under the lock; a stop signal stops it cleanly.

    Returns the exit code: 0, 1 for a failed run, 130 when interrupted (what was recorded is kept).
    The stop signals raise KeyboardInterrupt by then (`stop_signals_handled`, set up by `main`).
    """
    from experiments.runs.failures import TrialFailed
    from services.runner import StartupError

    try:
        folder = work()
        print(f"results: {folder}")
        return 0 if not report or report_written(folder) else 1
    except KeyboardInterrupt:
        print("interrupted: everything the run started was stopped; results so far are kept", file=sys.stderr)
        return INTERRUPTED
    except StartupError as exc:
        print(f"error: the testbed did not start: {exc}", file=sys.stderr)
        return 1
    except TrialFailed as exc:  # a replication conflict, a prober that died, ...
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
              f"`sdn-ha report {run_dir}` writes it", file=sys.stderr)
        raise
