"""The nemesis on the real testbed, as a user runs it (`chaos --seed 3 --duration 60`): the
seeded faults are injected and recovered, every invariant holds (the command exits 0 only
then), the run's page says so, and nothing is left behind. The long run is `make chaos`."""

import json

from tests.integration.conftest import leftovers, run_experiments


def test_a_short_seeded_nemesis_run_violates_no_invariant(tmp_path):
    result, run_dir = run_experiments(tmp_path, "chaos", "--seed", "3", "--duration", "60")
    assert leftovers() == []
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"] is True and summary["violations"] == []
    assert summary["faults_injected"] >= 5, "too few faults for 60 s: the nemesis is stuck"
    assert all(f["whole_again"] for f in summary["faults"])
    assert all(count > 0 for count in summary["checked"].values()), summary["checked"]
    assert summary["both_writable_ms"] == 0
    assert summary["acked_writes_lost"] == 0 and summary["db_consistent"] is True
    assert "**Verdict: passed**" in (run_dir / "chaos.md").read_text()
    assert "no violation" in result.stdout
