"""`exec HOST COMMAND`: run a command inside a host of the testbed that is running now."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli.common import Commands, UsageError


def add_commands(commands: Commands) -> None:
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
    exec_.set_defaults(handler=exec_command)


def exec_command(args: argparse.Namespace) -> int:
    from experiments.testbed.hostexec import ExecError, exec_in_host

    command = args.exec_command[1:] if args.exec_command[:1] == ["--"] else args.exec_command
    try:
        exec_in_host(args.results, args.host, command)  # returns only on an error
    except ExecError as exc:
        raise UsageError(str(exc)) from None
    return 1
