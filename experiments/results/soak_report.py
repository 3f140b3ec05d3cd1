"""The soak's page for people (soak.md) and its picture of the controller's resources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.analysis.soak import GAP_LIMIT_MS, GAP_MEDIAN_LIMIT_MS, Sample
from experiments.results import files
from experiments.results.records import read_resources
from experiments.results.tables import format_value


def _tenths(value: Any) -> str:
    return format_value(value, decimals=1)


def soak_report(summary: Mapping[str, Any]) -> str:
    """The soak's figures as a short Markdown page: settings, faults, data, resources, verdict."""
    s = summary
    gaps = s.get("failover_gap_ms") or {}
    res = s.get("controller_resources") or {}
    lines = [
        "# Soak",
        "",
        f"{s['duration_s']:g} s of open-loop load at {s['rate']:g} req/s ({s['post_ratio']:g} writes), "
        f"a whole-server crash of the server holding the VIP every {s['period_s']:g} s "
        f"(first at {s['period_s'] / 2:g} s), each brought back {s['recover_after_s']:g} s later; "
        f"failback \"{s['failback']}\".",
        "",
        f"**Verdict: {'passed' if s['passed'] else 'FAILED'}**",
        "",
    ]
    lines += [f"- {failure}" for failure in s.get("failures", [])]
    lines += [
        "| fault | at (s) | crashed | VIP moved to | detection (ms) | failover gap (ms) | failed requests "
        "| crashed server up again after (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in s.get("faults", []):
        lines.append(
            f"| {f['fault']} | {f['at_s']:g} | {f['server']} | {f['moved_to'] or '-'} | "
            f"{_tenths(f['detection_ms'])} | {_tenths(f['failover_gap_ms'])} | "
            f"{f['requests_failed_after_fault']} | {_tenths(f.get('back_up_after_s'))} |"
        )
    lines += [
        "",
        f"Failover gap over {gaps.get('n')} failovers: median {_tenths(gaps.get('median'))} ms, "
        f"p95 {_tenths(gaps.get('p95'))} ms, max {_tenths(gaps.get('max'))} ms "
        f"(bounds: each <= {GAP_LIMIT_MS:g} ms, median <= {GAP_MEDIAN_LIMIT_MS:g} ms).",
        "",
        f"Requests: {s.get('requests_total')} sent, {s.get('requests_failed')} failed, "
        f"availability {s.get('availability_pct')} %.",
        f"Writes: {s.get('acked_writes')} acknowledged, {s.get('acked_writes_lost')} lost, "
        f"{s.get('unexpected_writes')} unexpected; "
        f"databases consistent: {s.get('db_consistent')}.",
        "",
        "Controller process (from /proc, every "
        f"{s['sample_interval_s']:g} s, {res.get('samples')} samples; baseline once the first fault "
        "cycle is over):",
        "",
        "| | baseline | end | max | growth | bound |",
        "|---|---|---|---|---|---|",
    ]
    names = {"fds": "open file descriptors", "threads": "threads", "rss_kb": "resident memory (kB)"}
    for key, label in names.items():
        base, end = res.get("baseline") or {}, res.get("end") or {}
        growth, bounds, most = res.get("growth") or {}, res.get("bounds") or {}, res.get("max") or {}
        lines.append(f"| {label} | {base.get(key, '-')} | {end.get(key, '-')} | {most.get(key, '-')} | "
                     f"{_signed(growth.get(key))} | +{bounds.get(key, '-')} |")
    return "\n".join(lines) + "\n"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+d}"


def write_soak_report(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """soak.md and controller-resources.png from the summary and the samples."""
    text = soak_report(summary)
    if (run_dir / files.RESOURCES).exists():
        draw_resources(read_resources(run_dir / files.RESOURCES), summary, run_dir / files.RESOURCES_PNG)
        text += f"\n![controller resources]({files.RESOURCES_PNG})\n"
    (run_dir / files.SOAK_REPORT).write_text(text)


def draw_resources(samples: Sequence[Sample], summary: Mapping[str, Any], path: Path) -> None:
    """Descriptors, threads and resident memory of the controller over the soak, faults marked.

    A leak shows as a staircase, a step per fault; a steady controller as flat lines with
    short spikes while a failover or recovery is handled. The dashed line is the baseline.
    """
    from experiments.results.plots import figure  # matplotlib: only when a picture is drawn

    start = summary.get("load_start") or (samples[0].time if samples else 0.0)
    baseline = (summary.get("controller_resources") or {}).get("baseline") or {}
    panels = [("fds", "open file descriptors", 1), ("threads", "threads", 1),
              ("rss_kb", "resident memory (MB)", 1024)]
    with figure(path, rows=len(panels)) as axes:
        for ax, (key, label, scale) in zip(axes, panels, strict=True):
            ax.plot([s.time - start for s in samples], [getattr(s, key) / scale for s in samples],
                    drawstyle="steps-post", color="tab:blue")
            if key in baseline:
                ax.axhline(baseline[key] / scale, color="grey", linestyle="--", linewidth=1)
            for fault in summary.get("faults", []):
                ax.axvline(fault["at_s"], color="tab:red", linewidth=0.8)
            ax.set_ylabel(label)
            low, high = ax.get_ylim()
            ax.set_ylim(min(0, low), high * 1.15)
        axes[0].set_title("controller process; red: a server crashes")
        axes[-1].set_xlabel("seconds since the load started")
