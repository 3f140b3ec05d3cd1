"""The emulated network: Open vSwitch switches, a client, a monitor and the server hosts.

With `network.topology` "single" (the default), one switch:

    client ----+
    monitor ---+-- s1 (OVS, userspace datapath, OpenFlow 1.3, fail-mode secure)
    primary ---+        |
    secondary -+        +-- controller on 127.0.0.1:<controller_port> (root namespace)
   (proxy) ----+

With "two-tier" or "leaf-spine", edge and core switches as topology/fabric.py plans them,
every edge cabled to every core; every switch is the controller's.

Every host sits on port `HostPlan.port` of switch `HostPlan.switch`, with the IP and MAC of the config's
network plan, so the controller knows where each server is without discovering it.
Under keepalived or HAProxy (`failover.mechanism` vrrp or proxy) there is no controller: the
switch runs in fail-mode standalone, a plain learning switch; with HAProxy, the `proxy` host
has the VIP as its address.
The secondary (and any server with `cpu` below 1) is a `CPULimitedHost`: the weaker machine
of the published experiment.
A server the config places on another machine (`[placement]`) is a Mininet Cluster Edition
`RemoteHost` there, its link to its switch a GRE or SSH tunnel between the machines, as that
machine's `tunnel` says (topology/cluster.py).

Two things this machine needs (see ../shared/ENVIRONMENT.md): the kernel has no
openvswitch module, so the switch uses the userspace datapath; and TCP through that
datapath fails unless TX checksum offload is off on every host interface.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from topology.cluster import gre_link_class, head_switch_class, remote_host_class, ssh_link_class
from topology.config import HostPlan, TestbedConfig
from topology.remote import RemoteMachine

if TYPE_CHECKING:
    from mininet.net import Mininet


CPU_PERIOD_US = 10_000  # the CFS period of a CPU-limited host


class NetworkError(RuntimeError):
    """The network could not be made as planned; the message says what is missing."""


def project_controller() -> type:
    from mininet.node import RemoteController

    class ProjectController(RemoteController):
        """The testbed's own controller, which the experiment starts and waits for itself.

        Mininet's RemoteController checks the port with `telnet` and decodes what comes back
        as UTF-8; our controller answers with a binary OpenFlow hello, which can crash that
        check. The testbed has already waited for the port when the network is built.
        """

        def checkListening(self) -> None:  # noqa: N802 - Mininet's name
            pass

    return ProjectController


def build_network(config: TestbedConfig, machines: dict[str, RemoteMachine] | None = None) -> Mininet:
    """Create (but do not start) the Mininet network described by `config`; `machines` reach
    the other machines its placement names (by name)."""
    # Imported here so that the config and the pure parts stay importable without Mininet.
    from functools import partial

    from mininet.link import Link
    from mininet.net import Mininet
    from mininet.node import CPULimitedHost, Host, OVSSwitch

    net = Mininet(
        topo=None,
        build=False,
        ipBase=config.network.subnet,
        autoSetMacs=False,
        controller=None,
        link=Link,
        waitConnected=False,
    )
    sdn = config.failover.mechanism == "sdn"
    if sdn:
        net.addController(
            project_controller()("c0", ip="127.0.0.1", port=config.network.controller_port)
        )
    fabric = config.fabric
    # batch: Mininet then creates every bridge and port with ovs-vsctl run from here, split to
    # fit the command line. Without it (Mininet sets it only for a class it sees itself, not for
    # a partial) each switch's one ovs-vsctl command goes through its shell's terminal, whose
    # line ends at 4,096 characters: a switch with about 60 ports (64 clients) was silently
    # never made, and the run waited for a switch that did not exist.
    placed = {plan.name: config.machine_of(plan.name) for plan in config.host_plans}
    switch_class = head_switch_class() if any(placed.values()) else OVSSwitch
    switches = {
        name: net.addSwitch(name, dpid=f"{fabric.dpid(name):016x}",
                            cls=partial(switch_class, datapath="user", protocols="OpenFlow13",
                                        failMode="secure" if sdn else "standalone", batch=True))
        for name in fabric.switches
    }

    def add_host(plan: HostPlan, cpu: float = 1.0) -> None:
        params = {"ip": f"{plan.ip}/{config.prefix_len}", "mac": plan.mac}
        machine = placed[plan.name]
        if machine is not None:  # the config allows only a cpu of 1 there (its own)
            _add_remote_host(net, plan, (machines or {})[machine.name], switches[plan.switch], params)
            return
        if cpu < 1.0:
            # Mininet applies `cpu` (a share of the whole machine) when it configures the host.
            # A short CFS period makes it a slower machine, not one that stalls: with the
            # default 100 ms, a burst uses up the quota and the host freezes for tens of ms.
            host = net.addHost(plan.name, cls=CPULimitedHost, cpu=cpu, period_us=CPU_PERIOD_US, **params)
        else:
            host = net.addHost(plan.name, cls=Host, **params)
        net.addLink(host, switches[plan.switch], port2=plan.port)

    cpu = {server.name: server.cpu for server in config.servers}
    for plan in config.host_plans:
        add_host(plan, cpu.get(plan.name, 1.0))
    for link in fabric.links:
        net.addLink(switches[link.edge], switches[link.core], port1=link.edge_port, port2=link.core_port)
    return net


def _add_remote_host(net: Mininet, plan: HostPlan, machine: RemoteMachine, switch: object,
                     params: dict[str, str]) -> None:
    """A host on another machine, its link to its switch a GRE tunnel between the machines."""
    from functools import partial

    host = net.addHost(plan.name, cls=partial(remote_host_class(), machine=machine), **params)
    tunnel = gre_link_class() if machine.config.tunnel == "gre" else ssh_link_class()
    net.addLink(host, switch, port2=plan.port, cls=tunnel)


# Every host opens a new connection per request (the load generator, the prober, HAProxy), and
# the side that closes first keeps each one in TIME_WAIT for 60 s. With Linux's default range
# of 28,232 ports, 500 connections a second use them all up in under a minute: the whole range
# and reuse of a TIME_WAIT port (when its timestamps allow) keep a long run at 1,000 a second
# from running out. Each host's network namespace has its own copy of these settings, which go
# with it: nothing to restore.
HOST_SYSCTLS = {"net.ipv4.ip_local_port_range": "1024 65535", "net.ipv4.tcp_tw_reuse": "1"}
# Never taken as a connection's own port: the ports the hosts' services listen on (MariaDB,
# the bench's responder), else a database restarted after a crash could find its port taken.
RESERVED_PORTS = (3306, 8080)


def start_network(net: Mininet, web_port: int = 80) -> None:
    """Build and start the network, then make TCP work through the userspace datapath, and
    give each host the ports a long run needs (all but the listening ones)."""
    sysctls = {**HOST_SYSCTLS,
               "net.ipv4.ip_local_reserved_ports": ",".join(map(str, sorted({web_port, *RESERVED_PORTS})))}
    net.build()
    for host in net.hosts:
        for intf in host.intfList():
            if intf.name != "lo":
                # Without this, TCP SYNs are dropped by the userspace datapath (bad checksums).
                host.cmd(f"ethtool -K {intf.name} tx off")
        for key, value in sysctls.items():
            host.cmd(f"sysctl -q -w {key}='{value}'")
            now = " ".join(host.cmd(f"sysctl -n {key}").split())
            if now != value:
                raise NetworkError(f"{host.name}: {key} is {now!r} after setting it to {value!r}")
    net.start()
    # Mininet says nothing when ovs-vsctl fails: a switch it did not make must be said here,
    # not found 20 s later as a controller that no switch connects to.
    missing = [switch.name for switch in net.switches
               if subprocess.run(["ovs-vsctl", "br-exists", switch.name], capture_output=True,
                                 timeout=10).returncode != 0]
    if missing:
        raise NetworkError(f"Mininet did not make the switch(es) {', '.join(missing)} in Open vSwitch "
                           "(see /var/log/openvswitch/ovs-vswitchd.log)")


def host_interfaces(net: Mininet) -> list[str]:
    """Names of every interface the network created in the root namespace (the switch side)."""
    return [intf.name for switch in net.switches for intf in switch.intfList() if intf.name != "lo"]
