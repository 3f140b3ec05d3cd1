"""Run a command inside a host of the running testbed, to look around during a demo or a run.

    python -m experiments exec client curl -s http://10.0.0.100/
    python -m experiments exec secondary mariadb -e 'SELECT COUNT(*) FROM app.items'
    python -m experiments exec primary ip addr

The running testbed is found from its `state.json` under the results folder (the one whose
run is still alive), and the host from the Mininet shell that holds its network namespace,
as recorded there (checked to be that very process, not a reused PID). The command runs in the
host's network namespace with `nsenter`, so it sees the emulated network exactly as the host
does. On a server host, `mariadb` reaches that server's own database as root (the socket is
`--socket` is added to the MariaDB client programs of `MARIADB_CLIENTS`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from experiments.results import files
from experiments.testbed.cleanup import STATE_FILE, TEMP_PREFIX, active_owner
from services.mariadb import socket_path
from services.runner import is_recorded_process
from topology.config import TestbedConfig
from topology.remote import RemoteMachine

# Client programs that get `--socket` of the host's own database. The environment variable
# MYSQL_UNIX_PORT is not enough: Debian's /etc/mysql config names the system socket, and wins.
MARIADB_CLIENTS = ("mariadb", "mysql", "mariadb-admin", "mysqladmin", "mariadb-dump", "mysqldump")


class ExecError(Exception):
    """Why the command cannot run; says what to do instead."""


def running_testbed(results_root: Path) -> tuple[Path, dict[str, Any]]:
    """The state file (and its data) of the testbed running now, found under `results_root`."""
    running = []
    for path in results_root.rglob(STATE_FILE) if results_root.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being rewritten, or not ours: not a running testbed
        if isinstance(data, dict) and data.get("shells") and active_owner(data) is not None:
            running.append((path.stat().st_mtime, path, data))
    if not running:
        raise ExecError(f"no testbed is running (looked under {results_root}/): start one with "
                        "`make demo` or `sdn-ha run ...`, or give --results DIR")
    _, path, data = max(running, key=lambda found: found[0])
    return path, data


def host_names(config: TestbedConfig) -> list[str]:
    plans = config.host_plans
    return [plan.name for plan in plans]


def host_command(state_path: Path, data: dict[str, Any], host: str, command: list[str]) -> list[str]:
    """The argv and environment that run `command` inside `host` of the testbed `data` describes."""
    config = TestbedConfig.from_dict(json.loads((state_path.parent / files.CONFIG).read_text()))
    hosts = host_names(config)
    if host not in hosts:
        raise ExecError(f"no host {host!r} in the running testbed; the hosts are {', '.join(hosts)}")
    shell = data["shells"].get(host)
    if not shell or not is_recorded_process(shell):
        raise ExecError(f"host {host} is not running any more (the testbed is stopping?)")
    if not command:
        raise ExecError("give the command to run, e.g. `exec client curl -s http://10.0.0.100/`")
    temp = [Path(f) for f in data.get("folders", []) if Path(f).name.startswith(TEMP_PREFIX)]
    is_server = host in [server.name for server in config.servers]
    if is_server and Path(command[0]).name in MARIADB_CLIENTS and temp:
        # The same path on the host's own machine (topology/placement.py).
        command = [command[0], f"--socket={socket_path(temp[0], host)}", *command[1:]]
    machine = config.machine_of(host)
    if machine is None:
        return ["nsenter", f"--net=/proc/{shell['pid']}/ns/net", "--", *command]
    # On another machine: the same, there, through the run's SSH connection to it if it is up.
    control = temp[0] / f"ssh-{machine.name}.ctl" if temp else None
    remote = RemoteMachine(machine, control_path=control if control and control.exists() else None)
    pid = shell["remote"]["pid"]
    return remote.argv(["nsenter", f"--net=/proc/{pid}/ns/net", "--", *command], tty=sys.stdin.isatty())


def exec_in_host(results_root: Path, host: str, command: list[str]) -> None:
    """Replace this process with `command` running inside `host`; ExecError if it cannot."""
    state_path, data = running_testbed(results_root)
    argv = host_command(state_path, data, host, command)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise ExecError(f"cannot run nsenter ({exc.strerror}): is util-linux installed?") from None
