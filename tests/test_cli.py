"""The command line: bad input is one line and exit code 2, checked before anything starts."""

import subprocess
import sys
from pathlib import Path

import pytest

from experiments.__main__ import build_parser, overrides_from
from experiments.testbed.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent


def cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope"], "unknown scenario 'nope'"),
        (["run", "baseline", "--rate", "0"], "load.rate"),
        (["run", "baseline", "--duration", "5", "--fault-at", "9"], "load.fault_at_s"),
        (["run", "baseline", "--trials", "0"], "--trials"),
        (["run", "baseline", "--config", "/nonexistent.toml"], "no such file"),
        (["run", "baseline", "--out", "/proc/forbidden"], "--out"),
        (["bench", "failover", "--scenarios", "nope"], "unknown scenario 'nope'"),
        (["run", "compare-replication", "--under", "nope"], "unknown scenario 'nope'"),
        (["run", "primary-crash", "--under", "partition-crash"],
         "--under applies only to compare-replication"),
        (["report", "/nonexistent"], "not a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_list_prints_every_scenario_with_one_line():
    lines = cli("list").stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [*SCENARIOS, "compare-replication"]


def test_duration_alone_puts_the_fault_in_the_middle():
    args = build_parser().parse_args(["run", "baseline", "--duration", "8"])
    assert overrides_from(args) == {"load.duration_s": 8.0, "load.fault_at_s": 4.0}


def test_help_explains_every_run_option():
    text = cli("run", "--help").stdout
    for option in ("--config", "--rate", "--duration", "--fault-at", "--post-ratio", "--trials", "--out"):
        assert option in text
