"""The soak: ten minutes of load, a whole-server crash every 60 s, alternating servers.

    make soak                                      the full run (600 s, a fault every 60 s)
    SOAK_SECONDS=150 SOAK_PERIOD=40 make soak      a short one, while developing

Outside the default suite (`-m 'not soak'` in pyproject.toml). The results stay in
results/soak-<timestamp>/ (summary.json, soak.md, controller-resources.csv, ...); the test
prints where. It asserts what the soak's verdict (experiments/analysis/soak.py) judges, each
part separately so a failure names itself: every failover within the bounds, nothing acknowledged lost,
consistent databases, and the controller's growth within GROWTH_BOUNDS.
"""

import os
from pathlib import Path

import pytest

from experiments.runs import soak
from services.web import PROJECT_ROOT
from tests.integration.conftest import leftovers, missing_prerequisite
from topology.config import load_config


def _settings() -> soak.SoakSettings:
    return soak.SoakSettings(
        duration_s=float(os.environ.get("SOAK_SECONDS", soak.DEFAULT_DURATION_S)),
        period_s=float(os.environ.get("SOAK_PERIOD", soak.DEFAULT_PERIOD_S)),
        recover_after_s=float(os.environ.get("SOAK_RECOVER_AFTER", soak.RECOVER_AFTER_S)),
    )


@pytest.mark.soak
def test_soak_failovers_data_and_controller_resources(capsys):
    problem = missing_prerequisite()
    if problem:
        pytest.fail(problem, pytrace=False)
    settings = _settings()

    def progress(line: str) -> None:
        with capsys.disabled():
            print(line, flush=True)

    out = Path(PROJECT_ROOT) / "results"
    progress(f"\nsoak: {settings.duration_s:g} s, a fault every {settings.period_s:g} s, results under {out}")
    run_dir, summary = soak.run_soak(load_config(), settings, out, progress)
    progress(f"soak results: {run_dir}\n{(run_dir / 'soak.md').read_text()}")

    assert len(summary["faults"]) == summary["faults_planned"] >= 2
    crashed = [f["server"] for f in summary["faults"]]
    alternating = all(a != b for a, b in zip(crashed, crashed[1:], strict=False))
    assert alternating, f"faults did not alternate: {crashed}"
    for fault in summary["faults"]:
        assert fault["moved_to"] not in (None, fault["server"]), fault
        assert fault["healthy_again"], fault
        assert fault["failover_gap_ms"] is not None and fault["failover_gap_ms"] <= soak.GAP_LIMIT_MS, fault
    assert summary["failover_gap_ms"]["median"] <= soak.GAP_MEDIAN_LIMIT_MS
    assert summary["acked_writes"] > 0
    assert summary["acked_writes_lost"] == 0
    assert summary["unexpected_writes"] == 0
    assert summary["db_consistent"] is True, summary.get("replication_error")
    assert summary["controller_running_at_end"] is True
    resources = summary["controller_resources"]
    assert resources["within"], f"controller growth {resources['growth']} beyond {resources['bounds']}"
    assert summary["passed"], summary["failures"]
    assert leftovers() == []
