"""The nemesis: random faults from the catalogue under load, and invariants checked all along.

    python -m experiments chaos --seed 7 --duration 120

One testbed, one open-loop load for the whole duration. After a short warm-up the nemesis
takes faults from `draw_faults(seed)` (experiments/analysis/chaos.py: the same seed, the same
faults): a whole-server crash, a web server or database crash, a hang or a link flap of the
server holding the VIP (or of a standby), a cut of replication, a controller restart, the
prober killed. It holds each for its drawn time, recovers it, waits until the testbed is
whole again (every server up for the controller and replicating), pauses, and goes on while
the load has room for another fault. Meanwhile it asks the controller's status every
STATUS_EVERY_S (`status.jsonl`), and the trial samples every database's `read_only` as every
trial does. Afterwards `judge` checks the invariants over what was recorded.

    results/chaos-<timestamp>/
        requests.csv, events.csv, read-only.csv, logs/, ...   as for any trial
        status.jsonl     the controller's status, every 0.2 s
        summary.json     the faults, the counts, every violation, `passed`
        chaos.md         the same for people: the schedule and the violations

The command exits 1 when an invariant was violated. It needs the controller (`sdn`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.analysis import metrics
from experiments.analysis.chaos import DETECTION_BOUND_S, TESTBED_FAULTS, PlannedFault, draw_faults, judge
from experiments.results import files
from experiments.results.chaos_report import REPORT, write_chaos_report
from experiments.results.files import new_run_dir
from experiments.results.records import read_read_only, read_summary
from experiments.runs.consistency import ReplicationConflict
from experiments.runs.failures import TrialFailed
from experiments.runs.trial import (
    Drive,
    TrialOutcome,
    replication_settings,
    run_trial,
    sleep_until,
    start_load,
)
from experiments.testbed.testbed import Testbed
from topology.config import TestbedConfig

WARM_UP_S = 3.0  # load before the first fault
STATUS_EVERY_S = 0.2
WHOLE_TIMEOUT_S = 30.0  # a testbed not whole again by then is a violation, and the nemesis goes on
ROOM_S = 8.0  # a fault is started only if its hold, its bound and this much fit in the load
FLAP_DOWN_S, FLAP_UP_S = 0.1, 0.2
STATUS_FILE = "status.jsonl"
SAMPLED = ("up", "last_probe_age_s", "probe_stale")  # of each server's /status entry


class ChaosViolations(TrialFailed):
    """An invariant was violated: the message says which and where the report is."""


def run_chaos(config: TestbedConfig, seed: int, duration_s: float, out: Path,
              progress: Any = print) -> tuple[Path, dict[str, Any]]:
    """One chaos run from a clean start to a clean stop; returns its folder and summary (also
    on disk), and raises ChaosViolations after writing both when an invariant was violated."""
    run_dir = new_run_dir(out, "chaos")
    load = replace(config.load, duration_s=duration_s, fault_at_s=WARM_UP_S)
    try:
        summary = run_trial(replace(config, load=load), "chaos", run_dir, Chaos(seed, progress))
    except ReplicationConflict as conflict:  # the summary was written first, and says so
        summary = read_summary(run_dir)
        summary.setdefault("violations", []).append(
            {"invariant": "replication without error", "time": 0.0, "detail": str(conflict)})
        summary["passed"] = False
    write_chaos_report(run_dir, summary)
    if not summary["passed"]:
        first = summary["violations"][0]
        raise ChaosViolations(f"{len(summary['violations'])} invariant violation(s), the first: "
                              f"{first['invariant']}: {first['detail']} (report: {run_dir / REPORT})")
    return run_dir, summary


class StatusSampler:
    """The controller's /status every STATUS_EVERY_S, into a list and `status.jsonl`."""

    def __init__(self, testbed: Testbed, out: Path) -> None:
        self.testbed = testbed
        self.file = open(out, "w")
        self.samples: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._sample, name="chaos-status", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.file.close()

    def _sample(self) -> None:
        while not self.stopping.wait(STATUS_EVERY_S):
            try:
                status = self.testbed.control.status()
            except (OSError, ValueError):
                continue  # the controller is restarting: nothing to sample
            sample = {"time": time.time(), "active": status.get("active"),
                      "prober_silent": (status.get("prober") or {}).get("silent"),
                      "servers": {name: {key: state.get(key) for key in SAMPLED}
                                  for name, state in (status.get("servers") or {}).items()}}
            self.samples.append(sample)
            self.file.write(json.dumps(sample) + "\n")
            self.file.flush()


class Chaos(Drive):
    """The nemesis's load and faults, with the controller's status sampled meanwhile."""

    def __init__(self, seed: int, progress: Any = print) -> None:
        self.seed = seed
        self.progress = progress
        self.faults: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.load_start: float | None = None

    def run(self, testbed: Testbed) -> float | None:
        if testbed.config.failover.mechanism != "sdn":
            raise TrialFailed("the nemesis checks the controller's own view: failover.mechanism must be sdn")
        sampler = StatusSampler(testbed, testbed.dir / STATUS_FILE)
        sampler.start()
        try:
            self.load_start = start_load(testbed)
            end = self.load_start + testbed.config.load.duration_s
            sleep_until(self.load_start + WARM_UP_S)
            for planned in draw_faults(self.seed):
                if time.time() + planned.hold_s + DETECTION_BOUND_S.get(planned.kind, 0) + ROOM_S > end:
                    break
                self.faults.append(self._inject(testbed, planned, len(self.faults) + 1))
                time.sleep(planned.pause_s)  # the drawn pause between faults
            testbed.wait_load_done()
            testbed.record("load_finished")
        finally:
            sampler.stop()
            self.samples = sampler.samples
        return None  # many faults, not one: `judge` checks each

    def _inject(self, testbed: Testbed, planned: PlannedFault, number: int) -> dict[str, Any]:
        """One fault: injected, held, recovered, and the testbed waited for until it is whole."""
        servers = [s.name for s in testbed.config.servers]
        active = testbed.control.active_server() or servers[0]
        server = None
        if planned.kind not in TESTBED_FAULTS:
            server = active if planned.on_active else next(s for s in servers if s != active)
        at = testbed.record("fault", detail=planned.kind, server=server)
        FAULTS[planned.kind](testbed, server, planned.hold_s)
        recovered_at = testbed.record("recovered", detail=planned.kind, server=server)
        whole = True
        try:
            testbed.runner.wait_for(
                "every server up for the controller and replicating",
                lambda: all(testbed.control.server_up(s) and testbed.databases[s].replica_running()
                            for s in servers),
                timeout=WHOLE_TIMEOUT_S, process="controller", interval=0.2)
        except RuntimeError as error:  # StartupError: recorded and judged, the nemesis goes on
            whole = False
            testbed.record("not_whole", server=server, detail=str(error))
        healthy_at = testbed.record("whole" if whole else "still_broken", server=server)
        fault = {"number": number, "kind": planned.kind, "server": server, "on_active": planned.on_active,
                 "hold_s": planned.hold_s, "at": at, "at_s": round(at - (self.load_start or at), 3),
                 "recovered_at": recovered_at, "healthy_at": healthy_at, "whole_again": whole,
                 "active_after": testbed.control.active_server()}
        self.progress(f"fault {number} at {fault['at_s']:g} s: {planned.kind}"
                      f"{f' of {server}' if server else ''} for {planned.hold_s:g} s; "
                      f"{'whole again' if whole else 'NOT whole again'} after {healthy_at - at:.1f} s, "
                      f"the VIP on {fault['active_after']}")
        return fault

    def summarize(self, outcome: TrialOutcome) -> dict[str, Any]:
        config, records = outcome.config, outcome.records
        ok = sum(1 for r in records if r.ok)
        summary: dict[str, Any] = {
            "scenario": "chaos", "run_dir": str(outcome.trial_dir), "seed": self.seed,
            "duration_s": config.load.duration_s, "rate": config.load.rate,
            "post_ratio": config.load.post_ratio, "replication": replication_settings(config),
            "faults_injected": len(self.faults), "faults": self.faults,
            "status_samples": len(self.samples),
            "requests_total": len(records), "requests_failed": len(records) - ok,
            "availability_pct": round(ok / len(records) * 100, 3) if records else None,
            **outcome.data,
        }
        summary.pop("table_checksums", None)
        budget = _silence_budget(config)
        modes = read_read_only(outcome.trial_dir / files.READ_ONLY)
        summary.update(metrics.both_writable(modes))
        verdict = judge(self.faults, self.samples, modes, summary, budget)
        for fault in self.faults:
            if not fault["whole_again"]:
                verdict["violations"].append({"invariant": "whole again", "time": fault["healthy_at"],
                                              "detail": f"fault {fault['number']} ({fault['kind']}): not "
                                              f"every server up and replicating {WHOLE_TIMEOUT_S:g} s after"})
        summary.update(verdict, silence_budget_s=budget)
        summary["passed"] = not summary["violations"]
        return summary


def _silence_budget(config: TestbedConfig) -> float:
    from controller.failover import silence_budget_s

    probe = config.probe
    return silence_budget_s(probe.interval_s, probe.timeout_s, probe.timeout_fall)


# -- the faults: inject, hold, recover ---------------------------------------------------------


def _server_fault(inject: str):
    def fault(testbed: Testbed, server: str | None, hold_s: float) -> None:
        getattr(testbed.faults, inject)(server)
        time.sleep(hold_s)  # the fault's drawn length
        for line in testbed.faults.recover(server):
            testbed.record("brought_back", server=server, detail=line)
    return fault


def _link_flap(testbed: Testbed, server: str | None, hold_s: float) -> None:
    until = time.time() + hold_s
    while time.time() < until:
        testbed.faults.link_down(server)
        time.sleep(FLAP_DOWN_S)
        testbed.faults.link_up(server)
        time.sleep(FLAP_UP_S)
    testbed.faults.recover(server)


def _replication_cut(testbed: Testbed, server: str | None, hold_s: float) -> None:
    testbed.faults.cut_replication()
    time.sleep(hold_s)
    testbed.faults.restore_replication()


def _controller_restart(testbed: Testbed, server: str | None, hold_s: float) -> None:
    testbed.faults.kill_controller()
    time.sleep(hold_s)  # the controller's outage
    testbed.faults.restart_controller()


def _prober_kill(testbed: Testbed, server: str | None, hold_s: float) -> None:
    testbed.faults.kill_prober()
    time.sleep(hold_s)
    testbed.faults.restart_prober()


FAULTS = {
    "server-crash": _server_fault("crash"),
    "web-crash": _server_fault("kill_web"),
    "db-crash": _server_fault("kill_database"),
    "hang": _server_fault("hang"),
    "link-flap": _link_flap,
    "replication-cut": _replication_cut,
    "controller-restart": _controller_restart,
    "prober-kill": _prober_kill,
}
