"""`machines`: the other machines a config places servers on, checked; or one simulated here.

    python -m experiments machines check --config lab.toml
    python -m experiments machines simulate                 # until Ctrl-C

`check` reaches each machine of the config's [[machines]] with SSH and says whether it can
take part (the same project at the same path, the programs and accounts a server needs, its
clock's offset), as a run checks it before it starts anything there.

`simulate` starts an SSH server on another loopback address with a /tmp of its own
(experiments/testbed/simulated_machine.py), prints the [[machines]] table that reaches it,
and runs until Ctrl-C: a second machine for a lab with one.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
from pathlib import Path

from experiments.cli.common import Commands, UsageError, check_path_characters
from topology.config import load_config
from topology.remote import RemoteMachine

DEFAULT_FOLDER = Path("/var/tmp/sdn-ha-m2")


def add_commands(commands: Commands) -> None:
    machines = commands.add_parser(
        "machines",
        help="check the other machines a config places servers on, or simulate one on this machine",
        description="check: reach each [[machines]] entry of --config with SSH and say whether it can take "
        "part. simulate: an SSH server on another loopback address, with a /tmp of its own, until Ctrl-C.",
    )
    machines.add_argument("action", choices=("check", "simulate"))
    machines.add_argument("--config", type=Path, metavar="FILE", help="check: the TOML config to check")
    machines.add_argument("--address", default="127.0.0.2", help="simulate: its loopback address (127.0.0.2)")
    machines.add_argument("--port", type=int, default=2222, help="simulate: its SSH port (2222)")
    machines.add_argument("--folder", type=Path, default=DEFAULT_FOLDER,
                          help=f"simulate: where its keys and sshd config go ({DEFAULT_FOLDER})")
    machines.set_defaults(handler=machines_command)


def machines_command(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check(args)
    return _simulate(args)


def _check(args: argparse.Namespace) -> int:
    from experiments.testbed.machines import check_machine

    if args.config is None:
        raise UsageError("machines check: give --config FILE, the config whose [[machines]] to check")
    check_path_characters(args.config, "--config")
    config = load_config(args.config)
    if not config.machines:
        raise UsageError(f"{args.config} has no [[machines]] table: every host runs on this machine")
    ready = True
    for machine in config.machines:
        check = check_machine(RemoteMachine(machine))
        print(check.summary())
        ready = ready and not check.problems
    return 0 if ready else 1


def _simulate(args: argparse.Namespace) -> int:
    from experiments.testbed.simulated_machine import SimulatedMachine, SimulatedMachineError

    try:
        address = ipaddress.ip_address(args.address)
    except ValueError:
        raise UsageError(f"--address {args.address}: not an IPv4 address") from None
    if address.version != 4 or not address.is_loopback or str(address) == "127.0.0.1":
        raise UsageError(f"--address {args.address}: give a loopback address other than 127.0.0.1, "
                         "such as 127.0.0.2 (this machine's own stays the head's)")
    if not 1024 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: give a port in 1024-65535")
    if os.geteuid() != 0:
        raise UsageError("machines simulate needs root (its sshd mounts a /tmp of its own): run it with sudo")
    check_path_characters(args.folder, "--folder")
    machine = SimulatedMachine(args.folder, str(address), args.port)
    try:
        machine.start()
    except SimulatedMachineError as error:
        raise UsageError(str(error)) from None
    try:
        print(f"a second machine on {address}:{args.port} (its keys in {args.folder}); put this in your "
              "config, with [placement] secondary = \"m2\" and probe.agent = false:\n")
        print(machine.toml())
        print("Ctrl-C stops it.", flush=True)
        while True:
            signal.pause()  # Ctrl-C (and the command line's SIGTERM, SIGHUP) raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        machine.stop()
    return 0
