"""Mininet Cluster Edition's parts, as the testbed uses them for a server on another machine.

`mininet.examples.cluster` (Debian's mininet 2.3.0) gives `RemoteHost`, a host whose shell
runs on another machine through SSH, and `RemoteGRELink`, a link whose two ends are joined by
a GRE tunnel between the machines. It is used as a library only: never `mn --cluster`, whose
clean-up runs `mn -c` on every machine.

Two things are the testbed's own:
- `ProjectRemoteHost` reaches its machine with the testbed's SSH settings (port, key, known
  hosts, the run's master connection: topology/remote.py), where `RemoteHost` knows only a
  user and an address, and calls `sudo`.
- `HeadSwitch` is the OVS switch of the head, with what `RemoteGRELink` asks of the node at
  the head's end of a tunnel (its server, and commands in the root namespace).
"""

from __future__ import annotations

import subprocess
from typing import Any

from topology.remote import RemoteMachine


def remote_host_class() -> type:
    from mininet.examples.cluster import RemoteHost
    from mininet.node import Node

    class ProjectRemoteHost(RemoteHost):
        """A host whose shell (and so its network namespace) is on `machine`."""

        def __init__(self, name: str, machine: RemoteMachine, **params: Any) -> None:
            self.machine = machine  # before the shell starts: _popen needs it
            super().__init__(name, server=machine.config.address, user=machine.config.user, **params)

        def _popen(self, cmd: Any, sudo: bool = True, tt: bool = True, **params: Any) -> Any:
            # The shell is `mnexec ... bash` there, with a terminal (tt) as Mininet wants it.
            argv = cmd.split() if isinstance(cmd, str) else list(cmd)
            params.update(preexec_fn=self._ignoreSignal)
            return Node._popen(self, self.machine.argv(argv, tty=tt), **params)

    return ProjectRemoteHost


def head_switch_class() -> type:
    from mininet.node import OVSSwitch
    from mininet.util import quietRun

    class HeadSwitch(OVSSwitch):
        """An OVS switch on the head that may hold the head's end of a GRE tunnel."""

        server = "localhost"
        serverIP = "127.0.0.1"  # noqa: N815 - Mininet Cluster Edition's name
        isRemote = False  # noqa: N815 - Mininet Cluster Edition's name

        def rcmd(self, *cmd: str, **_params: Any) -> str:
            """A command in the head's root namespace (a switch has no namespace of its own)."""
            return quietRun(cmd[0] if len(cmd) == 1 else list(cmd))

    return HeadSwitch


def ssh_link_class() -> type:
    """Mininet Cluster Edition's SSH tunnel (`ssh -o Tunnel=ethernet -w`, a tap device at each
    end), with tap numbers of its own for each link and each end. Cluster Edition's always uses
    tap9 at both ends: one link per pair of machines, and none at all when the two "machines"
    share a kernel (a simulated one), where both ends would be the same device."""
    from mininet.examples.cluster import RemoteLink
    from mininet.util import decode

    class SSHTunnelLink(RemoteLink):
        next_tap = 40  # the next free pair of tap numbers (this link's end here, its end there)

        def makeTunnel(self, node1: Any, node2: Any, intfname1: str, intfname2: str,  # noqa: N802
                       addr1: str | None = None, addr2: str | None = None) -> Any:
            if node2.server == "localhost":  # node1 is the head's end
                return self.makeTunnel(node2, node1, intfname2, intfname1, addr2, addr1)
            here, there = SSHTunnelLink.next_tap, SSHTunnelLink.next_tap + 1
            SSHTunnelLink.next_tap += 2
            # ssh makes both tap devices; they go when it ends. It prints "@" once they are there.
            # A connection of its own: over the run's master connection, -w is silently ignored.
            direct = RemoteMachine(node2.machine.config)
            tunnel = subprocess.Popen(
                direct.ssh("-n", "-o", "Tunnel=ethernet", "-w", f"{here}:{there}") + ["echo @"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True)
            said = decode(tunnel.stdout.read(1))
            if said != "@":
                tunnel.kill()
                raise RuntimeError(f"the SSH tunnel to {node2.machine.name} did not come up: "
                                   f"{said}{decode(tunnel.stdout.read())}".strip())
            for node, tap, name, addr in ((node1, here, intfname1, addr1), (node2, there, intfname2, addr2)):
                problem = node.rcmd(f"ip link set tap{tap} netns {node.pid}").strip()
                problem = problem or node.cmd(f"ip link set tap{tap} name {name}"
                                              + (f" address {addr}" if addr else "")).strip()
                if problem:
                    tunnel.kill()
                    raise RuntimeError(f"the SSH tunnel's tap{tap} on {node.name}: {problem}")
            return tunnel

    return SSHTunnelLink


def gre_link_class() -> type:
    """A GRE tunnel between the machines. It adds 42 bytes to each packet (outer IPv4 20, GRE
    with its key 8, the inner Ethernet header 14): Mininet Cluster Edition sets an MTU of 1450
    on both ends, which fits an underlay of 1500."""
    from mininet.examples.cluster import RemoteGRELink

    return RemoteGRELink
