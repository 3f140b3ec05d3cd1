"""The scale benchmark's table and picture (experiments/runs/scale_bench.py writes the figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.analysis.scale import GAP_TOLERANCE


def _flows(figures: dict[str, Any]) -> tuple[str, str, str]:
    """(the clients' edge's flows, the most any other switch has, the most groups on a switch)."""
    switches = figures.get("switches") or {}
    if not switches:
        return "-", "-", "-"
    edge = figures["clients_edge"]
    others = [v["flows"] for s, v in switches.items() if s != edge]
    groups = max(v["groups"] for v in switches.values())
    return str(switches[edge]["flows"]), str(max(others)) if others else "-", str(groups)


def _gap(figures: dict[str, Any]) -> str:
    gap = figures.get("failover_gap_ms") or {}
    if gap.get("median") is None:
        return "no failover"
    return f"{gap['median']:g} / {gap['p95']:g}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def scale_table(results: dict[str, Any]) -> str:
    """The table (Markdown): one row per size, the targets met or not below it."""
    lines = [
        f"Scale: {results['scenario']}, {results['trials']} trial(s) per size at {results['rate']:g} req/s; "
        "a size is topology/servers/clients",
        "",
        "| size | switches | set-up (s) | flows: clients' edge / most on another switch | groups (most) "
        f"| controller memory (MB) | gap median / p95 (ms) | gap vs {results['reference']} "
        "| failed per trial | latency p50 before the fault (ms) | VIP moves before the fault (most) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, figures in results["sizes"].items():
        edge_flows, other_flows, groups = _flows(figures)
        failed = (figures.get("requests_failed") or {}).get("median")
        ratio = figures.get("gap_vs_reference")
        lines.append(
            f"| {label} | {len(figures.get('switches') or {})} | {figures.get('setup_s', '-')} "
            f"| {edge_flows} / {other_flows} | {groups} | {figures.get('controller_rss_mb', '-')} "
            f"| {_gap(figures)} | {'-' if ratio is None else f'{ratio:g}'} "
            f"| {'-' if failed is None else f'{failed:g}'} | {_number(figures.get('latency_p50_before_ms'))} "
            f"| {_number((figures.get('vip_moves_before_fault') or {}).get('max'))} |")
    for target, met in (results.get("targets") or {}).items():
        verdict = "not measured (no two sizes to compare)" if met is None else ("met" if met else "NOT met")
        lines += ["", f"target: {target}: {verdict}"]
    return "\n".join(lines)


def draw_scale(results: dict[str, Any], path: Path) -> None:
    """Two panels over the sizes: the failover gap (median, whisker to the p95, the band the
    target allows around the reference), and the flows on the clients' edge and on the
    busiest other switch."""
    from experiments.results.plots import figure

    sizes = results["sizes"]
    labels = list(sizes)
    xs = range(len(labels))
    with figure(path, rows=2) as (gap_ax, flow_ax):
        medians, errors = [], []
        for figures in sizes.values():
            gap = figures.get("failover_gap_ms") or {}
            medians.append(gap.get("median") or 0.1)
            errors.append(max((gap.get("p95") or 0) - (gap.get("median") or 0), 0))
        gap_ax.bar(xs, medians, yerr=[[0] * len(errors), errors], capsize=3, color="C0",
                   label="failover gap median, whisker to p95")
        reference = ((sizes.get(results["reference"]) or {}).get("failover_gap_ms") or {}).get("median")
        if reference:
            gap_ax.axhline(reference * (1 + GAP_TOLERANCE), color="C2", ls="--",
                           label=f"the target: {GAP_TOLERANCE:.0%} above {results['reference']}'s gap")
        latency = [figures.get("latency_p50_before_ms") for figures in sizes.values()]
        gap_ax.plot([x for x, v in zip(xs, latency, strict=True) if v], [v for v in latency if v], "D",
                    color="C3", label="latency p50 before the fault")
        gap_ax.legend(loc="upper left")
        gap_ax.set_yscale("log")  # one overloaded size's p95 must not flatten the others
        gap_ax.set_ylim(bottom=1)
        gap_ax.set_ylabel("ms (log scale)")
        gap_ax.set_xticks(list(xs), [""] * len(labels))
        gap_ax.set_title(f"How cost grows: {results['scenario']}, {results['trials']} trial(s) per size")
        edge, other = [], []
        for figures in sizes.values():
            switches = figures.get("switches") or {}
            edge.append(switches.get(figures.get("clients_edge"), {}).get("flows", 0))
            rest = [v["flows"] for s, v in switches.items() if s != figures.get("clients_edge")]
            other.append(max(rest, default=0))
        flow_ax.bar([x - 0.2 for x in xs], edge, width=0.4, label="clients' edge", color="C1")
        flow_ax.bar([x + 0.2 for x in xs], other, width=0.4, label="busiest other switch", color="C4")
        flow_ax.set_ylabel("flows")
        flow_ax.set_xticks(list(xs), labels, rotation=30, ha="right")
        flow_ax.legend(loc="upper left")
