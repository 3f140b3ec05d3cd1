"""What moves the VIP (`failover.mechanism`): the parts each mechanism adds to the testbed.

Everything else is the same under all three: the hosts and addresses, the web service,
MariaDB master-master, the load, the faults, the write ledger, the metrics and the reports.

    sdn    the project's controller (os-ken) and its prober: the switch rewrites the VIP
    vrrp   keepalived on every server host, the VIP a real address of the master
    proxy  HAProxy on the `proxy` host, whose own address is the VIP

Each mechanism starts its parts at three points of the testbed's start (before the network,
after it, after the web servers), says who holds the VIP, and names the processes without
which it cannot act: a trial in which one of them died fails, saying so. Under vrrp and proxy
the databases' roles follow keepalived's or HAProxy's choice through `controller/follower.py`,
which writes the same event log as the controller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from controller import flows
from controller.follower import ask_haproxy
from controller.prober import WAKE_SOCKET
from experiments.results import files
from experiments.testbed.control import HolderFromLog, vip_placements
from experiments.testbed.daemons import ControllerDaemon, FollowerDaemon, ProberDaemon
from experiments.testbed.ovs import ofctl, vip_flow_cookies
from services.haproxy import BACKEND, HAProxy, chosen_server, server_states, stuck_server
from services.keepalived import Keepalived
from services.power_switch import POWER_SOCKET, PowerSwitch
from services.runner import StartupError
from services.secrets import RunSecrets
from services.web import PROJECT_ROOT

# The running Testbed (experiments/testbed/testbed.py), which imports this module: its config,
# folders, runner, hosts and controller client.
Testbed = Any


class Mechanism:
    """The parts of one mechanism in one testbed; by default, none."""

    name = ""
    # Processes without which the mechanism cannot act, and what their death means.
    essential: dict[str, str] = {}
    # Whether the web servers must accept connections to the VIP itself (it is their address).
    web_on_vip = False
    decider = "follower"  # the process that writes the event log of its decisions
    mover = ""  # what moves the VIP, as a run's progress lines name it

    def __init__(self, testbed: Testbed) -> None:
        self.testbed = testbed
        self._holder: HolderFromLog | None = None

    def before_network(self) -> None:
        pass

    def after_network(self) -> None:
        pass

    def after_web(self) -> None:
        pass

    def active_server(self) -> str | None:
        """Who holds the VIP now, as the mechanism's own event log says; None before it is placed."""
        if self._holder is None:
            self._holder = HolderFromLog(self.testbed.dir / files.CONTROLLER_EVENTS)
        return self._holder()

    def probe_wake(self, socket_dir: Path) -> Path | None:
        """The prober's wake socket that the web services say a lost database on; None: no
        prober, or `probe.agent` off."""
        return None

    def holder_on_data_plane(self) -> str | None:
        """Where the VIP's traffic goes now, read from the data plane itself rather than from
        any log: the server the after-trial data check must be made against. None when it
        goes nowhere (or the mechanism's part that knows is gone)."""
        return None

    def wait_vip_placed(self, placements_before: int, what: str) -> None:
        """Until the event log holds one more placement of the VIP than `placements_before`."""
        testbed = self.testbed
        testbed.runner.wait_for(
            what, lambda: vip_placements(testbed.dir / files.CONTROLLER_EVENTS) > placements_before,
            timeout=20, process=self.decider,
        )


class Sdn(Mechanism):
    """The controller before the network (the switch connects to it), the prober at the end."""

    name = "sdn"
    mover = "controller"
    essential = {"prober": "so the controller was blind"}
    decider = "controller"

    def before_network(self) -> None:
        testbed = self.testbed
        if testbed.config.failover.power_fence:
            # The power switch, before the controller, which may need it at once: it powers a
            # server off when it cannot fence its database (services/power_switch.py).
            testbed.power_switch = PowerSwitch(testbed.socket_dir / POWER_SOCKET, set(testbed.databases),
                                               testbed.faults.power_off)
            testbed.power_switch.start()  # Testbed.stop stops it
        self.start_controller(wait_for_vip=False)

    def after_network(self) -> None:
        self.wait_vip_placed(0, "the switch connects to the controller and the VIP is placed")

    def after_web(self) -> None:
        self.start_prober()

    def start_prober(self) -> None:
        """The prober in the monitor host; the controller is told its PID: datagrams from any
        other process are refused."""
        testbed = self.testbed
        prober = ProberDaemon(testbed.dir / files.CONFIG, testbed.probe_socket, testbed.dir / files.PROBES,
                              testbed.socket_dir / WAKE_SOCKET)
        process = testbed.runner.start(prober.name, prober.start_command(), host=testbed.host("monitor"),
                                       cwd=PROJECT_ROOT)
        files.write_atomic(testbed.socket_dir / files.PROBER_PID, f"{process.pid}\n")

    def start_controller(self, wait_for_vip: bool = True) -> None:
        """Start the controller and wait until it listens; with `wait_for_vip` (a restart, the
        switch already connected) also until it has placed the VIP on the switch again."""
        testbed = self.testbed
        placements = vip_placements(testbed.dir / files.CONTROLLER_EVENTS)
        controller = ControllerDaemon(
            testbed.config, testbed.dir / files.CONFIG, testbed.dir, testbed.socket_dir, testbed.probe_socket,
            testbed.secrets_dir / RunSecrets.FILES["controller_token"], testbed.socket_dir / files.PROBER_PID,
        )
        busy = controller.ports_in_use()
        if busy:
            raise StartupError(f"127.0.0.1 port(s) {', '.join(map(str, busy))} already in use: another "
                               "controller (an earlier run's?) would answer for this one; "
                               "`make clean` removes what killed runs left")
        testbed.runner.start(controller.name, controller.start_command(), cwd=PROJECT_ROOT)
        testbed.runner.wait_for(controller.readiness, controller.ready, timeout=20, process=controller.name)
        if wait_for_vip:
            self.wait_vip_placed(placements, "the switch connects to the controller and the VIP is placed")

    def active_server(self) -> str | None:
        return self.testbed.control.active_server()

    def probe_wake(self, socket_dir: Path) -> Path | None:
        return socket_dir / WAKE_SOCKET if self.testbed.config.probe.agent else None

    def holder_on_data_plane(self) -> str | None:
        """The server the switch's VIP flow names (its cookie)."""
        config = self.testbed.config
        dump = ofctl(config.fabric.clients_edge, "dump-flows", f"ip,nw_dst={config.network.vip}", check=False)
        holders = {flows.server_for_cookie(config, cookie) for cookie in vip_flow_cookies(dump)}
        holders.discard(None)
        return holders.pop() if len(holders) == 1 else None


class Vrrp(Mechanism):
    """keepalived in every server host, after the web servers; the follower before them."""

    name = "vrrp"
    mover = "keepalived"
    essential = {"follower": "so the databases' roles stopped following keepalived"}
    web_on_vip = True

    def after_web(self) -> None:
        testbed = self.testbed
        instances = [Keepalived(testbed.config, plan, testbed.host(plan.name).defaultIntf().name,
                                testbed.dir, testbed.socket_dir) for plan in testbed.config.server_plans]
        for keepalived in instances:
            keepalived.write_config()
            os.mkfifo(keepalived.fifo, 0o600)
        start_follower(testbed)
        # The first server first, and only once it is MASTER: with `nopreempt` every instance
        # starts as BACKUP, and whichever hears no advertisement first would keep the VIP.
        first, *others = instances
        testbed.runner.start(first.name, first.start_command(), host=testbed.host(first.plan.name))
        self.wait_vip_placed(0, f"{first.name} becomes MASTER and holds the VIP")
        for keepalived in others:
            testbed.runner.start(keepalived.name, keepalived.start_command(),
                                 host=testbed.host(keepalived.plan.name))

    def holder_on_data_plane(self) -> str | None:
        """The server host that has the VIP as an address of its own (keepalived's master)."""
        vip = self.testbed.config.network.vip
        holders = [plan.name for plan in self.testbed.config.server_plans
                   if f" {vip}/" in self.testbed.host(plan.name).cmd("ip -o -4 addr show")]
        return holders[0] if len(holders) == 1 else None


class Proxy(Mechanism):
    """HAProxy in the proxy host, after the web servers; the follower with it."""

    name = "proxy"
    mover = "HAProxy"
    essential = {"follower": "so the databases' roles stopped following HAProxy",
                 "haproxy": "so no client reached a server (the proxy is a single point of failure)"}

    def after_web(self) -> None:
        testbed = self.testbed
        haproxy = HAProxy(testbed.config, testbed.dir, testbed.socket_dir)
        haproxy.write_config()
        start_follower(testbed)
        testbed.runner.start(haproxy.name, haproxy.start_command(), host=testbed.host("proxy"))
        self.wait_vip_placed(0, "HAProxy sees the first server up and the follower places the VIP")

    def holder_on_data_plane(self) -> str | None:
        """The server HAProxy sends the traffic to, from its admin socket."""
        admin = HAProxy(self.testbed.config, self.testbed.dir, self.testbed.socket_dir).admin_socket
        try:
            states = server_states(ask_haproxy(admin, f"show servers state {BACKEND}"))
            stuck = stuck_server(ask_haproxy(admin, f"show table {BACKEND}"))
        except OSError:
            return None
        return chosen_server(states, [plan.name for plan in self.testbed.config.server_plans], stuck)


def start_follower(testbed: Testbed) -> None:
    follower = FollowerDaemon(testbed.dir / files.CONFIG, testbed.dir, testbed.socket_dir)
    testbed.runner.start(follower.name, follower.start_command(), cwd=PROJECT_ROOT)
    testbed.runner.wait_for(follower.readiness, follower.ready, timeout=20, process=follower.name)


MECHANISMS: dict[str, type[Mechanism]] = {kind.name: kind for kind in (Sdn, Vrrp, Proxy)}
