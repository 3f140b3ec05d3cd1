"""Which machine each host runs on: the `[[machines]]` and `[placement]` parts of the config.

By default the whole testbed runs on one machine, the head: the one where `sdn-ha` runs, with
the switches, the controller, the client(s) and the monitor. A server can run on another
machine instead (Mininet Cluster Edition's `RemoteHost`, reached with SSH, its link to its
switch a GRE tunnel):

    [[machines]]
    name = "m2"
    address = "192.168.56.12"   # where the head reaches it with SSH
    user = "root"               # the testbed runs as root there too
    port = 22
    key = "/root/.ssh/id_ed25519"   # "" for ssh's own choice
    known_hosts = ""            # a known_hosts file of its own; "" for ssh's (~/.ssh/known_hosts)
    tunnel = "gre"              # the server's link to its switch: "gre", or "ssh" (PermitTunnel there)

    [placement]
    secondary = "m2"            # every host not named here runs on the head

Only servers move: the client and the monitor must see the network as the switch does, and
the controller talks to the switches over loopback. This module only reads and checks; what
reaches the other machines is in experiments/testbed/machines.py.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

HEAD = "head"  # the machine `sdn-ha` runs on; a placement may name it, a [[machines]] entry may not
MACHINE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
# A DNS name: labels of letters, digits and hyphens; never something a shell or ssh would read
# as an option or a second word.
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                         r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MACHINE_KEYS = ("name", "address", "user", "port", "key", "known_hosts", "tunnel")
TUNNELS = ("gre", "ssh")


class PlacementError(ValueError):
    """A machine or placement value that cannot be used; `key` names it (see ConfigError)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class MachineConfig:
    """Another machine that takes part: how the head reaches it with SSH."""

    name: str
    address: str
    user: str = "root"
    port: int = 22
    key: str = ""  # the SSH private key file; "" leaves the choice to ssh
    known_hosts: str = ""  # the file of its host key; "" is ssh's own (~/.ssh/known_hosts)
    # How a host there is linked to its switch here: a GRE tunnel (the kernel's ip_gre at both
    # ends), or an SSH one (tap devices, `PermitTunnel` in its sshd).
    tunnel: str = "gre"

    def destination(self) -> str:
        return f"{self.user}@{self.address}"


def parse_machines(values: Any) -> tuple[MachineConfig, ...]:
    """The `[[machines]]` tables, each checked; PlacementError names the first bad value."""
    if not isinstance(values, list):
        raise PlacementError("machines", "must be a list of [[machines]] tables")
    machines: list[MachineConfig] = []
    for i, entry in enumerate(values):
        key = f"machines[{i}]"
        if not isinstance(entry, dict):
            raise PlacementError(key, f"must be a table with {', '.join(MACHINE_KEYS)}")
        unknown = sorted(set(entry) - set(MACHINE_KEYS))
        if unknown:
            raise PlacementError(f"{key}.{unknown[0]}", f"unknown key; allowed: {', '.join(MACHINE_KEYS)}")
        for required in ("name", "address"):
            if required not in entry:
                raise PlacementError(f"{key}.{required}", "is required")
        machine = MachineConfig(
            name=_of_type(f"{key}.name", entry["name"], str),
            address=_of_type(f"{key}.address", entry["address"], str),
            user=_of_type(f"{key}.user", entry.get("user", "root"), str),
            port=_of_type(f"{key}.port", entry.get("port", 22), int),
            key=_of_type(f"{key}.key", entry.get("key", ""), str),
            known_hosts=_of_type(f"{key}.known_hosts", entry.get("known_hosts", ""), str),
            tunnel=_of_type(f"{key}.tunnel", entry.get("tunnel", "gre"), str),
        )
        _check_machine(key, machine, machines)
        machines.append(machine)
    return tuple(machines)


def parse_placement(values: Any) -> tuple[tuple[str, str], ...]:
    """The `[placement]` table as (host, machine) pairs, in the order given."""
    if not isinstance(values, dict):
        raise PlacementError("placement", "must be a table of host = \"machine\"")
    return tuple((host, _of_type(f"placement.{host}", machine, str)) for host, machine in values.items())


def check_placement(placement: tuple[tuple[str, str], ...], machines: tuple[MachineConfig, ...],
                    servers: dict[str, float], mechanism: str, agent: bool) -> None:
    """Each placed host is a server, each machine is listed, and what does not work elsewhere
    is said. `servers` maps each server's name to its `cpu`; `agent` is `probe.agent`."""
    names = {m.name for m in machines}
    for host, machine in placement:
        key = f"placement.{host}"
        if host not in servers:
            raise PlacementError(key, f"{host!r} is not a server; only servers ({', '.join(servers)}) "
                                 "can run on another machine: the client, the monitor, the switches "
                                 "and the controller stay on the head")
        if machine != HEAD and machine not in names:
            listed = ", ".join([HEAD, *sorted(names)])
            raise PlacementError(key, f"no machine {machine!r}; add a [[machines]] table named {machine!r}, "
                                 f"or use one of: {listed}")
        if machine == HEAD:
            continue
        if servers[host] < 1.0:
            raise PlacementError(key, f"{host} has cpu = {servers[host]:g}, a share of the head's CPU; on "
                                 f"{machine} it gets that machine's own: set its cpu = 1.0, or leave it "
                                 "on the head")
        if mechanism != "sdn":
            raise PlacementError(key, f"failover.mechanism {mechanism!r} runs only on one machine; servers "
                                 "on other machines need the controller (mechanism \"sdn\")")
        if agent:
            # The web service says a lost database on a UNIX socket of the prober, on the head.
            raise PlacementError(key, f"{host} on {machine} cannot reach the prober's wake socket on the "
                                 "head: set probe.agent = false (a lost database is then found by probes)")
    if len({host for host, _ in placement}) != len(placement):
        raise PlacementError("placement", "names a host twice")


def _check_machine(key: str, machine: MachineConfig, before: list[MachineConfig]) -> None:
    if not MACHINE_NAME_RE.match(machine.name) or machine.name == HEAD:
        raise PlacementError(f"{key}.name", f"{machine.name!r} must be 1-16 lowercase letters, digits or "
                             f"hyphens, starting with a letter, and not {HEAD!r} (this machine)")
    if machine.name in {m.name for m in before}:
        raise PlacementError(f"{key}.name", f"{machine.name!r} is listed twice")
    if not _is_address(machine.address):
        raise PlacementError(f"{key}.address", f"{machine.address!r} is neither an IPv4 address nor a "
                             "host name")
    if machine.address in {m.address for m in before}:
        raise PlacementError(f"{key}.address", f"{machine.address} is already machine "
                             f"{next(m.name for m in before if m.address == machine.address)}")
    if not USER_RE.match(machine.user):
        raise PlacementError(f"{key}.user", f"{machine.user!r} is not a user name")
    if machine.tunnel not in TUNNELS:
        raise PlacementError(f"{key}.tunnel", f"{machine.tunnel!r} must be one of: {', '.join(TUNNELS)}")
    if not 1 <= machine.port <= 65535:
        raise PlacementError(f"{key}.port", f"must be in 1-65535, got {machine.port}")
    for name, path in (("key", machine.key), ("known_hosts", machine.known_hosts)):
        if path and not path.startswith("/"):
            raise PlacementError(f"{key}.{name}", f"{path!r} must be an absolute path (or \"\")")


def _is_address(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return bool(HOSTNAME_RE.match(text)) and not text.replace(".", "").isdigit()


def _of_type(key: str, value: Any, wanted: type) -> Any:
    if isinstance(value, wanted) and not (wanted is int and isinstance(value, bool)):
        return value
    raise PlacementError(key, f"must be {wanted.__name__}, got {type(value).__name__} {value!r}")
