"""The fault primitives: what a scenario, the soak or the demo does to a running testbed, and
how a server is brought back whole.

    testbed.faults.crash("primary")       web server and database killed, link down
    testbed.faults.recover("primary")     link up, processes resumed, dead ones started again

Each primitive does one thing to the real parts (a signal to a recorded process, a link set
down, a flow in the switch) and remembers what it left (links down, servers frozen), so
that `recover` and `bring_back` undo exactly that.

What the kernel saw of a fault is recorded as it happens, as a `kernel_saw` event: a cable
cut the moment the interface is down (set in this process, with no `ip` command to start),
a killed process the moment it and its children have exited (memory freed, sockets closed:
only then does a dead web server's kernel refuse connections). That is the first stage of a
failover's budget (experiments/analysis/stages.py), and its floor on this machine.
"""

from __future__ import annotations

import fcntl
import signal
import socket
import struct
import threading
from typing import Any, Protocol

import pymysql

from experiments.testbed.ovs import ofctl
from services.mariadb import MariaDB
from services.runner import ExitWatch, ProcessRunner
from services.web import WebService
from topology.config import TestbedConfig

FAULT_COOKIE = "0xfa17"  # marks the flows a fault adds to the switch (never the controller's)
CONTROLLER_STOP_WAIT_S = 5.0
EXIT_WITNESS_S = 5.0  # how long a killed process is watched for its end

# ioctl(2) numbers of <linux/sockios.h> and the flag of <linux/if.h>.
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def set_interface_up(name: str, up: bool) -> None:
    """Set an interface of this network namespace up or down, as `ip link set` does, in this
    process: starting an `ip` command would add 2 to 5 ms of fork and exec to the fault."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        flags = flags | IFF_UP if up else flags & ~IFF_UP
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags))


class RunningTestbed(Protocol):
    """What the faults use of a running testbed (experiments/testbed/testbed.py)."""

    config: TestbedConfig
    runner: ProcessRunner
    databases: dict[str, MariaDB]
    webs: dict[str, WebService]

    def host(self, name: str) -> Any: ...
    mechanism: Any  # experiments/testbed/mechanisms.py: restart_controller needs the Sdn one

    def start_web(self, server: str, wait: bool = True) -> None: ...

    def record(self, kind: str, **fields: object) -> float: ...


class Faults:
    """The faults of one running testbed, and the state they left."""

    def __init__(self, testbed: RunningTestbed) -> None:
        self.testbed = testbed
        self.runner = testbed.runner
        self.links_down: set[str] = set()
        self.cables_down: set[str] = set()  # a fabric's edge-to-core cables (topology/fabric.py)
        self.hung: set[str] = set()

    # -- servers ------------------------------------------------------------------------

    def crash(self, server: str) -> None:
        """The whole server dies: web server and database killed, link down. The kills go
        first; the link is cut right after them, while the killed processes are still freeing
        their memory (a few milliseconds: see the module docstring)."""
        killed = [self._kill(server, self.testbed.webs[server].name),
                  self._kill(server, self.testbed.databases[server].name)]
        self.link_down(server)
        for watch in killed:
            self._witness(watch)

    def kill_web(self, server: str) -> None:
        self._witness(self._kill(server, self.testbed.webs[server].name))

    def kill_database(self, server: str) -> None:
        self._witness(self._kill(server, self.testbed.databases[server].name))

    def _kill(self, server: str, name: str) -> tuple[ExitWatch, str, str] | None:
        """SIGKILL to `name`'s group, watched (a watch of when the last of them exited)."""
        watch = self.runner.watch_exit(name)
        self.runner.signal(name, signal.SIGKILL)
        return None if watch is None else (watch, server, name)

    def _witness(self, killed: tuple[ExitWatch, str, str] | None) -> None:
        """Record the end of a killed group when it comes, from a thread of its own: started
        after the fault's every act, since a thread's start waits for it to run, which the
        dying processes' freeing of their memory can hold up for milliseconds."""
        if killed is not None:
            threading.Thread(target=self._record_exit, args=killed, name=f"exit of {killed[2]}",
                             daemon=True).start()

    def _record_exit(self, watch: ExitWatch, server: str, name: str) -> None:
        gone_at = watch.wait(EXIT_WITNESS_S)
        if gone_at is not None:
            self.testbed.record("kernel_saw", server=server, detail=f"{name} exited", at=gone_at)

    def hang(self, server: str) -> None:
        """Freeze `server`'s web server and database (SIGSTOP): alive, but answering nothing."""
        self.hung.add(server)
        for name in (self.testbed.webs[server].name, self.testbed.databases[server].name):
            self.runner.signal(name, signal.SIGSTOP)

    def power_off(self, server: str) -> str | None:
        """The power switch's act (services/power_switch.py): `server`'s database and web server
        killed, as a power cut would; `recover` starts them again. None: done."""
        self.testbed.record("power_off", server=server)
        for name in (self.testbed.databases[server].name, self.testbed.webs[server].name):
            self.runner.signal(name, signal.SIGKILL)  # a frozen process dies too
        return None

    def resume(self, server: str) -> None:
        self.hung.discard(server)
        for name in (self.testbed.databases[server].name, self.testbed.webs[server].name):
            self.runner.signal(name, signal.SIGCONT)

    def restart_database(self, server: str) -> None:
        """Start `server`'s database again (after a crash) and wait until it answers.

        The sessions its peers still hold for its dead replica threads are closed first, so
        that it catches up as soon as it is back (see `MariaDB.drop_replica_sessions`).
        """
        databases = self.testbed.databases
        db = databases[server]
        for name, peer in databases.items():
            if name != server and name not in self.hung and self.runner.processes[peer.name].running():
                try:
                    peer.drop_replica_sessions(db.plan.ip)
                except (pymysql.MySQLError, OSError):
                    pass  # a peer that does not answer holds up nothing: it sends nothing either
        self.runner.start(db.name, db.restart_command(), host=self.testbed.host(server))
        self.runner.wait_for(f"{db.name} accepts queries", db.is_ready, timeout=60, process=db.name)
        db.resume_replication()

    def recover(self, server: str, web: bool = True) -> list[str]:
        """Bring `server` back whole after any fault: link up, frozen processes resumed, the
        database (and with `web` the web server) started again if dead, each waited for.
        Returns what it did, one line each.

        Its database rejoins as a replica and catches up on its own; it holds no VIP until the
        controller decides so (a failback, or the next failure of the active server).
        """
        done = []
        db, web_service = self.testbed.databases[server], self.testbed.webs[server]
        if server in self.links_down:
            self.link_up(server)
            done.append(f"link of {server} up")
        if server in self.hung:
            self.resume(server)
            done.append(f"{db.name} and {web_service.name} resumed")
        if not self.runner.processes[db.name].running():
            self.restart_database(server)
            done.append(f"{db.name} restarted")
        if web and not self.runner.processes[web_service.name].running():
            self.testbed.start_web(server)
            done.append(f"{web_service.name} restarted")
        return done

    def bring_back(self) -> list[str]:
        """Undo what the faults left on every server, web servers aside (after a trial only the
        data matters): returns what it did, one line each."""
        lines = [f"cable {name} up" for name in sorted(self.cables_down)]
        for name in list(self.cables_down):
            self.cable_up(name)
        return lines + [line for server in self.testbed.databases for line in self.recover(server, web=False)]

    # -- the network --------------------------------------------------------------------

    def link_down(self, server: str) -> None:
        """Cut `server`'s cable: the switch's side first, so the switch sees it at once."""
        self.links_down.add(server)
        self._set_link(server, "down")

    def link_up(self, server: str) -> None:
        self.links_down.discard(server)
        self._set_link(server, "up")

    def _set_link(self, server: str, state: str) -> None:
        # The switch's interface first, straight from this process (root namespace): the
        # switch sees the cut within microseconds of the fault, not after a command's start or
        # the tens of milliseconds of a round trip through Mininet's shells (the host's side).
        plan = self.testbed.config.server(server)
        set_interface_up(f"{plan.switch}-eth{plan.port}", state == "up")
        if state == "down":
            self.testbed.record("kernel_saw", server=server, detail="link down")
        host = self.testbed.host(server)
        host.cmd(f"ip link set dev {host.defaultIntf().name} {state}")

    def cable_down(self, name: str) -> None:
        """Cut one of a fabric's edge-to-core cables (Link.name, like edge2-core1): both ends,
        so that both switches see their port go down, as with a real cable pulled."""
        self.cables_down.add(name)
        self._set_cable(name, "down")

    def cable_up(self, name: str) -> None:
        self.cables_down.discard(name)
        self._set_cable(name, "up")

    def _set_cable(self, name: str, state: str) -> None:
        links = {link.name: link for link in self.testbed.config.fabric.links}
        if name not in links:
            raise ValueError(f"no cable {name!r}: the fabric's cables are {', '.join(links) or 'none'}")
        for interface in links[name].interfaces:
            set_interface_up(interface, state == "up")

    def cut_replication(self) -> None:
        """Drop the databases' traffic (TCP 3306) in the switches; clients and probes still pass."""
        for switch in self.testbed.config.fabric.switches:
            for direction in ("tp_dst", "tp_src"):
                ofctl(switch, "add-flow",
                      f"cookie={FAULT_COOKIE},priority=400,tcp,{direction}=3306,actions=drop")

    def restore_replication(self) -> None:
        for switch in self.testbed.config.fabric.switches:
            ofctl(switch, "del-flows", f"cookie={FAULT_COOKIE}/-1")

    # -- the controller -----------------------------------------------------------------

    def kill_prober(self) -> None:
        """The prober dies: the controller hears no probe any more and must say so."""
        self.runner.signal("prober", signal.SIGKILL)

    def restart_prober(self) -> None:
        """Start a new prober (its PID told to the controller again) after `kill_prober`."""
        self.testbed.mechanism.start_prober()

    def kill_controller(self) -> None:
        """The controller crashes; the switch (fail-mode secure) keeps forwarding on its flows."""
        self.runner.signal("controller", signal.SIGKILL)
        self.runner.processes["controller"].popen.wait(CONTROLLER_STOP_WAIT_S)

    def restart_controller(self) -> None:
        """Start a new controller and wait until it has read the VIP's place from the switch."""
        self.testbed.mechanism.start_controller()

