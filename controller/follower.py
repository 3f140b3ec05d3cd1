"""The databases' roles under keepalived or HAProxy: `python -m controller.follower`.

With `failover.mechanism = "vrrp"` or `"proxy"` no controller decides where the VIP goes:
keepalived or HAProxy does. What is left is to make the right database writable, which
neither does by itself (a classic set-up runs notify scripts for it). This process follows
their choice, in the root namespace:

- vrrp: it reads each server's keepalived notify FIFO (`INSTANCE "VIP" MASTER 150`). A server
  whose instance becomes MASTER holds the VIP: its database is made writable. A server whose
  instance leaves MASTER (BACKUP, FAULT, STOP) gave it up: its database is made read-only.
  Each server acts on its own database only, as each server's notify scripts would.
- proxy: it asks HAProxy's admin socket for the servers' states every POLL_S; the server
  HAProxy sends the traffic to (`services.haproxy.chosen_server`) is made writable, the
  server it sent it to before read-only. With failback "never", HAProxy's stick table says
  which server the traffic is held on, and it is read too.

It writes the same event log as the controller (controller-events.jsonl, with `source`
"follower"): `vip_installed`, `vip_moved`, `no_healthy_server`, `db_writable`, ... so that
the experiments read every mechanism's decisions from one file. The promotions and fences
are `FencePolicy`'s, carried out by `DatabaseFence`: the same retries as under the controller.

Fail loud: if a reader ends for any reason, the follower logs `follower_input_died` and exits
with code 1, and the trial fails saying so.
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from controller.eventlog import EVENT_LOG, EventLog
from controller.failover import NO_HEALTHY_SERVER, VIP_INSTALLED, VIP_MOVED
from controller.fence_policy import FenceAction, FencePlan, FencePolicy
from controller.fencing import DatabaseFence
from services.haproxy import BACKEND, HAProxy, chosen_server, server_states, stuck_server
from services.keepalived import INSTANCE, notify_fifo, parse_notify_line
from topology.config import ConfigError, TestbedConfig

POLL_S = 0.01  # how often HAProxy's admin socket is asked
TICK_S = 0.01  # the longest the follower waits without looking at the time
ADMIN_TIMEOUT_S = 1.0


class Follower:
    """The decisions: the VIP's holder from the peer's reports, and what the databases must be.

    Fed from one thread (the main loop), with the time `now` passed in; it answers with the
    events it logged and the fence actions to run.
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.policy = FencePolicy()
        self.holder: str | None = None
        self.last_holder: str | None = None  # who held it last, also while no one does
        self.placed = False  # the VIP was placed once: later placements are moves
        self.states: dict[str, Any] = {}

    def vrrp_state(self, server: str, state: str, now: float) -> FencePlan:
        """`server`'s keepalived instance entered `state`."""
        self.log.write("vrrp_state", server=server, state=state)
        self.states[server] = state
        if state == "MASTER":
            plan = self.policy.vip_adopted(server, now)
            self._placed(server, f"{server}'s keepalived became MASTER")
            return plan
        if self.holder == server:
            self.holder = None
        return self.policy.vip_released(server, now)

    def proxy_states(self, states: dict[str, int], order: list[str], now: float,
                     stuck: str | None = None) -> FencePlan:
        """HAProxy's servers are in `states` (its srv_op_state); its stick table holds the
        traffic on `stuck` (failback "never"), or on none."""
        for server, state in states.items():
            if self.states.get(server) != state:
                self.log.write("proxy_server_state", server=server, state=state)
        self.states = dict(states)
        chosen = chosen_server(states, order, stuck)
        if chosen == self.holder:
            return FencePlan()
        previous = self.holder
        if chosen is None:
            self.holder = None
            self.log.write(NO_HEALTHY_SERVER, server=None, reason="HAProxy has no server up")
            return self.policy.vip_released(previous, now) if previous else FencePlan()
        plan = self.policy.vip_moved(chosen, previous, now)
        self._placed(chosen, "HAProxy sends the traffic to it")
        return plan

    def result(self, action: FenceAction, ok: bool, detail: str, now: float) -> FencePlan:
        return self.policy.result(action, ok, detail, now)

    def handle(self, message: tuple, order: list[str], now: float) -> FencePlan:
        """One message of the inputs' queue (a VRRP state, HAProxy's states, a fence's result, or
        a tick when none came), and the time: a promotion waiting for a fence may go ahead."""
        if message[0] == "vrrp":
            plan = self.vrrp_state(message[1], message[2], now)
        elif message[0] == "proxy":
            plan = self.proxy_states(message[1], order, now, message[2])
        elif message[0] == "result":
            plan = self.result(message[1], message[2], message[3], now)
        else:
            plan = FencePlan()
        return plan.add(self.policy.tick(now))

    def _placed(self, server: str, reason: str) -> None:
        previous, self.holder, self.last_holder = self.last_holder, server, server
        if not self.placed:
            self.placed = True
            self.log.write(VIP_INSTALLED, server=server)
        else:
            self.log.write(VIP_MOVED, server=server, reason=reason, previous=previous)


# -- the inputs, each in a thread of its own, into one queue ------------------------------------


def read_fifo(path: Path, server: str, inbox: queue.Queue) -> None:
    """Every state change keepalived writes to `server`'s FIFO, as ("vrrp", server, state)."""
    # Read and write: the open never blocks for a writer, and a keepalived that restarts
    # (closing its end) never makes the read see the end of the file.
    fd = os.open(path, os.O_RDWR)
    with os.fdopen(fd, "r", buffering=1) as fifo:
        for line in fifo:
            parsed = parse_notify_line(line)
            if parsed and parsed[0] == INSTANCE:
                inbox.put(("vrrp", server, parsed[1]))


def ask_haproxy(admin_socket: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(ADMIN_TIMEOUT_S)
        conn.connect(str(admin_socket))
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def poll_haproxy(admin_socket: Path, inbox: queue.Queue, stop: threading.Event) -> None:
    """HAProxy's servers' states and its stick table's server every POLL_S, as
    ("proxy", states, stuck), when they changed.

    A socket that does not answer yet (HAProxy starting) is asked again; one that stops
    answering after it did is said once, as ("silent", why), and asked again."""
    last: tuple | None = None
    answered = False  # since the last time it did not: a silence is said once, not every poll
    while not stop.wait(POLL_S):
        try:
            states = server_states(ask_haproxy(admin_socket, f"show servers state {BACKEND}"))
            stuck = stuck_server(ask_haproxy(admin_socket, f"show table {BACKEND}"))
        except OSError as error:
            if answered:
                inbox.put(("silent", f"{type(error).__name__}: {error}"))
            answered = False
            continue
        answered = True
        if states and (states, stuck) != last:
            last = (states, stuck)
            inbox.put(("proxy", states, stuck))


def guarded(target: Any, inbox: queue.Queue, name: str, *args: Any) -> threading.Thread:
    """A thread running `target`, whose end (by an exception or not) is told to the main loop."""

    def run() -> None:
        try:
            target(*args)
            inbox.put(("died", name, "it returned"))
        except BaseException as error:  # noqa: BLE001 - any end of an input is reported
            inbox.put(("died", name, f"{type(error).__name__}: {error}"))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.follower", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="resolved config (JSON) of the run")
    parser.add_argument("--run-dir", type=Path, required=True, help="the run folder (event log)")
    parser.add_argument("--socket-dir", type=Path, required=True, help="the run's private folder")
    args = parser.parse_args()
    try:
        config = TestbedConfig.from_file(args.config)
    except ConfigError as exc:
        print(f"follower: cannot use {args.config}: {exc}", file=sys.stderr)
        return 2
    mechanism = config.failover.mechanism
    if mechanism not in ("vrrp", "proxy"):
        print(f"follower: failover.mechanism is {mechanism!r}: the controller decides, not the follower",
              file=sys.stderr)
        return 2

    log = EventLog(args.run_dir / EVENT_LOG, source="follower")
    follower = Follower(log)
    inbox: queue.Queue = queue.Queue()
    fence = DatabaseFence(args.socket_dir,
                          lambda action, ok, detail: inbox.put(("result", action, ok, detail)))
    stop = threading.Event()
    order = [plan.name for plan in config.server_plans]
    if mechanism == "vrrp":
        for plan in config.server_plans:
            fifo = notify_fifo(args.socket_dir, plan.name)
            guarded(read_fifo, inbox, f"fifo-{plan.name}", fifo, plan.name, inbox)
    else:
        admin = HAProxy(config, args.run_dir, args.socket_dir).admin_socket
        guarded(poll_haproxy, inbox, "haproxy-poll", admin, inbox, stop)
    log.write("follower_started", mechanism=mechanism, preset=config.failover.preset)
    print(f"follower: following {mechanism} ({config.failover.preset})", flush=True)
    while True:
        try:
            message = inbox.get(timeout=TICK_S)
        except queue.Empty:
            message = ("tick",)
        now = time.time()
        if message[0] == "died":
            log.write("follower_input_died", input=message[1], detail=message[2])
            print(f"follower: input {message[1]} ended ({message[2]}): the databases' roles no longer "
                  "follow", file=sys.stderr, flush=True)
            stop.set()
            return 1
        if message[0] == "silent":
            # The roles stay as they are: what HAProxy does meanwhile is not known.
            log.write("haproxy_unreachable", detail=message[1])
            continue
        plan = follower.handle(message, order, now)
        for kind, fields in plan.events:
            log.write(kind, **fields)
        for action in plan.actions:
            fence.run(action)


if __name__ == "__main__":
    sys.exit(main())
