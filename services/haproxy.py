"""HAProxy on a host of its own: the other classic answer, a proxy in front of the servers.

With `failover.mechanism = "proxy"` there is no controller: the switch is a plain learning
switch, and the `proxy` host has the virtual IP as its own address. The clients' connections
end at HAProxy, which opens its own to a server: the first server while it is up, else the
first backup. It checks each server's `/health` itself (active checks) and, tuned, watches
the client traffic as well (a connection to a server that fails marks it down at once), and
re-sends a request whose connection failed to another server (`option redispatch`).

With `failover.failback = "never"` (the default), a one-entry stick table keeps the traffic on
the server it went to last, as long as that one is up: HAProxy would otherwise send it back to
the first server the moment that passes `rise` checks again (its own failback, at once, with
no hold-down and no look at the database).

The proxy is a new single point of failure: the testbed does not pair it with a second one.

The databases follow HAProxy's choice: `controller/follower.py` reads the servers' states
from HAProxy's admin socket every few milliseconds (`show servers state`) and makes the
chosen server's database writable, the others read-only.

HAProxy runs as Debian's `haproxy` account once it has bound its port and socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from topology.config import TestbedConfig

BACKEND = "web"
HAPROXY_USER = "haproxy"  # Debian's haproxy package creates it


@dataclass(frozen=True)
class ProxyTiming:
    """How fast HAProxy notices a dead server, and what it does with a request meanwhile."""

    check_interval_ms: int  # `inter`, and `fastinter` / `downinter`
    fall: int
    rise: int
    connect_timeout_ms: int
    # `timeout check`: how long a check waits for the answer once connected. None leaves it
    # unset, and then HAProxy waits `inter` in all (and connects within `inter` either way).
    check_timeout_ms: int | None
    passive: bool  # `observe layer4 error-limit 1 on-error mark-down`
    redispatch: bool  # `option redispatch 1`: every retry may go to another server
    retries: int


PRESETS = {
    # As shipped: HAProxy's defaults for a check (inter 2s fall 3 rise 2), 3 retries, no
    # redispatch, no watching of the client traffic; `timeout connect 5s` from Debian's
    # haproxy.cfg.
    "defaults": ProxyTiming(check_interval_ms=2000, fall=3, rise=2, connect_timeout_ms=5000,
                            check_timeout_ms=None, passive=False, redispatch=False, retries=3),
    # The fastest that gave no false failover in 60 s of load without a fault (docs/presets.md).
    # Its checks wait 100 ms for an answer, not their 20 ms interval: the secondary, taking
    # the whole load at once and promoted, answered two checks in a row in more than 20 ms,
    # and HAProxy marked the last server down and sent the traffic back to the flapping primary.
    "tuned": ProxyTiming(check_interval_ms=20, fall=2, rise=3, connect_timeout_ms=100,
                         check_timeout_ms=100, passive=True, redispatch=True, retries=3),
}


def server_states(answer: str) -> dict[str, int]:
    """Each server's operational state from `show servers state <backend>`: 2 is running.

    The answer is a version line, a `#` header naming the columns, and one line per server;
    the columns are found by name, so a version with more columns still reads.
    """
    lines = [line for line in answer.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("#")), None)
    if header is None:
        return {}
    columns = header.lstrip("# ").split()
    try:
        name_at, state_at = columns.index("srv_name"), columns.index("srv_op_state")
    except ValueError:
        return {}
    states = {}
    for line in lines:
        fields = line.split()
        if line.startswith("#") or len(fields) <= max(name_at, state_at) or not fields[state_at].isdigit():
            continue
        states[fields[name_at]] = int(fields[state_at])
    return states


RUNNING = 2  # srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping


def stuck_server(answer: str) -> str | None:
    """The server the stick table holds the traffic on, from `show table <backend>`
    (`0x...: key=1 use=0 exp=0 server_id=2 server_key=secondary`); None if it holds none."""
    for line in answer.splitlines():
        for field in line.split():
            if field.startswith("server_key="):
                return field.removeprefix("server_key=") or None
    return None


def chosen_server(states: dict[str, int], order: list[str], stuck: str | None = None) -> str | None:
    """Where HAProxy sends the traffic: the server the stick table holds it on while that one
    runs; else the first server of `order` (not a backup) while it runs, else the first running
    backup; None when none runs."""
    if stuck is not None and states.get(stuck) == RUNNING:
        return stuck
    return next((name for name in order if states.get(name) == RUNNING), None)


class HAProxy:
    """The proxy host's HAProxy: renders its config and gives its command."""

    def __init__(self, config: TestbedConfig, run_dir: Path, socket_dir: Path) -> None:
        self.config = config
        self.timing = PRESETS[config.failover.preset]
        self.dir = run_dir / "proxy" / "haproxy"
        self.config_file = self.dir / "haproxy.cfg"
        # The admin socket in the run's private folder: root's, mode 0600.
        self.admin_socket = socket_dir / "haproxy.sock"

    name = "haproxy"

    def render_config(self) -> str:
        t = self.timing
        servers = []
        for i, plan in enumerate(self.config.server_plans):
            backup = " backup" if i > 0 else ""
            servers.append(f"  server {plan.name} {plan.ip}:{self.config.web.port} check{backup}")
        passive = " observe layer4 error-limit 1 on-error mark-down" if t.passive else ""
        redispatch = "  option redispatch 1\n" if t.redispatch else ""
        check_timeout = f"  timeout check {t.check_timeout_ms}ms\n" if t.check_timeout_ms else ""
        # failback "never": every request sticks to the one entry's server while it is up.
        # Room for many entries and `nopurge`: each request takes a new entry before it is
        # merged into the one key's, and in a full table that would evict the real one, so
        # concurrent requests would find none and go to the first server (a ping-pong seen
        # with `size 1` once the primary came back).
        stick = ("  stick-table type integer size 1k nopurge\n  stick on int(1)\n"
                 if self.config.failover.failback == "never" else "")
        return f"""# HAProxy for the proxy host: failover.preset = "{self.config.failover.preset}"
global
  user {HAPROXY_USER}
  group {HAPROXY_USER}
  stats socket {self.admin_socket} mode 600 level admin
  log stdout format raw local0 notice
  maxconn 4096

defaults
  mode http
  log global
  timeout connect {t.connect_timeout_ms}ms
{check_timeout}  timeout client 10s
  timeout server 10s
  retries {t.retries}
{redispatch}
frontend vip
  bind {self.config.network.vip}:{self.config.web.port}
  default_backend {BACKEND}

backend {BACKEND}
{stick}  option httpchk GET /health
  http-check expect status 200
  default-server inter {t.check_interval_ms}ms fastinter {t.check_interval_ms}ms \
downinter {t.check_interval_ms}ms fall {t.fall} rise {t.rise}{passive}
{chr(10).join(servers)}
"""

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.render_config())

    def start_command(self) -> list[str]:
        """In the foreground (`-db`: its PID is the one recorded), logging to stdout."""
        return ["haproxy", "-db", "-f", str(self.config_file)]
