"""The testbed's command line: `python -m experiments --help`.

    python -m experiments list                        the scenarios, one line each
    python -m experiments run primary-crash           one trial of the default experiment
    python -m experiments run web-crash --rate 500 --trials 5 --out results/
    python -m experiments report results/primary-crash-20261126-204730
    python -m experiments compare results/baseline-* results/primary-crash-*
    python -m experiments bench failover --trials 20 --rate 500
    python -m experiments demo                        the live demo a teacher drives (make demo)
    python -m experiments exec client curl -s http://10.0.0.100/    look around a running testbed

Bad input (an unknown scenario, a config value out of range) is a one-line error and exit
code 2, checked before anything starts. Ctrl-C or SIGTERM stops everything the run started
and keeps what was recorded so far.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.testbed.runlock import LOCK_NAME as RUN_LOCK_NAME
from topology.config import ConfigError, TestbedConfig, load_config

LOCK_NAME = RUN_LOCK_NAME  # a module attribute, so that tests can point it elsewhere
DEMO_DURATION_S = 3600.0  # the demo's load runs until `quit`, at most this long
USAGE_ERROR = 2


def usage_error(message: str) -> int:
    """Say what to change, on one line, and give the exit code of bad input."""
    print(message, file=sys.stderr)
    return USAGE_ERROR


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from experiments.testbed.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="SDN high-availability testbed: run failover experiments and record what users saw.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list the scenarios, one line each")

    run = commands.add_parser(
        "run",
        help="run a scenario and write results/<scenario>-<timestamp>/",
        description="Start the testbed, send open-loop load from the client to the virtual IP, "
        "inject the scenario's fault, and write requests.csv, events.csv and summary.json. "
        "Options given here override the config file.",
    )
    run.add_argument("scenario", help=f"one of: {', '.join(SCENARIOS)}; or the experiment "
                     "compare-replication (primary-crash, or --under's scenario, under both "
                     "replication modes)")
    run.add_argument("--under", metavar="SCENARIO",
                     help="compare-replication only: the scenario to run under both modes "
                     "(default primary-crash; partition-crash shows what async loses)")
    add_load_options(run, "requests per second, sent open-loop (default 200)")
    run.add_argument("--duration", type=float, metavar="SECONDS",
                     help="seconds of load (default 20); the fault then comes at half of it, "
                     "unless --fault-at says otherwise")
    run.add_argument("--fault-at", type=float, metavar="SECONDS",
                     help="seconds into the load when the fault is injected (default 10)")
    run.add_argument("--trials", type=int, default=1, help="how many times to repeat the trial (default 1)")

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
    bench.add_argument("--rate", type=float, help="requests per second (default 500; loadgen: 2000)")
    bench.add_argument("--scenarios", nargs="+", metavar="NAME", default=None,
                       help="only these scenarios (default: primary-crash web-crash link-down)")
    bench.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                       help="folder for the results (default: results/)")

    demo = commands.add_parser(
        "demo",
        help="the live demo: a screen that shows the failover as it happens, driven by typed commands",
        description="Starts the testbed with load and shows, several times a second, where the VIP "
        "is, each server's probes, requests per second, p95 latency, errors, replication lag and "
        "the last events. Type `help` for the commands (fail, hang, recover, failback, load, status, "
        "quit). `quit` or Ctrl-C writes the results and the report like any run.",
    )
    add_load_options(demo, "requests per second at the start; `load N` changes it (default 200)")
    demo.add_argument("--script", type=Path, metavar="FILE",
                      help="timed commands to play, one '<seconds> <command>' a line "
                      "(e.g. '20 fail primary')")
    exec_ = commands.add_parser(
        "exec",
        help="run a command inside a host of the running testbed (e.g. curl from the client)",
        description="Runs COMMAND in the network namespace of HOST (client, monitor, or a server) of "
        "the testbed that is running now. On a server, `mariadb` reaches that server's database.",
    )
    exec_.add_argument("host", metavar="HOST", help="client, monitor, primary, secondary, ...")
    exec_.add_argument("exec_command", nargs=argparse.REMAINDER, metavar="COMMAND",
                       help="the command and its arguments")
    exec_.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                       help="where the running testbed writes its results (default: results/)")
    report = commands.add_parser("report", help="(re)write report.md and its pictures for a run folder")
    report.add_argument("run_dir", type=Path, metavar="DIR", help="a results/<scenario>-<timestamp> folder")
    compare = commands.add_parser("compare", help="print and write a side-by-side table of runs")
    compare.add_argument("run_dirs", type=Path, nargs="+", metavar="DIR", help="run folders to compare")
    compare.add_argument("--out", type=Path, default=Path("results/compare.md"), metavar="FILE",
                         help="where to write the table as Markdown (and CSV beside it); "
                         "default results/compare.md")
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
    return parser


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


def check_prerequisites() -> None:
    """What a run needs from the machine; each missing piece says how to get it."""
    if os.geteuid() != 0:
        raise UsageError("the testbed needs root (Mininet, Open vSwitch): run it with sudo")
    for tool in ("mnexec", "ovs-vsctl", "mariadbd", "mariadb-install-db", "ethtool", "curl"):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} is not installed: run `make setup` first")
    probe = subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True)
    if probe.returncode != 0:
        raise UsageError("Open vSwitch is not running: run `make setup` (it starts it)")


def take_lock() -> Any:
    """Only one run at a time (see experiments/testbed/runlock.py)."""
    from experiments.testbed.runlock import RunLock, RunLockBusy

    try:
        return RunLock(LOCK_NAME)
    except RunLockBusy as exc:
        raise UsageError(str(exc)) from None


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


def report_or_compare(args: argparse.Namespace) -> int:
    from experiments.results.compare import compare, write_comparison
    from experiments.results.report import ReportError, write_report

    try:
        if args.command == "report":
            print(f"report: {write_report(args.run_dir)}")
        else:
            print(compare(args.run_dirs))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_comparison(args.run_dirs, args.out)
            print(f"written: {args.out} and {args.out.with_suffix('.csv')}")
    except ReportError as exc:
        return usage_error(f"error: {exc}")
    except OSError as exc:
        return usage_error(f"error: {exc.filename}: {exc.strerror}")
    return 0


def clean_command(args: argparse.Namespace) -> int:
    """`clean`, under the run lock: nothing may be removed while a run is creating things."""
    from experiments.testbed.cleanup import clean

    try:
        lock = take_lock()
    except UsageError as exc:
        return usage_error(f"error: cannot clean now: {exc}")
    problems: list[str] = []  # clean() prints each on stderr as it happens
    try:
        removed = clean(args.results, dry_run=args.dry_run, problems=problems)
    finally:
        lock.close()
    print("\n".join(removed) if removed else "nothing to clean")
    return 1 if problems else 0


def list_command(args: argparse.Namespace) -> int:
    from experiments.runs import compare_replication
    from experiments.testbed.scenarios import SCENARIOS

    width = max(len(name) for name in [*SCENARIOS, compare_replication.NAME])
    for name, scenario in SCENARIOS.items():
        print(f"{name:<{width}}  {scenario.summary}")
    print(f"{compare_replication.NAME:<{width}}  (an experiment) {compare_replication.SUMMARY}")
    return 0


def check_scenarios(names: list[str]) -> None:
    from experiments.runs import compare_replication
    from experiments.testbed.scenarios import SCENARIOS

    for name in names:
        if name not in SCENARIOS:
            raise UsageError(f"unknown scenario {name!r}; choose one of: "
                             f"{', '.join(SCENARIOS)}, {compare_replication.NAME}")


def check_out_folder(out: Path, option: str = "--out") -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{option} {out}: cannot write there ({exc.strerror})") from None


def prepare(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[TestbedConfig, Any]:
    """Everything checked before a testbed starts: config, out folder, machine, lock."""
    config = load_config(args.config, overrides)
    check_out_folder(args.out)
    check_prerequisites()
    return config, take_lock()


def run_command(args: argparse.Namespace) -> int:
    from experiments.runs import compare_replication
    from experiments.testbed.scenarios import SCENARIOS

    comparing = args.scenario == compare_replication.NAME
    scenario = (args.under or compare_replication.DEFAULT_SCENARIO) if comparing else args.scenario
    try:
        if args.under is not None and not comparing:
            raise UsageError(f"--under applies only to {compare_replication.NAME}; "
                             f"to run {args.under} alone: run {args.under}")
        check_scenarios([scenario])
        check_trials(args.trials)
        # What the scenario needs (a failback policy, say), unless the command line says otherwise.
        needs = SCENARIOS[scenario].overrides
        config, lock = prepare(args, {**needs, **overrides_from(args)})
    except ConfigError as exc:
        return usage_error(f"error: config {exc}")
    except UsageError as exc:
        return usage_error(f"error: {exc}")

    from experiments.results.tables import summary_table
    from experiments.runs.trial import run_experiment

    def work() -> Path:
        if comparing:
            folder, results = compare_replication.run_compare_replication(
                config, args.trials, args.out, scenario
            )
            print(compare_replication.comparison_table(results))
            return folder
        run_dir, summary = run_experiment(config, SCENARIOS[args.scenario], args.out, args.trials)
        print(summary_table(summary))
        return run_dir

    return run_with_testbed(work, lock, report=not comparing)


def bench_command(args: argparse.Namespace) -> int:
    from experiments.runs.bench import (
        BENCH_SCENARIOS,
        bench_table,
        loadgen_table,
        run_bench,
        run_loadgen_bench,
    )

    try:
        check_scenarios(args.scenarios or [])
        check_trials(args.trials)
        args.rate = args.rate or (2000.0 if args.what == "loadgen" else 500.0)
        config, lock = prepare(args, {"load.rate": args.rate})
    except ConfigError as exc:
        return usage_error(f"error: config {exc}")
    except UsageError as exc:
        return usage_error(f"error: {exc}")

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


def demo_command(args: argparse.Namespace) -> int:
    from experiments.runs.demo import CommandError, demo_drive, parse_script, terminal_problem

    try:
        problem = terminal_problem()
        if problem:
            raise UsageError(problem)
        overrides = {**overrides_from(args, duration=False), "load.duration_s": DEMO_DURATION_S}
        config = load_config(args.config, overrides)
        script = None
        if args.script is not None:
            try:
                text = args.script.read_text()
            except OSError as exc:
                raise UsageError(f"--script {args.script}: {exc.strerror}") from None
            script = parse_script(text, [s.name for s in config.servers], str(args.script))
        check_out_folder(args.out)
        check_prerequisites()
        lock = take_lock()
    except ConfigError as exc:
        return usage_error(f"error: config {exc}")
    except (UsageError, CommandError) as exc:
        return usage_error(f"error: {exc}")

    from experiments.results.tables import summary_table
    from experiments.runs.trial import new_run_dir, run_trial
    from experiments.testbed.scenarios import Scenario

    def work() -> Path:
        run_dir = new_run_dir(args.out, "demo")
        print(f"starting the testbed in {run_dir} (about 20 s) ...", flush=True)
        scenario = Scenario("demo", None, expect_failover=False)
        summary = run_trial(config, scenario, run_dir, demo_drive(script))
        print(summary_table(summary))
        return run_dir

    return run_with_testbed(work, lock, report=True)


def exec_command(args: argparse.Namespace) -> int:
    from experiments.testbed.hostexec import ExecError, exec_in_host

    command = args.exec_command[1:] if args.exec_command[:1] == ["--"] else args.exec_command
    try:
        exec_in_host(args.results, args.host, command)  # returns only on an error
    except ExecError as exc:
        return usage_error(f"error: {exc}")
    return 1


def check_trials(trials: int) -> None:
    if not 1 <= trials <= 1000:
        raise UsageError("--trials must be between 1 and 1000")


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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": list_command,
    "run": run_command,
    "bench": bench_command,
    "report": report_or_compare,
    "compare": report_or_compare,
    "clean": clean_command,
    "demo": demo_command,
    "exec": exec_command,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


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


if __name__ == "__main__":
    sys.exit(main())
