"""Every file of a run folder, named once; making run folders.

A trial folder holds:
    config.json                the resolved config the trial ran with
    state.json                 what the trial created, as it creates it (for `make clean`)
    requests.csv               one row per request (written by the load generator as it goes)
    controller-events.jsonl    the controller's decisions, as it made them (under keepalived or
                               HAProxy, the follower's)
    experiment-events.jsonl    faults and phases, as the experiment did them
    events.csv                 both event logs merged and sorted by time
    probes.csv                 every health probe, as the prober sent it
    replication.csv            the replication lag, from heartbeats
    summary.json               the figures, every one recomputable from the files above
    report.md, *.png           the report and its pictures (`python -m experiments report DIR`)
    report.html                the same report as one page, its pictures inside it
    logs/                      every process's output
A run of several trials holds one `trial-NN/` folder each, and its own summary.json and report.md.
A soak adds controller-resources.csv and writes soak.md; the bench writes bench.json and bench.md
(`bench mechanisms`: bench-mechanisms.json, .md and .png).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from controller.eventlog import EVENT_LOG
from services.files import write_atomic, write_json

CONFIG = "config.json"
STATE = "state.json"
REQUESTS = "requests.csv"
CONTROLLER_EVENTS = EVENT_LOG  # the controller names its own log: it cannot import experiments/
EXPERIMENT_EVENTS = "experiment-events.jsonl"
EVENTS = "events.csv"
PROBES = "probes.csv"
REPLICATION = "replication.csv"
READ_ONLY = "read-only.csv"
SUMMARY = "summary.json"
REPORT = "report.md"
THROUGHPUT_PNG = "throughput.png"
LATENCY_PNG = "latency.png"
SERVED_BY_PNG = "served_by.png"
REPLICATION_PNG = "replication_lag.png"
STAGES_PNG = "failover_stages.png"
GAP_CDF_PNG = "failover_gap_cdf.png"
RESOURCES = "controller-resources.csv"
RESOURCES_PNG = "controller-resources.png"
SOAK_REPORT = "soak.md"
BENCH_JSON = "bench.json"
STUDY_JSON = "study.json"  # run study: every rate's figures and the findings
BENCH_REPORT = "bench.md"
BENCH_LOADGEN_JSON = "bench-loadgen.json"
BENCH_MECHANISMS_JSON = "bench-mechanisms.json"
BENCH_MECHANISMS_REPORT = "bench-mechanisms.md"
BENCH_MECHANISMS_PNG = "bench-mechanisms.png"
BENCH_PRESETS_JSON = "bench-presets.json"
BENCH_SCALE_JSON = "bench-scale.json"
BENCH_SCALE_REPORT = "bench-scale.md"
BENCH_SCALE_PNG = "bench-scale.png"
BENCH_PRESETS_REPORT = "bench-presets.md"
PROBE_SOCKET = "probes.sock"  # in the run's short private socket folder, not the run folder
PROBER_PID = "prober.pid"  # there too (root only): the one sender the controller hears
TRIAL_GLOB = "trial-*"

__all__ = ["write_atomic", "write_json", "new_run_dir", "trial_dir", "trial_dirs"]


def new_run_dir(out: Path, name: str) -> Path:
    """A new folder `<out>/<name>-<timestamp>` (with a suffix if that one exists), made now."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.resolve()
    run_dir = out / f"{name}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = out / f"{name}-{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def trial_dir(run_dir: Path, trial: int, trials: int) -> Path:
    """Where trial `trial` of `trials` writes: the run folder itself when there is one trial."""
    return run_dir if trials == 1 else run_dir / f"trial-{trial:02d}"


def trial_dirs(run_dir: Path) -> list[Path]:
    """The trial-NN folders of a run of several trials, in order; [] for a single trial."""
    return sorted(p for p in run_dir.glob(TRIAL_GLOB) if p.is_dir() and p.name[len("trial-"):].isdigit())
