"""The nemesis's page for people (chaos.md): what it did, what it checked, what broke."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments.results import files
from experiments.results.tables import format_value

REPORT = "chaos.md"


def chaos_report(summary: Mapping[str, Any]) -> str:
    s = summary
    violations = s.get("violations") or []
    lines = [
        "# Chaos",
        "",
        f"Seed {s.get('seed')}: {format_value(s.get('duration_s'))} s of open-loop load at "
        f"{format_value(s.get('rate'))} req/s ({format_value(s.get('post_ratio'))} writes), "
        f"{s.get('faults_injected')} faults injected, {s.get('invariants_checked')} invariant checks "
        f"({', '.join(f'{name}: {count}' for name, count in (s.get('checked') or {}).items())}), "
        f"{len(violations)} violation(s).",
        "",
        f"**Verdict: {'passed' if s.get('passed') else 'FAILED'}**",
        "",
        "| # | at (s) | fault | server | held (s) | whole again after (s) | VIP then on |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in s.get("faults") or []:
        whole = f"{f['healthy_at'] - f['at']:.1f}{'' if f['whole_again'] else ' (NOT whole)'}"
        lines.append(f"| {f['number']} | {f['at_s']:g} | {f['kind']} | {f['server'] or '-'} | "
                     f"{f['hold_s']:g} | {whole} | {f.get('active_after') or '-'} |")
    lines += ["", "## Violations", ""]
    if not violations:
        lines.append("None.")
    for v in violations:
        lines.append(f"- {v['invariant']} at {v['time']:.3f}: {v['detail']}")
    lines += [
        "",
        f"Requests: {s.get('requests_total')} sent, {s.get('requests_failed')} failed, availability "
        f"{format_value(s.get('availability_pct'))} %. Writes: {s.get('acked_writes')} acknowledged, "
        f"{s.get('acked_writes_lost')} lost; databases consistent: {s.get('db_consistent')}. "
        f"Two databases writable at once: {format_value(s.get('both_writable_ms'))} ms in all.",
        "",
        f"Every fault's events are in `{files.EVENTS}`, the controller's status every 0.2 s in "
        "`status.jsonl`, the databases' modes in `read-only.csv`.",
    ]
    return "\n".join(lines)


def write_chaos_report(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    path = Path(run_dir) / REPORT
    files.write_atomic(path, chaos_report(summary) + "\n")
    return path
