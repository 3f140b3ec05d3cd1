"""How the `tuned` presets of keepalived and HAProxy were found: the fastest settings that make
no false failover in a minute of load without a fault.

    python -m experiments bench presets --rate 500

For each candidate (from the slowest to the fastest) it runs `baseline` for SEARCH_SECONDS at
`--rate` with the candidate in place of the `tuned` preset, and counts the VIP's moves (all
false: there is no fault) and the requests that failed. It writes
`results/bench-presets-<timestamp>/` (every run's folder, `bench-presets.json` and `.md`).
The tuned presets of services/keepalived.py and services/haproxy.py are the fastest candidate
with no false failover here, on this 2-core machine; docs/presets.md has the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.results import files
from experiments.results.files import new_run_dir, write_json
from experiments.runs.trial import run_experiment
from experiments.testbed.scenarios import SCENARIOS
from services import haproxy, keepalived
from topology.config import TestbedConfig

SEARCH_SECONDS = 60.0

# From slow to fast: keepalived's advertisement interval (its check script cannot run more
# often than once a second in 2.2.7), HAProxy's check interval (with passive checks on).
CANDIDATES: dict[str, list[tuple[str, Any]]] = {
    "vrrp": [(f"advert_int {s:g} s", replace(keepalived.PRESETS["tuned"], advert_int_s=s))
             for s in (0.1, 0.05, 0.02, 0.01)],
    "proxy": [(f"inter {ms} ms", replace(haproxy.PRESETS["tuned"], check_interval_ms=ms))
              for ms in (100, 50, 20, 10)],
}
MODULES = {"vrrp": keepalived, "proxy": haproxy}


@contextmanager
def tuned_as(mechanism: str, timing: Any) -> Iterator[None]:
    """`timing` stands for the `tuned` preset of `mechanism` while the block runs (the daemons'
    configs are rendered in this process, when a testbed starts)."""
    presets = MODULES[mechanism].PRESETS
    kept = presets["tuned"]
    presets["tuned"] = timing
    try:
        yield
    finally:
        presets["tuned"] = kept


def search_table(results: dict[str, Any]) -> str:
    lines = [
        f"Preset search: {results['seconds']:g} s of load at {results['rate']:g} req/s, no fault, "
        "one run per candidate",
        "",
        "| mechanism | candidate | false failovers | requests failed | latency p99 (ms) |",
        "|---|---|---|---|---|",
    ]
    for row in results["runs"]:
        lines.append(f"| {row['mechanism']} | {row['candidate']} | {row['false_failovers']} | "
                     f"{row['requests_failed']} | {row['latency_p99_ms']} |")
    return "\n".join(lines)


def run_preset_search(config: TestbedConfig, rate: float, out: Path,
                      progress: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:
    folder = new_run_dir(out, "bench-presets")
    results: dict[str, Any] = {"rate": rate, "seconds": SEARCH_SECONDS, "runs": []}
    for mechanism, candidates in CANDIDATES.items():
        cfg = replace(config, failover=replace(config.failover, mechanism=mechanism, preset="tuned"),
                      load=replace(config.load, rate=rate, duration_s=SEARCH_SECONDS,
                                   fault_at_s=SEARCH_SECONDS - 1))
        for label, timing in candidates:
            progress(f"bench presets: {mechanism} {label}")
            with tuned_as(mechanism, timing):
                run_dir, summary = run_experiment(cfg, SCENARIOS["baseline"], folder, 1, progress)
            results["runs"].append({
                "mechanism": mechanism, "candidate": label, "run_dir": str(run_dir),
                "false_failovers": summary.get("vip_moves"),
                "requests_failed": summary.get("requests_failed"),
                "latency_p99_ms": (summary.get("latency_ms_before") or {}).get("p99"),
            })
            write_json(folder / files.BENCH_PRESETS_JSON, results)
    files.write_atomic(folder / files.BENCH_PRESETS_REPORT, search_table(results) + "\n")
    return folder, results
