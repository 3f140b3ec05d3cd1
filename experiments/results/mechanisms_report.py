"""The mechanisms bench's table and picture: the controller, keepalived and HAProxy side by side."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _figure(figures: dict[str, Any], key: str, statistic: str) -> Any:
    value = (figures.get(key) or {}).get(statistic)
    return "-" if value is None else value


def _timings(cells: dict[str, Any]) -> str:
    """Which cells ran how long: "sdn, vrrp tuned: 8 s of load, the fault at 2 s; ..."."""
    groups: dict[tuple[float, float], list[str]] = {}
    for label, cell in cells.items():
        groups.setdefault((cell["duration_s"], cell["fault_at_s"]), []).append(label)
    return "; ".join(f"{', '.join(labels)}: {duration:g} s of load, the fault at {fault:g} s"
                     for (duration, fault), labels in groups.items())


def _scenario_cell(figures: dict[str, Any] | None, cell: dict[str, Any]) -> str:
    if figures is None:
        return "not run"
    if not figures["applies"]:
        return "does not apply"
    outcome = (f"{_figure(figures, 'requests_failed', 'median')} failed, "
               f"{_figure(figures, 'acked_writes_lost', 'max')} lost")
    moves = (figures.get("vip_moves") or {}).get("max")
    if moves is not None and moves > 1:  # a ping-pong: each move changed the writable database
        outcome += f", up to {moves:g} moves"
    if (figures.get("failover_gap_ms") or {}).get("median") is None:
        return f"no failover within {cell['duration_s'] - cell['fault_at_s']:g} s ({outcome})"
    return (f"{_figure(figures, 'failover_gap_ms', 'median')} / {_figure(figures, 'failover_gap_ms', 'p95')} "
            f"({outcome})")


def _availability_cell(figures: dict[str, Any] | None, cell: dict[str, Any]) -> str:
    if not figures or not figures["applies"]:
        return "-"
    return str(_figure(figures, "availability_pct", "median"))


def _writers_cell(figures: dict[str, Any] | None, cell: dict[str, Any]) -> str:
    if not figures or not figures["applies"]:
        return "-"
    return str(_figure(figures, "both_writable_ms", "max"))


def _scenario_rows(results: dict[str, Any], heading: str, cell_text: Any) -> list[str]:
    """A table with a row per scenario and a column per cell, under `heading`."""
    cells = results["cells"]
    lines = [heading, "", "| scenario | " + " | ".join(cells) + " |", "|---|" + "---|" * len(cells)]
    for name in results["scenarios"]:
        row = [cell_text(cell["scenarios"].get(name), cell) for cell in cells.values()]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def mechanisms_table(results: dict[str, Any]) -> str:
    cells = results["cells"]
    lines = [
        f"Failover mechanisms: {results['trials']} trial(s) per scenario and mechanism at "
        f"{results['rate']:g} req/s ({_timings(cells)})",
        "",
        *_scenario_rows(results, "Failover gap median / p95 (ms); in brackets, requests failed per trial "
                        "(median), acknowledged writes lost (max over the trials) and, where the VIP moved "
                        "more than once after the fault, the most moves in a trial:", _scenario_cell),
        "",
        *_scenario_rows(results, "Availability (%, median over the trials; over each trial's whole load, "
                        "so a longer trial dilutes the same outage):", _availability_cell),
        "",
        *_scenario_rows(results, "Two databases writable at once (ms, the most in a trial; - not measured):",
                        _writers_cell),
    ]
    lines += [
        "",
        "Without a fault: latency of the successful requests (ms) and failovers the mechanism made "
        "by itself:",
        "",
        "| mechanism | latency p50 | latency p99 | requests failed | false failovers |",
        "|---|---|---|---|---|",
    ]
    for label, cell in cells.items():
        base = cell.get("baseline") or {}
        latency = base.get("latency_ms") or {}
        lines.append(f"| {label} | {latency.get('p50', '-')} | {latency.get('p99', '-')} | "
                     f"{base.get('requests_failed', '-')} | {base.get('false_failovers', '-')} |")
    return "\n".join(lines)


def draw_gaps(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: the median failover gap per scenario, one bar per mechanism, log scale;
    a whisker up to the p95. A scenario a mechanism does not apply to has no bar."""
    from experiments.results.plots import figure

    cells = results["cells"]
    scenarios = results["scenarios"]
    width = 0.8 / max(len(cells), 1)
    with figure(path) as (ax,):
        for k, (label, cell) in enumerate(cells.items()):
            xs, medians, errors = [], [], []
            for i, name in enumerate(scenarios):
                figures = cell["scenarios"].get(name) or {}
                gap = figures.get("failover_gap_ms") or {}
                if not figures.get("applies") or gap.get("median") is None:
                    continue
                xs.append(i - 0.4 + width * (k + 0.5))
                medians.append(max(gap["median"], 0.1))
                errors.append(max((gap.get("p95") or gap["median"]) - gap["median"], 0))
            ax.bar(xs, medians, width=width, label=label, color=f"C{k}", yerr=[[0] * len(errors), errors],
                   capsize=3)
            for i, name in enumerate(scenarios):  # what has no bar says why
                figures = cell["scenarios"].get(name) or {}
                moved = (figures.get("failover_gap_ms") or {}).get("median") is not None
                if figures and not (figures.get("applies") and moved):
                    ax.text(i - 0.4 + width * (k + 0.5), 1.1, "none" if figures.get("applies") else "n/a",
                            rotation=90, ha="center", va="bottom", fontsize=10, color=f"C{k}")
        ax.set_yscale("log")
        ax.set_xticks(range(len(scenarios)), scenarios)
        ax.set_ylabel("failover gap (ms, log scale): median, whisker to p95")
        p95s = [(f.get("failover_gap_ms") or {}).get("p95") for c in cells.values()
                for f in c["scenarios"].values() if f.get("applies")]
        top = max((g for g in p95s if g), default=10)
        ax.set_ylim(1, 10 ** math.ceil(math.log10(max(top, 10)) + 0.3))
        ax.set_title(f"The same faults, three mechanisms ({results['trials']} trial(s) each, "
                     f"{results['rate']:g} req/s)")
        ax.legend(ncols=min(len(cells), 5), loc="upper left")
