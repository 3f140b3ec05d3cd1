"""The command line: bad input is one line on stderr and exit code 2, before anything starts.

Every bad input here is caught by a check that comes before the machine check (root, the
tools, Open vSwitch), so none of these tests needs root or starts anything; the `no_machine`
fixture makes sure of it, and fails the test if a command ever gets that far.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from experiments.__main__ import USAGE_ERROR, main, parse
from experiments.cli.common import overrides_from
from experiments.testbed import prerequisites
from experiments.testbed.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def no_machine(monkeypatch):
    """Fail the test if a command reaches the machine check: past it, a testbed would start."""
    def reached() -> str:
        pytest.fail("the command got past its input checks to the machine check")

    monkeypatch.setattr(prerequisites, "machine_problem", reached)


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope"], "invalid choice: 'nope'"),
        ([], "required: COMMAND"),
        (["run", "nope"], "unknown scenario 'nope'"),
        (["bench", "failover", "--scenarios", "nope"], "unknown scenario 'nope'"),
        (["run", "compare-replication", "--under", "nope"], "unknown scenario 'nope'"),
        (["run", "baseline", "--bogus"], "unrecognized arguments: --bogus"),
        (["run"], "required: scenario"),
        (["run", "baseline", "--rate"], "argument --rate: expected one argument"),
        (["run", "baseline", "--rate", "fast"], "argument --rate: invalid float value: 'fast'"),
        (["run", "baseline", "--replication", "sync"], "argument --replication: invalid choice: 'sync'"),
        (["bench", "fast"], "argument what: invalid choice: 'fast'"),
        (["run", "primary-crash", "--under", "partition-crash"],
         "--under applies only to compare-replication"),
        (["run", "baseline", "--trials", "0"], "--trials must be between 1 and 1000"),
        (["bench", "failover", "--trials", "1001"], "--trials must be between 1 and 1000"),
        (["run", "baseline", "--rate", "0"], "load.rate"),
        (["run", "baseline", "--duration", "5", "--fault-at", "9"], "load.fault_at_s"),
        (["run", "baseline", "--config", "/nonexistent.toml"], "no such file: /nonexistent.toml"),
        (["report", "/nonexistent"], "/nonexistent: not a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, no_machine, capsys):
    assert main(args) == USAGE_ERROR
    line = one_error_line(capsys)
    assert line.startswith("error: ")
    assert message in line


@pytest.mark.parametrize(
    "text, message",
    [
        ("[load]\nrate = 0\n", "load.rate"),
        ("[probe]\nfall = 0\n", "probe.fall"),
        ("[load\n", "--config"),
    ],
)
def test_bad_config_file_names_the_key(text, message, tmp_path, no_machine, capsys):
    assert main(["run", "baseline", "--config", config_file(tmp_path, text)]) == USAGE_ERROR
    assert message in one_error_line(capsys)


def test_unwritable_out_folder_is_a_usage_error(tmp_path, no_machine, capsys):
    # A folder under a regular file cannot be made, even by root.
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "results"
    assert main(["run", "baseline", "--out", str(out)]) == USAGE_ERROR
    assert f"--out {out}: cannot write there" in one_error_line(capsys)


def test_wrong_option_points_at_its_commands_help(no_machine, capsys):
    assert main(["run", "baseline", "--bogus"]) == USAGE_ERROR
    assert "see `python -m experiments run --help`" in one_error_line(capsys)


def test_machine_problem_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    # Past the input checks: what the machine lacks, without running as another user.
    monkeypatch.setattr(prerequisites, "machine_problem", lambda: "the testbed needs root: run it with sudo")
    assert main(["run", "baseline", "--out", str(tmp_path)]) == USAGE_ERROR
    assert one_error_line(capsys) == "error: the testbed needs root: run it with sudo"


def test_missing_tools_are_named_with_their_packages(monkeypatch):
    missing = {"mnexec", "curl"}
    monkeypatch.setattr(prerequisites.shutil, "which", lambda tool: None if tool in missing else tool)
    assert prerequisites.missing_tools_problem() == (
        "not installed: mnexec (package mininet), curl (package curl): run `make setup` first"
    )


def test_no_missing_tool_is_no_problem(monkeypatch):
    monkeypatch.setattr(prerequisites.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert prerequisites.missing_tools_problem() is None


@pytest.mark.parametrize(
    "args",
    [["nope"], ["run", "baseline", "--bogus"], ["run", "nope"], ["run", "baseline", "--trials", "0"]],
)
def test_python_m_experiments_says_bad_input_in_one_line(args):
    result = cli(*args)
    assert result.returncode == USAGE_ERROR
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")


def test_list_prints_every_scenario():
    result = cli("list")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.strip().splitlines()]
    assert names == [*SCENARIOS, "compare-replication"]


@pytest.mark.parametrize(
    "command", [[], ["list"], ["run"], ["bench"], ["demo"], ["exec"], ["report"], ["compare"], ["clean"]]
)
def test_help_exits_0(command):
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m experiments")


@pytest.mark.parametrize(
    "options, overrides",
    [
        ([], {}),
        (["--rate", "300"], {"load.rate": 300.0}),
        (["--post-ratio", "0.5"], {"load.post_ratio": 0.5}),
        (["--replication", "semi-sync"], {"database.replication": "semi-sync"}),
        (["--duration", "8"], {"load.duration_s": 8.0, "load.fault_at_s": 4.0}),
        (["--duration", "8", "--fault-at", "2"], {"load.duration_s": 8.0, "load.fault_at_s": 2.0}),
        (["--fault-at", "3"], {"load.fault_at_s": 3.0}),
    ],
)
def test_run_options_set_config_keys(options, overrides):
    assert overrides_from(parse(["run", "baseline", *options])) == overrides


def test_demo_options_set_no_duration():
    args = parse(["demo", "--rate", "100", "--replication", "async"])
    assert overrides_from(args, duration=False) == {"load.rate": 100.0, "database.replication": "async"}
