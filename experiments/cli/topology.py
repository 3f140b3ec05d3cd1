"""`topology`: the network a config builds, in words and as a picture, without building it.

    python -m experiments topology --topology two-tier
    python -m experiments topology --config lab.toml --picture results/lab/topology.png

It prints every switch with its datapath id and what sits on each of its ports (a host and
its address, or a cable and the port at its other end): what `dpctl dump-flows` and the
controller's events name by number. Nothing starts; it needs no root.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli.common import Commands, UsageError, check_path_characters
from topology.config import load_config
from topology.fabric import TOPOLOGIES


def add_commands(commands: Commands) -> None:
    topology = commands.add_parser(
        "topology",
        help="the network a config builds: each switch's ports, in words and as a picture",
        description="Prints every switch of the config's network (one switch, two-tier or leaf-spine) with "
        "its datapath id and what is on each port; --picture also draws it. Nothing starts.",
    )
    topology.add_argument("--config", type=Path, metavar="FILE",
                          help="TOML config (default: built-in defaults)")
    topology.add_argument("--topology", choices=TOPOLOGIES, default=None,
                          help="this topology instead of the config's (leaf-spine's size: network.leaves "
                          "and network.spines in --config)")
    topology.add_argument("--picture", type=Path, metavar="FILE.png", default=None,
                          help="also draw the network into this PNG file")
    topology.set_defaults(handler=topology_command)


def topology_command(args: argparse.Namespace) -> int:
    overrides = {} if args.topology is None else {"network.topology": args.topology}
    if args.config is not None:
        check_path_characters(args.config, "--config")
    config = load_config(args.config, overrides)  # nothing is built: no cgroup to check, no lock
    if args.picture is not None:
        if args.picture.suffix != ".png":
            raise UsageError(f"--picture {args.picture}: give a file name ending in .png")
        if not args.picture.parent.is_dir():
            raise UsageError(f"--picture {args.picture}: the folder {args.picture.parent} does not exist")
    addresses = {plan.name: plan.ip for plan in config.host_plans}
    print("\n".join(config.fabric.describe(addresses)))
    if args.picture is not None:
        from experiments.results.topology_picture import draw_topology

        draw_topology(config, args.picture)
        print(f"picture: {args.picture}")
    return 0
