"""The testbed's one configuration object, read from TOML and validated at the edge.

Every part of the testbed (the network, the server daemons, the controller and the
experiments) takes its parameters from a `TestbedConfig`. It lives in `topology/`, the
lowest layer, so that every other folder can import it without importing upward.

A config is built in one of two ways:
- `load_config(path, overrides)` reads a TOML file (see `config/default.toml`) and applies
  command-line overrides given as dotted keys (`{"load.rate": 500}`);
- `TestbedConfig.from_dict(data)` takes the same structure as a dict (the controller reads
  the resolved config the experiment wrote into the run folder).

Both validate everything before anything starts and raise `ConfigError`, whose message
names the key and says what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from topology.fabric import TOPOLOGIES, Fabric, plan_fabric
from topology.placement import (
    HEAD,
    MachineConfig,
    PlacementError,
    check_placement,
    parse_machines,
    parse_placement,
)

# A host name becomes part of interface names ("<name>-eth0", at most 15 characters) and of
# shell commands, so it is kept short and made only of characters no shell interprets.
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
FAILBACK_POLICIES = ("never", "auto")
# Who moves the VIP: the project's controller (sdn), keepalived on every server (vrrp), or
# HAProxy on a host of its own (proxy); and, for the two classic ones, their settings: as
# shipped or tuned (services/keepalived.py, services/haproxy.py).
MECHANISMS = ("sdn", "vrrp", "proxy")
PRESETS = ("defaults", "tuned")
PROXY_NODE = "proxy"  # the host HAProxy runs in, with the VIP as its address (mechanism proxy)
EXTRA_CLIENT_OFFSET = 150  # client2 is client_ip + 150
REPLICATION_MODES = ("async", "semi-sync")

# Names Mininet or the testbed give nodes of their own; a server may take none of them.
CONTROLLER_NODE = "c0"  # what topology/network.py names Mininet's controller node
EXTRA_CLIENT_NAME_RE = re.compile(r"^client[0-9]+$")  # client2, client3, ... (network.clients)
FABRIC_SWITCH_NAME_RE = re.compile(r"^(edge|core|leaf|spine)[0-9]+$")  # topology/fabric.py's switches
MAX_LEAVES = 8
MAX_SPINES = 4

# The port every MariaDB listens on (services/mariadb.py). The switch rewrites what a server
# sends from web.port as if it came from the VIP, so the web port must be none of the ports
# the hosts' other traffic uses, or that traffic is rewritten too (web.port = 3306 broke
# replication, and the run hung until it was killed).
DATABASE_PORT = 3306
# The hosts' ephemeral ports (Linux's default ip_local_port_range): a server's own outgoing
# connection (a replica's to its source) takes its source port from here, and one that got
# web.port would be rewritten to come from the VIP.
EPHEMERAL_PORTS = (32768, 60999)

# Upper bounds of the probe and failover settings: beyond them a run is no failover
# experiment any more, and a value there is far likelier a typo than a plan.
# - Probes more than 10 s apart see a server twice in a default 20 s trial: a crash would
#   not even be detected (fall = 2 takes 10 to 20 s), and `inf` ran a "baseline" of two probes.
PROBE_INTERVAL_MAX_S = 10.0
# - fall and rise: 100 probes in a row is 4 s at the default interval, fifty times the
#   default's detection (or return), and over 15 min at the largest interval.
PROBE_COUNT_MAX = 100
# - timeout_fall: a hang needs more probes than a crash (the defaults: 20 against 2), so ten
#   times fall's bound; 1000 is 40 s at the default interval, twice the default trial.
TIMEOUT_FALL_MAX = 1000
# - hold_down_s: the longest load (load.duration_s); a longer hold-down never lets the VIP
#   fail back within a run, which `failover.failback = "never"` says plainly.
HOLD_DOWN_MAX_S = 3600.0


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message says which key and why."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class HostPlan:
    """Where one Mininet host sits: its name, addresses and the switch port it is wired to."""

    name: str
    ip: str
    mac: str
    port: int
    switch: str = "s1"  # the switch it is wired to (topology/fabric.py)


@dataclass(frozen=True)
class ServerConfig:
    name: str
    ip: str
    cpu: float = 1.0  # share of the whole machine's CPU; 1.0 means no limit


@dataclass(frozen=True)
class NetworkConfig:
    subnet: str = "10.0.0.0/24"
    vip: str = "10.0.0.100"
    vmac: str = "02:00:00:00:01:00"
    client_ip: str = "10.0.0.1"
    # Client hosts: the first is `client` at client_ip (it sends the load); the others,
    # client2, client3, ..., sit at client_ip + 150, + 151, ... (to show that the flow table
    # does not grow with the number of clients).
    clients: int = 1
    monitor_ip: str = "10.0.0.250"
    controller_port: int = 6653
    status_port: int = 8181  # the controller's status endpoint, on 127.0.0.1 only
    dashboard_port: int = 8080  # the demo's live dashboard (a web page), on 127.0.0.1 only
    switch: str = "s1"  # the one switch of the `single` topology
    # "single", "two-tier" or "leaf-spine" (topology/fabric.py draws them)
    topology: str = "single"
    leaves: int = 3  # leaf-spine only: leaf switches (2-8), the clients on the first
    spines: int = 2  # leaf-spine only: spine switches (1-4)


@dataclass(frozen=True)
class ProbeConfig:
    interval_s: float = 0.04
    timeout_s: float = 0.035
    fall: int = 2  # failed probes in a row (refused, reset, an error status) before down
    timeout_fall: int = 20  # failed or timed-out probes in a row before down
    rise: int = 3
    # Time-outs in a row that mark down a server silent four times longer than its slowest answer
    # of the last second: it froze, a busy one slows first. 0: off (timeout_fall only).
    hang_fall: int = 3
    # A probe that timed out is still read for its answer this long (0: abandoned at once): an
    # answer that comes late shows the server busy, not dead, and forgives its time-outs.
    late_s: float = 1.0
    # sdn only: faster words that a server failed, each confirmed by a probe at once. `passive`:
    # the switch copies to the controller every TCP reset a server's web port sends a client;
    # `agent`: the web service says when it loses its database.
    passive: bool = True
    agent: bool = True
    # A probe that fails for certain is checked again at once, out of schedule (HAProxy's
    # `fastinter` on error): a refused probe and its confirmation, not `fall` intervals apart.
    recheck: bool = True


@dataclass(frozen=True)
class FailoverConfig:
    mechanism: str = "sdn"
    preset: str = "tuned"  # vrrp and proxy only
    failback: str = "never"
    hold_down_s: float = 2.0
    # sdn only: the switch itself moves the VIP off a server whose port goes down (an OpenFlow
    # fast-failover group, one bucket per server in the controller's order), before the
    # controller hears of it; the controller then records the move and agrees with it.
    switch_failover: bool = True
    # sdn only: an old server whose database does not answer its fence (frozen, say) is powered
    # off by the testbed's power switch (its database and web server killed) before the new one
    # is made writable, so that two databases are never writable at once (STONITH).
    power_fence: bool = True


@dataclass(frozen=True)
class LoadConfig:
    rate: float = 200.0  # requests per second, open loop
    duration_s: float = 20.0
    fault_at_s: float = 10.0
    post_ratio: float = 0.3  # share of requests that are writes (POST)
    timeout_s: float = 1.0  # a request not answered by then counts as failed


@dataclass(frozen=True)
class WebConfig:
    port: int = 80
    workers: int = 2
    threads: int = 4


@dataclass(frozen=True)
class DatabaseConfig:
    replication: str = "async"
    # semi-sync only: how long a commit waits for a replica's acknowledgement before the
    # primary falls back to asynchronous replication (and says so in its status).
    semi_sync_timeout_ms: int = 250


@dataclass(frozen=True)
class TestbedConfig:
    __test__ = False  # not a pytest test class, despite its name
    network: NetworkConfig = field(default_factory=NetworkConfig)
    servers: tuple[ServerConfig, ...] = (
        ServerConfig("primary", "10.0.0.11", 1.0),
        ServerConfig("secondary", "10.0.0.12", 0.5),
    )
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    failover: FailoverConfig = field(default_factory=FailoverConfig)
    load: LoadConfig = field(default_factory=LoadConfig)
    web: WebConfig = field(default_factory=WebConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    # The other machines that take part, and which server runs on which (topology/placement.py);
    # none: everything on this one, the head.
    machines: tuple[MachineConfig, ...] = ()
    placement: tuple[tuple[str, str], ...] = ()

    def machine_of(self, host: str) -> MachineConfig | None:
        """The other machine `host` runs on; None when it runs on the head."""
        wanted = dict(self.placement).get(host, HEAD)
        return next((m for m in self.machines if m.name == wanted), None)

    # -- the network plan, derived from the config so every part agrees on it ----------

    @cached_property
    def fabric(self) -> Fabric:
        """The switches, their cables and each host's switch and port (topology/fabric.py)."""
        front = ["client", "monitor", *(name for name, _ in self._extra_client_ips())]
        servers = [s.name for s in self.servers]
        ports = {"client": 1, "monitor": 2, **{name: 3 + i for i, name in enumerate(servers)}}
        ports.update({name: 3 + len(servers) + k for k, (name, _) in enumerate(self._extra_client_ips())})
        ports[PROXY_NODE] = 3 + len(servers) + len(self._extra_client_ips())  # host_plans says if it is there
        net = self.network
        return plan_fabric(net.topology, net.switch, front, servers, ports, net.leaves, net.spines)

    @property
    def client(self) -> HostPlan:
        return self._plan("client", self.network.client_ip)

    def _extra_client_ips(self) -> list[tuple[str, str]]:
        first = ipaddress.ip_address(self.network.client_ip) + EXTRA_CLIENT_OFFSET
        return [(f"client{k}", str(first + k - 2)) for k in range(2, self.network.clients + 1)]

    @property
    def extra_clients(self) -> tuple[HostPlan, ...]:
        """client2 ... clientN, on the switch ports after the servers' (on one switch)."""
        return tuple(self._plan(name, ip) for name, ip in self._extra_client_ips())

    @property
    def monitor(self) -> HostPlan:
        """The host the health probes run from, so they cross the switch as clients do."""
        return self._plan("monitor", self.network.monitor_ip)

    @property
    def server_plans(self) -> tuple[HostPlan, ...]:
        """The servers in priority order (on one switch, on ports 3, 4, ...)."""
        return tuple(self._plan(s.name, s.ip) for s in self.servers)

    @property
    def host_plans(self) -> tuple[HostPlan, ...]:
        """Every host of the network, in the order of their switch ports."""
        proxy = (self.proxy,) if self.failover.mechanism == "proxy" else ()
        return (self.client, self.monitor, *self.server_plans, *self.extra_clients, *proxy)

    @property
    def proxy(self) -> HostPlan:
        """The HAProxy host (mechanism proxy): the VIP is its own address; the port after all others."""
        return self._plan(PROXY_NODE, self.network.vip)

    def _plan(self, name: str, ip: str) -> HostPlan:
        switch, port = self.fabric.placement[name]
        return HostPlan(name, ip, mac_for(ip, self.network.subnet), port, switch)

    def server(self, name: str) -> HostPlan:
        for plan in self.server_plans:
            if plan.name == name:
                return plan
        raise KeyError(name)

    @property
    def prefix_len(self) -> int:
        return ipaddress.ip_network(self.network.subnet).prefixlen

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["servers"] = [asdict(s) for s in self.servers]
        data["machines"] = [asdict(m) for m in self.machines]
        data["placement"] = dict(self.placement)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestbedConfig:
        return _build(data)

    def with_overrides(self, overrides: dict[str, Any]) -> TestbedConfig:
        """This config with dotted keys changed (`{"load.rate": 500}`), validated again."""
        return _build(_overridden(self.to_dict(), overrides))

    @classmethod
    def from_file(cls, path: Path) -> TestbedConfig:
        """The resolved config a run wrote (config.json): ConfigError if it cannot be read."""
        try:
            return _build(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError("config", f"cannot read {path}: {exc}") from None


def mac_for(ip: str, subnet: str) -> str:
    """A fixed, readable MAC for a host: its offset in the subnet, in the MAC's last four octets.

    In a /24 that is the last octet (10.0.0.11 -> 00:00:00:00:00:0b); in a /16 the last two
    (10.0.1.11 -> 00:00:00:00:01:0b), so no two hosts of the subnet share a MAC (the last
    octet alone gave 10.0.0.11 and 10.0.1.11 the same one).
    """
    offset = int(ipaddress.ip_address(ip)) & int(ipaddress.ip_network(subnet).hostmask)
    return "00:00:" + ":".join(f"{b:02x}" for b in offset.to_bytes(4, "big"))


# -- reading and validating -----------------------------------------------------------------

_SECTIONS = {
    "network": NetworkConfig,
    "probe": ProbeConfig,
    "failover": FailoverConfig,
    "load": LoadConfig,
    "web": WebConfig,
    "database": DatabaseConfig,
}


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> TestbedConfig:
    """Read a TOML config (or the defaults when `path` is None) and apply dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError("--config", f"no such file: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    return _build(_overridden(data, overrides or {}))


def _overridden(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})[key] = value
    return data


def _build(data: dict[str, Any]) -> TestbedConfig:
    if not isinstance(data, dict):
        raise ConfigError("config", "must be a table")
    unknown = set(data) - set(_SECTIONS) - {"servers", "machines", "placement"}
    if unknown:
        allowed = ", ".join(sorted([*_SECTIONS, "servers", "machines", "placement"]))
        raise ConfigError(sorted(unknown)[0], f"unknown section; allowed: {allowed}")
    sections = {name: _section(name, kind, data.get(name, {})) for name, kind in _SECTIONS.items()}
    servers = _servers(data["servers"]) if "servers" in data else TestbedConfig.servers
    try:
        machines = parse_machines(data.get("machines", []))
        placement = parse_placement(data.get("placement", {}))
    except PlacementError as exc:
        raise ConfigError(exc.key, str(exc)) from None
    config = TestbedConfig(servers=servers, machines=machines, placement=placement, **sections)
    _check(config)
    return config


def _section(name: str, kind: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(name, "must be a table")
    defaults = kind()
    fields = {f: getattr(defaults, f) for f in kind.__dataclass_fields__}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{name}.{key}", f"unknown key; allowed: {', '.join(fields)}")
        fields[key] = _typed(f"{name}.{key}", value, type(fields[key]))
    return kind(**fields)


def _typed(key: str, value: Any, wanted: type) -> Any:
    """Check a value's type against the default's; an int is accepted where a float is wanted.

    A float must be finite: TOML and JSON can spell nan and inf, and every range check below
    would let a nan through (each comparison with it is false), or take inf for "large".
    """
    if wanted is float and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float (JSON allows any)
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        return number
    if isinstance(value, wanted) and not (wanted is int and isinstance(value, bool)):
        return value
    raise ConfigError(key, f"must be {wanted.__name__}, got {type(value).__name__} {value!r}")


def _servers(values: Any) -> tuple[ServerConfig, ...]:
    if not isinstance(values, list) or not values:
        raise ConfigError("servers", "must be a non-empty list of [[servers]] tables")
    servers = []
    for i, entry in enumerate(values):
        key = f"servers[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(key, "must be a table with name, ip and cpu")
        unknown = set(entry) - {"name", "ip", "cpu"}
        if unknown:
            raise ConfigError(f"{key}.{sorted(unknown)[0]}", "unknown key; allowed: name, ip, cpu")
        for required in ("name", "ip"):
            if required not in entry:
                raise ConfigError(f"{key}.{required}", "is required")
        servers.append(
            ServerConfig(
                name=_typed(f"{key}.name", entry["name"], str),
                ip=_typed(f"{key}.ip", entry["ip"], str),
                cpu=_typed(f"{key}.cpu", entry.get("cpu", 1.0), float),
            )
        )
    return tuple(servers)


def _check(c: TestbedConfig) -> None:
    """Cross-field checks: everything that must hold before a network is built.

    One check per section, in this order; the first value that fails is the one reported.
    """
    subnet = _check_subnet(c.network)
    _check_addresses(c, subnet)
    _check_network(c.network)
    _check_topology(c)
    _check_macs(c)
    _check_servers(c.servers, c.network)
    _check_probe(c.probe)
    _check_failover(c.failover)
    _check_load(c.load)
    _check_web(c.web, c.network)
    _check_database(c.database)
    try:
        check_placement(c.placement, c.machines, {s.name: s.cpu for s in c.servers}, c.failover.mechanism,
                        c.probe.agent)
    except PlacementError as exc:
        raise ConfigError(exc.key, str(exc)) from None


def _check_subnet(net: NetworkConfig) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.ip_network(net.subnet)
    except ValueError:
        raise ConfigError("network.subnet", f"{net.subnet!r} is not a network like 10.0.0.0/24") from None
    if subnet.prefixlen < 16 or subnet.version != 4:
        raise ConfigError("network.subnet", "must be an IPv4 network of /16 to /30 (e.g. 10.0.0.0/24)")
    return subnet


def _check_addresses(c: TestbedConfig, subnet: ipaddress.IPv4Network) -> None:
    """Every host's address and the VIP: inside the subnet, and each one used once."""
    net = c.network
    used: dict[str, str] = {}  # address -> the key that took it first
    _claim_address(used, subnet, "network.client_ip", net.client_ip)
    _claim_address(used, subnet, "network.monitor_ip", net.monitor_ip)
    if not 1 <= net.clients <= 64:
        raise ConfigError("network.clients", "must be between 1 and 64")
    try:
        extra_clients = c.extra_clients
    except ValueError:  # an address past the end of IPv4
        raise ConfigError("network.clients", f"too many clients after {net.client_ip}") from None
    for plan in extra_clients:
        _claim_address(used, subnet, "network.clients", plan.ip)
    for i, s in enumerate(c.servers):
        _claim_address(used, subnet, f"servers[{i}].ip", s.ip)
    _claim_address(used, subnet, "network.vip", net.vip)


def _claim_address(used: dict[str, str], subnet: ipaddress.IPv4Network, key: str, value: str) -> None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(key, f"{value!r} is not an IPv4 address") from None
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
        raise ConfigError(key, f"{value} is outside network.subnet {subnet}")
    if value in used:
        raise ConfigError(key, f"{value} is already used by {used[value]}")
    used[value] = key


def _check_network(net: NetworkConfig) -> None:
    """The virtual MAC, the controller's ports and the switch's name."""
    if not MAC_RE.match(net.vmac):
        raise ConfigError("network.vmac", f"{net.vmac!r} is not a MAC like 02:00:00:00:01:00")
    if not 1024 <= net.controller_port <= 65535:
        raise ConfigError("network.controller_port", "must be between 1024 and 65535")
    if not 1024 <= net.status_port <= 65535 or net.status_port == net.controller_port:
        raise ConfigError("network.status_port", "must be between 1024 and 65535, not the controller_port")
    taken = (net.controller_port, net.status_port)
    if not 1024 <= net.dashboard_port <= 65535 or net.dashboard_port in taken:
        raise ConfigError("network.dashboard_port",
                          "must be between 1024 and 65535, neither the controller_port nor the status_port")
    if not re.match(r"^s[0-9]{1,4}$", net.switch):
        raise ConfigError("network.switch", f"{net.switch!r} must be 's' and a number, like s1")


def _check_topology(c: TestbedConfig) -> None:
    net = c.network
    if net.topology not in TOPOLOGIES:
        raise ConfigError("network.topology", f"{net.topology!r} must be one of {', '.join(TOPOLOGIES)}")
    if net.topology == "single":
        return
    if c.failover.mechanism != "sdn":
        raise ConfigError("network.topology",
                          f"{net.topology!r} runs with failover.mechanism \"sdn\" only: keepalived "
                          "and HAProxy rely on a learning switch, which loops on a fabric's redundant "
                          "links; use topology \"single\" for them")
    if net.topology == "leaf-spine":
        if not 2 <= net.leaves <= MAX_LEAVES:
            raise ConfigError("network.leaves", f"must be between 2 and {MAX_LEAVES} (the clients on the "
                              "first, the servers on the others)")
        if not 1 <= net.spines <= MAX_SPINES:
            raise ConfigError("network.spines", f"must be between 1 and {MAX_SPINES}")


def _check_macs(c: TestbedConfig) -> None:
    """No two hosts share a MAC, and none has the virtual one: the switch learns a MAC on one
    port only, so a shared one sends one host's traffic to the other."""
    hosts = [("network.client_ip", c.client), ("network.monitor_ip", c.monitor),
             *(("network.clients", plan) for plan in c.extra_clients),
             *((f"servers[{i}].ip", plan) for i, plan in enumerate(c.server_plans))]
    used: dict[str, str] = {}  # MAC -> the host that has it
    for key, plan in hosts:
        if plan.mac in used:
            raise ConfigError(key, f"{plan.ip} gets the MAC {plan.mac}, already that of {used[plan.mac]}")
        used[plan.mac] = f"{plan.name} ({plan.ip})"
    if c.network.vmac in used:
        raise ConfigError("network.vmac", f"{c.network.vmac} is already the MAC of {used[c.network.vmac]}; "
                          "choose one no host has, like 02:00:00:00:01:00")


def _check_servers(servers: tuple[ServerConfig, ...], net: NetworkConfig) -> None:
    if len(servers) < 2:
        raise ConfigError("servers", "needs at least two servers (a primary and a secondary)")
    taken: dict[str, str] = {}  # name -> the server that has it
    for i, s in enumerate(servers):
        key = f"servers[{i}].name"
        if not HOST_NAME_RE.match(s.name):
            raise ConfigError(
                key, f"{s.name!r} must be 1-10 lowercase letters or digits, starting with a letter"
            )
        owner = taken.get(s.name) or _node_named(s.name, net)
        if owner:
            raise ConfigError(key, f"{s.name!r} is already the name of {owner}; a server needs a name of "
                              f"its own, not client, client<N>, monitor, {PROXY_NODE}, {CONTROLLER_NODE} "
                              f"or {net.switch}")
        taken[s.name] = f"servers[{i}]"
        if not 0 < s.cpu <= 1:
            raise ConfigError(f"servers[{i}].cpu", f"must be in (0, 1], got {s.cpu}")


def _node_named(name: str, net: NetworkConfig) -> str | None:
    """Which of the network's own nodes (not a server) is called `name`, if one is.

    Mininet keeps one node per name: a server called like the switch or the controller
    replaces that node in the network. The whole client<N> family is kept for the extra
    clients, so that raising network.clients never makes a valid config invalid.
    """
    if name == net.switch:
        return "the switch (network.switch)"
    if FABRIC_SWITCH_NAME_RE.match(name):
        return "a switch of the two-tier or leaf-spine topology (edge<N>, core<N>, leaf<N>, spine<N>)"
    if name == CONTROLLER_NODE:
        return "Mininet's controller node"
    if name in ("client", "monitor", PROXY_NODE):
        return f"the {name} host"
    if EXTRA_CLIENT_NAME_RE.match(name):
        return "an extra client host (network.clients names them client2, client3, ...)"
    return None


def _check_probe(p: ProbeConfig) -> None:
    if not 0 < p.interval_s <= PROBE_INTERVAL_MAX_S:
        raise ConfigError("probe.interval_s", f"must be > 0 and at most {PROBE_INTERVAL_MAX_S:g} seconds")
    if not 0 < p.timeout_s < p.interval_s:
        raise ConfigError("probe.timeout_s", f"must be > 0 and below probe.interval_s ({p.interval_s})")
    if not 1 <= p.fall <= PROBE_COUNT_MAX:
        raise ConfigError("probe.fall", f"must be between 1 and {PROBE_COUNT_MAX}")
    if not p.fall <= p.timeout_fall <= TIMEOUT_FALL_MAX:
        raise ConfigError("probe.timeout_fall",
                          f"must be >= probe.fall ({p.fall}) and at most {TIMEOUT_FALL_MAX}")
    if not 1 <= p.rise <= PROBE_COUNT_MAX:
        raise ConfigError("probe.rise", f"must be between 1 and {PROBE_COUNT_MAX}")
    if not 0 <= p.hang_fall <= p.timeout_fall:
        raise ConfigError("probe.hang_fall",
                          f"must be 0 (off) or at most probe.timeout_fall ({p.timeout_fall})")
    if p.late_s != 0 and not p.timeout_s < p.late_s <= PROBE_INTERVAL_MAX_S:
        raise ConfigError("probe.late_s", f"must be 0 (off) or above probe.timeout_s ({p.timeout_s}) "
                          f"and at most {PROBE_INTERVAL_MAX_S:g} seconds")


def _check_failover(f: FailoverConfig) -> None:
    if f.mechanism not in MECHANISMS:
        raise ConfigError("failover.mechanism", f"must be one of {', '.join(MECHANISMS)}")
    if f.preset not in PRESETS:
        raise ConfigError("failover.preset", f"must be one of {', '.join(PRESETS)}")
    if f.failback not in FAILBACK_POLICIES:
        raise ConfigError("failover.failback", f"must be one of {', '.join(FAILBACK_POLICIES)}")
    if not 0 <= f.hold_down_s <= HOLD_DOWN_MAX_S:
        raise ConfigError("failover.hold_down_s", f"must be between 0 and {HOLD_DOWN_MAX_S:g} seconds")


def _check_load(ld: LoadConfig) -> None:
    if not 1 <= ld.rate <= 5000:
        raise ConfigError("load.rate", "must be between 1 and 5000 requests per second")
    if not 1 <= ld.duration_s <= 3600:
        raise ConfigError("load.duration_s", "must be between 1 and 3600 seconds")
    if not 0 <= ld.fault_at_s < ld.duration_s:
        raise ConfigError("load.fault_at_s", f"must be >= 0 and below load.duration_s ({ld.duration_s})")
    if not 0 <= ld.post_ratio <= 1:
        raise ConfigError("load.post_ratio", "must be between 0 and 1")
    if not 0 < ld.timeout_s <= 30:
        raise ConfigError("load.timeout_s", "must be > 0 and at most 30 seconds")


def _check_web(w: WebConfig, net: NetworkConfig) -> None:
    if not 1 <= w.port <= 65535:
        raise ConfigError("web.port", "must be between 1 and 65535")
    others = {DATABASE_PORT: "the databases' port", net.controller_port: "network.controller_port",
              net.status_port: "network.status_port"}
    if w.port in others:
        raise ConfigError("web.port", f"{w.port} is {others[w.port]}; the web servers need a port of "
                          "their own")
    low, high = EPHEMERAL_PORTS
    if low <= w.port <= high:
        raise ConfigError("web.port", f"must be outside the hosts' ephemeral ports {low}-{high}, "
                          "where a server's own connections take their source ports")
    if not 1 <= w.workers <= 16:
        raise ConfigError("web.workers", "must be between 1 and 16")
    if not 1 <= w.threads <= 64:
        raise ConfigError("web.threads", "must be between 1 and 64")


def _check_database(d: DatabaseConfig) -> None:
    if d.replication not in REPLICATION_MODES:
        raise ConfigError("database.replication", f"must be one of {', '.join(REPLICATION_MODES)}")
    if not 10 <= d.semi_sync_timeout_ms <= 60000:
        raise ConfigError("database.semi_sync_timeout_ms", "must be between 10 and 60000")
