"""The benchmark's tables: the failover targets and the load generator's own figures."""

from __future__ import annotations

from typing import Any


def _stat(figures: dict[str, Any], key: str, statistic: str) -> Any:
    value = (figures.get(key) or {}).get(statistic)
    return "-" if value is None else value


def bench_table(results: dict[str, Any]) -> str:
    lines = [
        f"Failover benchmark: {results['trials']} trial(s) per scenario at {results['rate']:g} req/s",
        "",
        "| scenario | trials | failover gap median / p95 / max (ms) | detection median (ms) "
        "| availability median (%) | requests failed median | two writable databases max (ms) "
        "| acknowledged writes lost max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, figures in results["scenarios"].items():
        gap, det, avail = figures["failover_gap_ms"], figures["detection_ms"], figures["availability_pct"]
        lines.append(
            f"| {name} | {gap['n']} | {gap['median']} / {gap['p95']} / {gap['max']} | "
            f"{det['median']} | {avail['median']} | {_stat(figures, 'requests_failed', 'median')} | "
            f"{_stat(figures, 'both_writable_ms', 'max')} | {_stat(figures, 'acked_writes_lost', 'max')} |"
        )
    staged = {name: f.get("failover_stages_ms") for name, f in results["scenarios"].items()
              if f.get("failover_stages_ms")}
    if staged:
        stages = list(next(iter(staged.values())))
        lines += ["", "Where the milliseconds go: each stage's median time after the fault (ms; - it did "
                  "not happen):", "", "| scenario | " + " | ".join(stages) + " |",
                  "|---|" + "---|" * len(stages)]
        for name, medians in staged.items():
            cells = ("-" if medians.get(stage) is None else f"{medians[stage]:g}" for stage in stages)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    tp = results["throughput"]
    lines += [
        "",
        f"Throughput (wrk {tp['wrk']}): through the VIP {tp['through_vip_rps']} req/s, "
        f"straight to the primary {tp['direct_rps']} req/s, ratio {tp['ratio']}",
        "",
        "| target | limit | measured | met |",
        "|---|---|---|---|",
    ]
    for check in results["targets"]:
        lines.append(f"| {check['what']} | {check['limit']} | {check['measured']} | "
                     f"{'yes' if check['met'] else 'NO'} |")
    return "\n".join(lines)


def loadgen_table(results: dict[str, Any]) -> str:
    lag = results["send_lag_ms"]
    return "\n".join([
        f"Load generator at {results['rate']:g} req/s for 5 s (open loop, one record per request):",
        f"  requests recorded {results['recorded']}, answered OK {results['ok']}, "
        f"send rate {results['send_rate_rps']} req/s",
        f"  lag from schedule to send: p50 {lag['p50']:.2f} ms, p99 {lag['p99']:.2f} ms, "
        f"max {lag['max']:.2f} ms",
        f"wrk against the same responder (closed loop, 16 connections): {results['wrk_rps']} req/s",
    ])
