"""The mechanisms bench's table and picture: the controller, keepalived and HAProxy side by side."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _figure(figures: dict[str, Any], key: str, statistic: str) -> Any:
    value = (figures.get(key) or {}).get(statistic)
    return "-" if value is None else value


def mechanisms_table(results: dict[str, Any]) -> str:
    cells = results["cells"]
    lines = [
        f"Failover mechanisms: {results['trials']} trial(s) per scenario and mechanism at "
        f"{results['rate']:g} req/s, {results['duration_s']:g} s of load, the fault at "
        f"{results['fault_at_s']:g} s",
        "",
        "Failover gap median / p95 (ms); in brackets, requests failed per trial (median) and "
        "acknowledged writes lost (max over the trials):",
        "",
        "| scenario | " + " | ".join(cells) + " |",
        "|---|" + "---|" * len(cells),
    ]
    for name in results["scenarios"]:
        row = []
        for cell in cells.values():
            figures = cell["scenarios"].get(name)
            if figures is None:
                row.append("not run")
            elif not figures["applies"]:
                row.append("does not apply")
            elif (figures.get("failover_gap_ms") or {}).get("median") is None:
                window = results["duration_s"] - results["fault_at_s"]
                row.append(f"no failover within {window:g} s "
                           f"({_figure(figures, 'requests_failed', 'median')} failed, "
                           f"{_figure(figures, 'acked_writes_lost', 'max')} lost)")
            else:
                row.append(f"{_figure(figures, 'failover_gap_ms', 'median')} / "
                           f"{_figure(figures, 'failover_gap_ms', 'p95')} "
                           f"({_figure(figures, 'requests_failed', 'median')} failed, "
                           f"{_figure(figures, 'acked_writes_lost', 'max')} lost)")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
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
