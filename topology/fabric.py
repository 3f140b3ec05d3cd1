"""Which switches the network has, how they are wired and where each host sits: the plan.

`single` (the default) is one switch with every host on it. The other two are fabrics of
edge switches, every edge wired to every core, the clients and the monitor on the first edge:

    two-tier                                  leaf-spine (leaves=3, spines=2)

        core1       core2                         spine1      spine2
        / | \\       / | \\                          |  \\  /  \\ /  |
    edge1 edge2 edge3  (each to both)           leaf1  leaf2  leaf3
    client primary secondary                   client primary secondary
    monitor                                    monitor  (servers round-robin on leaf2..)

`two-tier` gives each server an edge switch of its own and has two cores; `leaf-spine` has
`network.leaves` leaves and `network.spines` spines, the servers spread over the leaves
after the first. On each edge the hosts take ports 1, 2, ... in the config's host order, then
one port per core (core j on port hosts + j); on each core, edge i is on port i.

Pure data: the config builds it, topology/network.py wires Mininet from it, the controller
plans its forwarding from it (controller/fabric_flows.py), the faults find a link's
interfaces in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TOPOLOGIES = ("single", "two-tier", "leaf-spine")
CORE_DPID_BASE = 100  # core j has datapath id 100 + j, edge i has i


@dataclass(frozen=True)
class Link:
    """A cable between an edge switch and a core switch, and the port at each end."""

    edge: str
    edge_port: int
    core: str
    core_port: int

    @property
    def name(self) -> str:
        return f"{self.edge}-{self.core}"

    @property
    def interfaces(self) -> tuple[str, str]:
        """The two ends' interface names, as Mininet names them (root namespace)."""
        return f"{self.edge}-eth{self.edge_port}", f"{self.core}-eth{self.core_port}"


@dataclass(frozen=True)
class Fabric:
    topology: str
    edges: tuple[str, ...]  # the switches hosts sit on; the clients' and the monitor's first
    cores: tuple[str, ...]  # empty for `single`
    placement: dict[str, tuple[str, int]]  # host name -> (its switch, its port there)
    links: tuple[Link, ...]  # edge-to-core cables

    @property
    def switches(self) -> tuple[str, ...]:
        return (*self.edges, *self.cores)

    @property
    def clients_edge(self) -> str:
        """Where the clients and the monitor sit: the one switch that rewrites the VIP."""
        return self.edges[0]

    @property
    def is_single(self) -> bool:
        return not self.cores

    def dpid(self, switch: str) -> int:
        if switch in self.cores:
            return CORE_DPID_BASE + self.cores.index(switch) + 1
        return self.edges.index(switch) + 1

    def switch_of_dpid(self, dpid: int) -> str | None:
        return next((s for s in self.switches if self.dpid(s) == dpid), None)

    def link_at(self, switch: str, port: int) -> Link | None:
        """The inter-switch link on `switch`'s `port`, or None (a host's port, or no port)."""
        for link in self.links:
            if (link.edge, link.edge_port) == (switch, port) or (link.core, link.core_port) == (switch, port):
                return link
        return None

    def link(self, edge: str, core: str) -> Link:
        return next(lk for lk in self.links if lk.edge == edge and lk.core == core)

    def hosts_on(self, switch: str) -> list[str]:
        return [host for host, (on, _) in self.placement.items() if on == switch]

    def interfaces(self) -> list[str]:
        """Every switch-side interface: one per host, two per link."""
        hosts = [f"{switch}-eth{port}" for switch, port in self.placement.values()]
        return hosts + [name for link in self.links for name in link.interfaces]

    def describe(self, addresses: dict[str, str]) -> list[str]:
        """The plan in words, one line per switch: its datapath id and what is on each port
        (`addresses`: the IP of each host the network has; a port planned for a host it has
        not, the proxy's without HAProxy, is left out)."""
        kind = "one switch" if self.is_single else f"{len(self.edges)} edges and {len(self.cores)} cores"
        lines = [f"{self.topology}: {kind}, {len(addresses)} hosts, {len(self.links)} cables; "
                 f"the clients and the monitor on {self.clients_edge}, which rewrites the VIP"]
        for switch in self.switches:
            ports = {port: f"{host} {addresses[host]}"
                     for host, (on, port) in self.placement.items() if on == switch and host in addresses}
            for link in self.links:
                if link.edge == switch:
                    ports[link.edge_port] = f"cable to {link.core} port {link.core_port}"
                elif link.core == switch:
                    ports[link.core_port] = f"cable to {link.edge} port {link.edge_port}"
            said = ", ".join(f"port {port} {what}" for port, what in sorted(ports.items()))
            lines.append(f"  {switch} (dpid {self.dpid(switch)}): {said}")
        return lines

    def reachable(self, down: set[str]) -> set[str]:
        """The switches the clients' edge still reaches when the links named in `down` are cut."""
        seen, todo = {self.clients_edge}, [self.clients_edge]
        while todo:
            here = todo.pop()
            for link in self.links:
                if link.name in down or here not in (link.edge, link.core):
                    continue
                there = link.core if here == link.edge else link.edge
                if there not in seen:
                    seen.add(there)
                    todo.append(there)
        return seen


def plan_fabric(
    topology: str, single_switch: str, front: Sequence[str], servers: Sequence[str],
    single_ports: dict[str, int], leaves: int, spines: int,
) -> Fabric:
    """The plan of `topology`. `front` are the hosts on the clients' edge (client, monitor, the
    extra clients) and `servers` the servers in priority order; `single_ports` are the ports of
    every host on the one switch of `single`."""
    if topology == "single":
        placement = {host: (single_switch, port) for host, port in single_ports.items()}
        return Fabric(topology, (single_switch,), (), placement, ())
    if topology == "two-tier":
        edges = tuple(f"edge{i}" for i in range(1, len(servers) + 2))
        cores = ("core1", "core2")
        server_edge = {server: edges[1 + i] for i, server in enumerate(servers)}
    else:
        edges = tuple(f"leaf{i}" for i in range(1, leaves + 1))
        cores = tuple(f"spine{j}" for j in range(1, spines + 1))
        server_edge = {server: edges[1 + i % (leaves - 1)] for i, server in enumerate(servers)}
    on_edge: dict[str, list[str]] = {edge: [] for edge in edges}
    on_edge[edges[0]] += list(front)
    for server in servers:
        on_edge[server_edge[server]].append(server)
    placement = {host: (edge, port) for edge, hosts in on_edge.items()
                 for port, host in enumerate(hosts, start=1)}
    links = tuple(Link(edge, len(on_edge[edge]) + j, core, i)
                  for i, edge in enumerate(edges, start=1) for j, core in enumerate(cores, start=1))
    return Fabric(topology, edges, cores, placement, links)
