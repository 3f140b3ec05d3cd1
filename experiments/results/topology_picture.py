"""A picture of the network a config builds: the cores on top, the edges below them, each host
under its switch, every cable with the port number at each end. `sdn-ha topology --picture`
draws it; the README's pictures of the three topologies are drawn by it."""

from __future__ import annotations

from pathlib import Path

from topology.config import TestbedConfig

CORE_Y, EDGE_Y, HOST_Y = 2.0, 1.0, 0.0
SWITCH_COLOUR, CORE_COLOUR, SERVER_COLOUR, CLIENT_COLOUR = "#d9e6f5", "#f5e3c8", "#e0f0d8", "#eeeeee"


def _spread(count: int, width: float) -> list[float]:
    """`count` x positions centred on 0, `width` apart."""
    return [(i - (count - 1) / 2) * width for i in range(count)]


def draw_topology(config: TestbedConfig, path: Path) -> None:
    from experiments.results.plots import figure

    fabric = config.fabric
    servers = {plan.name for plan in config.server_plans}
    hosts = [plan for plan in config.host_plans]
    per_edge = {edge: [h for h in hosts if h.switch == edge] for edge in fabric.edges}
    # Each edge is as wide as the hosts under it; the cores spread over the edges' width.
    widths = [max(len(per_edge[edge]), 1) for edge in fabric.edges]
    x_of: dict[str, float] = {}
    left = -sum(widths) / 2
    for edge, width in zip(fabric.edges, widths, strict=True):
        x_of[edge] = left + width / 2
        for host, x in zip(per_edge[edge], _spread(len(per_edge[edge]), 1.0), strict=True):
            x_of[host.name] = x_of[edge] + x
        left += width
    for core, x in zip(fabric.cores, _spread(len(fabric.cores), sum(widths) / max(len(fabric.cores), 1)),
                       strict=True):
        x_of[core] = x
    small = len(hosts) > 12  # 64 clients: no room for every label

    with figure(path) as (ax,):
        def box(name: str, x: float, y: float, colour: str, text: str) -> None:
            ax.text(x, y, text, ha="center", va="center", fontsize=8 if small else 11, zorder=3,
                    bbox={"boxstyle": "round,pad=0.3", "facecolor": colour, "edgecolor": "#555555"})

        for link in fabric.links:
            (x1, x2) = x_of[link.edge], x_of[link.core]
            ax.plot([x1, x2], [EDGE_Y, CORE_Y], color="#777777", lw=1, zorder=1)
            if not small:  # the port at each end, a fifth of the way along the cable, clear of the box
                for x, y, port in ((x1 + (x2 - x1) * 0.2, EDGE_Y + 0.2, link.edge_port),
                                   (x2 + (x1 - x2) * 0.2, CORE_Y - 0.2, link.core_port)):
                    ax.text(x, y, str(port), ha="center", va="center", fontsize=10, color="#333333", zorder=2,
                            bbox={"boxstyle": "circle,pad=0.15", "facecolor": "white", "edgecolor": "none"})
        for host in hosts:
            ax.plot([x_of[host.name], x_of[host.switch]], [HOST_Y, EDGE_Y], color="#999999", lw=1, zorder=1)
            colour = SERVER_COLOUR if host.name in servers else CLIENT_COLOUR
            label = host.name if small else f"{host.name}\n{host.ip}\nport {host.port}"
            box(host.name, x_of[host.name], HOST_Y, colour, label)
        for switch in fabric.switches:
            y = CORE_Y if switch in fabric.cores else EDGE_Y
            colour = CORE_COLOUR if switch in fabric.cores else SWITCH_COLOUR
            vip = " (VIP)" if switch == fabric.clients_edge else ""
            box(switch, x_of[switch], y, colour, f"{switch}{vip}\ndpid {fabric.dpid(switch)}")
        span = max(abs(x) for x in x_of.values()) + 0.8
        ax.set_xlim(-span, span)
        ax.set_ylim(-0.6, CORE_Y + 0.5 if fabric.cores else EDGE_Y + 0.5)
        ax.axis("off")
        shape = config.network.topology
        if shape == "leaf-spine":
            shape += f" {len(fabric.edges)} x {len(fabric.cores)}"
        ax.set_title(f"{shape}: {len(fabric.switches)} switch(es), {len(config.server_plans)} servers, "
                     f"{1 + len(config.extra_clients)} client(s); ports at the cables' ends")
