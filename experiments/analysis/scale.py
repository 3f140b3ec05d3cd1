"""The scale benchmark's sizes and its two targets, as pure functions (no testbed).

A size is written TOPOLOGY/SERVERS/CLIENTS, with the leaves and spines of a leaf-spine in
its name: `single/2/1`, `two-tier/8/1`, `leaf-spine-4x2/8/64`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from topology.config import TestbedConfig

SIZE_RE = re.compile(r"^(single|two-tier|leaf-spine-(\d)x(\d))/(\d+)/(\d+)$")
GAP_TOLERANCE = 0.20  # the gap at every size within 20 % of the single switch's (the target)


class SizeError(ValueError):
    """A size that cannot be read; its text says how to write one."""


@dataclass(frozen=True)
class Size:
    topology: str  # single, two-tier or leaf-spine
    servers: int
    clients: int
    leaves: int = 0  # leaf-spine only
    spines: int = 0

    @property
    def label(self) -> str:
        shape = f"leaf-spine-{self.leaves}x{self.spines}" if self.topology == "leaf-spine" else self.topology
        return f"{shape}/{self.servers}/{self.clients}"

    @property
    def shape(self) -> str:
        """The label without the clients: sizes of one shape differ only in their clients."""
        return self.label.rsplit("/", 1)[0]

    def overrides(self) -> dict[str, Any]:
        """The config's network keys for this size (the servers are made by the bench)."""
        out: dict[str, Any] = {"network.topology": self.topology, "network.clients": self.clients}
        if self.topology == "leaf-spine":
            out.update({"network.leaves": self.leaves, "network.spines": self.spines})
        return out


def parse_size(text: str) -> Size:
    match = SIZE_RE.match(text)
    if not match:
        raise SizeError(f"size {text!r}: write TOPOLOGY/SERVERS/CLIENTS, the topology single, two-tier or "
                        "leaf-spine-LxS (e.g. single/2/1, two-tier/8/1, leaf-spine-4x2/8/64)")
    shape, leaves, spines, servers, clients = match.groups()
    if not 2 <= int(servers) <= 8:
        raise SizeError(f"size {text!r}: the servers must be 2 to 8")
    if leaves:
        return Size("leaf-spine", int(servers), int(clients), int(leaves), int(spines))
    return Size(shape, int(servers), int(clients))


DEFAULT_SIZES = tuple(parse_size(text) for text in (
    "single/2/1",  # the reference: every other size's gap is compared with its
    "single/4/1", "single/8/1", "single/2/16", "single/2/64",
    "two-tier/2/1", "two-tier/8/1", "two-tier/2/64",
    "leaf-spine-2x1/2/1", "leaf-spine-4x2/2/1", "leaf-spine-4x2/2/64", "leaf-spine-4x2/8/64",
))


def server_list(count: int) -> list[dict[str, Any]]:
    """`count` servers: the default primary and secondary, then server3 ... at .13, .14, ...,
    each limited to half the machine's CPU like the secondary."""
    servers = [{"name": "primary", "ip": "10.0.0.11", "cpu": 1.0}, {"name": "secondary", "ip": "10.0.0.12",
                                                                     "cpu": 0.5}]
    servers += [{"name": f"server{k}", "ip": f"10.0.0.{10 + k}", "cpu": 0.5} for k in range(3, count + 1)]
    return servers


def size_config(config: TestbedConfig, size: Size, rate: float) -> TestbedConfig:
    """`config` at `size`: its servers, clients and topology, 6 s of load at `rate` with the
    fault at 3 s. ConfigError if the size does not fit the config (its subnet, say)."""
    data = config.to_dict()
    data["servers"] = server_list(size.servers)
    sized = TestbedConfig.from_dict(data)
    return sized.with_overrides({**size.overrides(), "load.rate": rate, "load.duration_s": 6.0,
                                 "load.fault_at_s": 3.0})


def flows_without_clients_growth(sizes: dict[str, dict[str, Any]]) -> bool | None:
    """Whether, between sizes of one shape that differ only in their clients, every switch but
    the clients' edge of a fabric has the same number of flows. None when no two sizes share a
    shape. Each size's `switches` maps a switch to its {"flows", "groups"}; `clients_edge`
    names the switch the clients sit on (on one switch, the switch: it forwards with NORMAL,
    so it must not grow either)."""
    by_shape: dict[str, list[dict[str, Any]]] = {}
    for figures in sizes.values():
        if figures.get("switches"):
            by_shape.setdefault(figures["shape"], []).append(figures)
    compared = [group for group in by_shape.values() if len(group) > 1]
    if not compared:
        return None

    def others(figures: dict[str, Any]) -> dict[str, int]:
        edge = figures["clients_edge"] if len(figures["switches"]) > 1 else None
        return {s: v["flows"] for s, v in figures["switches"].items() if s != edge}
    return all(others(group[0]) == others(figures) for group in compared for figures in group[1:])


def gap_ratios(sizes: dict[str, dict[str, Any]], reference: str) -> dict[str, float | None]:
    """Each size's median failover gap over the reference size's; None where either is missing."""
    ref = ((sizes.get(reference) or {}).get("failover_gap_ms") or {}).get("median")
    out: dict[str, float | None] = {}
    for label, figures in sizes.items():
        median = (figures.get("failover_gap_ms") or {}).get("median")
        out[label] = round(median / ref, 2) if median is not None and ref else None
    return out


def gap_within_tolerance(ratios: dict[str, float | None]) -> bool | None:
    """Whether every size's gap is within GAP_TOLERANCE of the reference; None without figures."""
    known = [r for r in ratios.values() if r is not None]
    if not known:
        return None
    return len(known) == len(ratios) and all(r <= 1 + GAP_TOLERANCE for r in known)
