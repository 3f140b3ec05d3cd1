"""The controller's status endpoint: JSON on 127.0.0.1 only, and commands that need a token.

    GET  /status               who holds the VIP, each server's probe state and last probe
                               latency and age, whether the prober is heard, the probe
                               datagrams dropped, the failback policy and the last events
    POST /command/failover     move the VIP to the next server that is up
    POST /command/failback     move it back to the most preferred server (if caught up)

A command needs `Authorization: Bearer <token>`, the token generated for the run and kept in
a file only root can read. The server listens on the root namespace's loopback: no Mininet
host can reach it (each host has its own loopback, and the root namespace has no address in
the emulated network).

The HTTP server runs in its own thread; it never touches the controller's state. It hands
each request to `ask`, which passes it to the app's event loop and waits for the answer.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from controller.failover import VIP_MOVED, Decision, FailoverMachine

COMMAND_PREFIX = "/command/"
NOT_PLACED = "the controller has not placed the VIP yet"

# ask(command or None for status) -> (HTTP status, JSON body)
Ask = Callable[[str | None], tuple[int, dict[str, Any]]]


def command_reply(placed: bool, decisions: Sequence[Decision], active: str) -> tuple[int, dict[str, Any]]:
    """The HTTP answer to a command: 200 when it moved the VIP, 409 when it was refused or
    came before the VIP was placed (a conflict with the controller's state, not a bad request).
    The body lists the decisions and who holds the VIP after them."""
    if not placed:
        return 409, {"error": NOT_PLACED}
    refused = any(d.kind != VIP_MOVED for d in decisions)
    return (409 if refused else 200), {"decisions": [asdict(d) for d in decisions], "active": active}


def server_status(machine: FailoverMachine, name: str, probe: Any, now: float) -> dict[str, Any]:
    """One server's entry of /status; `probe` is its last EventProbeResult, or None. Its
    state is never shown as current when it is not: `last_probe_age_s` says how old the last
    result is, and `probe_stale` whether that is older than the silence budget (or none came)."""
    state, age = machine.servers[name], machine.probe_age_s(name, now)
    return {
        "up": state.up,
        "port_up": state.port_up,
        "consecutive_failures": state.failures,
        "consecutive_successes": state.successes,
        "last_probe_ok": probe.ok if probe else None,
        "last_probe_latency_ms": probe.latency_ms if probe else None,
        "last_probe_age_s": round(age, 3) if age is not None else None,
        "probe_stale": machine.probe_stale(name, now),
        "db_read_only": probe.read_only if probe else None,
        "gtid": state.gtid,
        "replication": state.replication,
        "replication_error": state.replication_error,
    }


def status_body(machine: FailoverMachine, vip: str, last_probe: Mapping[str, Any], now: float,
                prober: dict[str, Any], dropped: Mapping[str, int], recent_events: list[dict[str, Any]],
                cables: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole of /status: who holds the VIP, each server's entry (`last_probe`: its last
    EventProbeResult by name), the prober's (`prober_status`), the datagrams dropped by reason,
    the last events, and on a fabric each cable (up, and what the LLDP check found)."""
    return {**({"cables": cables} if cables is not None else {}),
        "active": machine.active,
        "vip": vip,
        "failback": machine.failback,
        "servers": {name: server_status(machine, name, last_probe.get(name), now)
                    for name in machine.servers},
        "prober": prober,
        "probes_dropped": dict(dropped),
        "recent_events": recent_events,
    }


def prober_status(machine: FailoverMachine, now: float, pid: int | None,
                  loop_alive: Mapping[str, bool]) -> dict[str, Any]:
    """/status's `prober`: whether probe results arrive (`silent`: none within the budget, or
    none yet), the PID heard from (with a PID file), and whether the controller's own probe
    loops still run (`receiver_alive`, `ticker_alive`)."""
    age, budget = machine.last_result_age_s(now), machine.silence_budget_s
    return {
        "silent": age is None or (budget is not None and age > budget),
        "last_result_age_s": round(age, 3) if age is not None else None,
        "budget_s": round(budget, 3) if budget is not None else None,
        "pid": pid,
        **{f"{name}_alive": running for name, running in loop_alive.items()},
    }


class StatusServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, token: str, ask: Ask) -> None:
        super().__init__(("127.0.0.1", port), StatusHandler)
        self.token = token
        self.ask = ask


class StatusHandler(BaseHTTPRequestHandler):
    server: StatusServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path != "/status":
            self._answer(404, {"error": "try GET /status"})
            return
        self._answer(*self.server.ask(None))

    def do_POST(self) -> None:  # noqa: N802
        if not self.path.startswith(COMMAND_PREFIX):
            self._answer(404, {"error": "try POST /command/failover or /command/failback"})
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
            self._answer(401, {"error": "a command needs the run's token: Authorization: Bearer <token>"})
            return
        self._answer(*self.server.ask(self.path[len(COMMAND_PREFIX):]))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass  # no access log; and never a reverse DNS look-up of the client

    def address_string(self) -> str:
        return self.client_address[0]
