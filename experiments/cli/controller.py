"""`controller`: the project's controller alone, for Mininet's own command line (`mn --custom`).

    sudo .venv/bin/sdn-ha controller
    sudo mn --custom topology/mininet_custom.py --topo testbed --host testbed --switch testbed \\
            --controller testbed

It runs the same os-ken application as every run, in the foreground until Ctrl-C, with the
config's addresses and ports (`--config`), its event log in `results/controller-<timestamp>/`.
Nothing else of a testbed starts: no prober (so no server is judged by probes, only by its
switch port), no database (so there is nothing to fence: power fencing is off), no load. A
teacher or a student builds the network in Mininet's CLI instead (topology/mininet_custom.py
says what to try there).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from experiments.cli.common import Commands, UsageError, check_out_folder, checked_config, take_lock
from services.secrets import RunSecrets

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def add_commands(commands: Commands) -> None:
    controller = commands.add_parser(
        "controller",
        help="the project's controller alone, for a network built in Mininet's CLI (mn --custom)",
        description="Runs the os-ken controller in the foreground (Ctrl-C stops it), for the network of "
        "topology/mininet_custom.py started with `mn`; its event log goes to "
        "results/controller-<timestamp>/controller-events.jsonl.",
    )
    controller.add_argument("--config", type=Path, metavar="FILE",
                            help="TOML config (default: config/default.toml's values)")
    controller.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                            help="folder for its run folder (default: results/)")
    controller.set_defaults(handler=controller_command)


def controller_command(args: argparse.Namespace) -> int:
    from experiments.results import files
    from experiments.testbed.daemons import ControllerDaemon, controller_ports_in_use

    # No database to fence, so no power switch either; the rest is the config's.
    config = checked_config(args, {"failover.power_fence": False})
    if config.failover.mechanism != "sdn":
        raise UsageError("the controller is failover.mechanism sdn's; the config says "
                         f"{config.failover.mechanism}")
    check_out_folder(args.out)
    lock = take_lock()
    busy = controller_ports_in_use(config)
    if busy:
        lock.close()
        raise UsageError(f"127.0.0.1 port(s) {', '.join(map(str, busy))} already in use (a testbed running?)")
    run_dir = files.new_run_dir(args.out, "controller")
    private = Path(tempfile.mkdtemp(prefix="hatb-"))  # the token and the sockets: root's only
    try:
        (run_dir / files.CONFIG).write_text(json.dumps(config.to_dict(), indent=2))
        RunSecrets.generate(private)  # the run's token, as every run makes it
        token = private / RunSecrets.FILES["controller_token"]
        daemon = ControllerDaemon(config, run_dir / files.CONFIG, run_dir, private,
                                  private / files.PROBE_SOCKET, token, private / files.PROBER_PID)
        print(f"controller: OpenFlow on 127.0.0.1:{config.network.controller_port}, events in "
              f"{run_dir / files.CONTROLLER_EVENTS}; Ctrl-C stops it. In another terminal:\n"
              "  sudo mn --custom topology/mininet_custom.py --topo testbed --host testbed --switch testbed "
              "--controller testbed", flush=True)
        log = open(run_dir / "controller.log", "wb")  # noqa: SIM115 - closed below
        try:
            # In the foreground: Ctrl-C reaches it (the terminal's process group) and stops it;
            # and it dies with this command, were this one killed (no controller left behind).
            process = subprocess.Popen(daemon.start_command(), stdout=log, stderr=subprocess.STDOUT,
                                       cwd=Path(__file__).resolve().parents[2], preexec_fn=_die_with_parent)
            try:
                return process.wait()
            except KeyboardInterrupt:
                process.terminate()  # ours, by its handle
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
                print(f"controller stopped; its events are in {run_dir / files.CONTROLLER_EVENTS}")
                return 0
        finally:
            log.close()
    finally:
        shutil.rmtree(private, ignore_errors=True)
        lock.close()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux's PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
