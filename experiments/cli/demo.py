"""`demo`: the live demo a teacher drives, a screen and typed or scripted commands (make demo)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from experiments.cli.common import (
    Commands,
    UsageError,
    add_load_options,
    check_out_folder,
    check_prerequisites,
    checked_config,
    overrides_from,
    run_with_testbed,
    take_lock,
)
from topology.config import TestbedConfig

DEMO_DURATION_S = 3600.0  # the demo's load runs until `quit`, at most this long


def add_commands(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="the live demo: a screen that shows the failover as it happens, driven by typed commands",
        description="Starts the testbed with load and shows, several times a second, where the VIP "
        "is, each server's probes, requests per second, p95 latency, errors, replication lag and "
        "the last events, and serves the same as a live web page for a projector (the dashboard, on "
        "127.0.0.1: its address is on the screen). Type `help` for the commands (fail, hang, recover, "
        "failback, load, status, quit). `quit` or Ctrl-C writes the results and the report like any run.",
    )
    add_load_options(demo, "requests per second at the start; `load N` changes it (default 200)")
    demo.add_argument("--script", type=Path, metavar="FILE",
                      help="timed commands to play, one '<seconds> <command>' a line "
                      "(e.g. '20 fail primary')")
    demo.add_argument("--dashboard-port", type=int, metavar="PORT",
                      help="where the live dashboard listens on 127.0.0.1 (default: network.dashboard_port, "
                      "8080); the demo's screen shows its address")
    demo.set_defaults(handler=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    from experiments.runs.demo import DemoDrive, terminal_problem

    # The screen is checked first: without a terminal nothing else matters.
    problem = terminal_problem()
    if problem:
        raise UsageError(problem)
    overrides = {**overrides_from(args, duration=False), "load.duration_s": DEMO_DURATION_S}
    if args.dashboard_port is not None:
        overrides["network.dashboard_port"] = args.dashboard_port
    config = checked_config(args, overrides)
    if config.failover.mechanism != "sdn":
        raise UsageError(f"the demo shows the controller's view: failover.mechanism must be sdn, not "
                         f"{config.failover.mechanism} (`run SCENARIO --mechanism "
                         f"{config.failover.mechanism}` runs the others)")
    script = read_script(args.script, config)
    check_out_folder(args.out)
    check_prerequisites()
    lock = take_lock()

    from experiments.results.files import new_run_dir
    from experiments.results.tables import summary_table
    from experiments.runs.trial import run_trial

    def work() -> Path:
        run_dir = new_run_dir(args.out, "demo")
        print(f"starting the testbed in {run_dir} (about 20 s) ...", flush=True)
        print(f"the live dashboard will be on http://127.0.0.1:{config.network.dashboard_port}/ "
              "(its address with the run's token is on the demo's screen)", flush=True)
        summary = run_trial(config, "demo", run_dir, DemoDrive(script))
        print(summary_table(summary))
        return run_dir

    return run_with_testbed(work, lock, report=True)


def read_script(path: Path | None, config: TestbedConfig) -> Any:
    """The --script file's timed commands, checked against the config's servers; None without one."""
    from experiments.runs.demo import CommandError, parse_script

    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"--script {path}: {exc.strerror}") from None
    try:
        return parse_script(text, [s.name for s in config.servers], str(path))
    except CommandError as exc:
        raise UsageError(str(exc)) from None
