"""The command line: bad input is one line on stderr and exit code 2, before anything starts.

Every bad input here is caught by a check that comes before the machine check (root, the
tools, Open vSwitch), so none of these tests needs root or starts anything; the `no_machine`
fixture makes sure of it, and fails the test if a command ever gets that far.
"""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.__main__ import USAGE_ERROR, main, parse
from experiments.cli import common
from experiments.cli.common import INTERRUPTED, overrides_from
from experiments.testbed import prerequisites
from experiments.testbed.scenarios import SCENARIOS
from services.runner import STOP_SIGNALS

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def machine_cgroups(tmp_path, monkeypatch) -> Path:
    """An empty cgroup root in place of /sys/fs/cgroup, and a lock of the test's own: a testbed
    running on this machine (its cgroup /secondary, its run lock) must not change the answers."""
    root = tmp_path / "cgroup"
    root.mkdir()
    monkeypatch.setattr(common, "CGROUP_ROOT", root)
    monkeypatch.setattr(common, "LOCK_NAME", f"sdn-ha-testbed-test-{os.getpid()}.lock")
    return root


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
        (["bench", "loadgen", "--rate", "0"], "load.rate: must be between 1 and 5000"),  # not the default
        # numbers that are not finite, refused where they are typed
        (["run", "baseline", "--rate", "nan"], "argument --rate: must be a finite number, got 'nan'"),
        (["run", "baseline", "--duration", "inf"], "argument --duration: must be a finite number, got 'inf'"),
        (["run", "baseline", "--fault-at", "nan"], "argument --fault-at: must be a finite number, got 'nan'"),
        (["run", "baseline", "--post-ratio=-inf"], "argument --post-ratio: must be a finite number"),
        (["bench", "failover", "--rate", "inf"], "argument --rate: must be a finite number, got 'inf'"),
        (["demo", "--rate", "NaN"], "argument --rate: must be a finite number, got 'NaN'"),
        (["run", "baseline", "--duration", "5", "--fault-at", "9"], "load.fault_at_s"),
        (["run", "baseline", "--config", "/nonexistent.toml"], "no such file: /nonexistent.toml"),
        (["report", "/nonexistent"], "/nonexistent: not a folder"),
        (["bench", "failover", "--resume", "/tmp"], "--resume applies to `bench mechanisms` only"),
        (["run", "study", "--rate", "300"], "--rate does not apply to study"),
        (["run", "study", "--rates", "0"], "--rates: load.rate: must be between 1 and 5000"),
        (["run", "baseline", "--rates", "100"], "--rates applies only to study"),
        (["chaos", "--duration", "5"], "--duration must be between 30 and"),
        (["bench", "mechanisms", "--resume", "/nonexistent"],
         "--resume /nonexistent: no bench results to continue there"),
        (["bench", "scale", "--sizes", "big"], "size 'big': write TOPOLOGY/SERVERS/CLIENTS"),
        (["bench", "failover", "--sizes", "single/2/1"], "--sizes applies to `bench scale` only"),
        (["bench", "failover", "--baselines", "0"], "--baselines: the rate must be between 1 and 5000"),
        (["bench", "scale", "--baselines"], "--baselines applies to `bench failover` only"),
        (["bench", "failover", "--wrk-rounds", "0"], "--wrk-rounds: give a number of rounds from 1 to 20"),
        (["bench", "loadgen", "--wrk-rounds", "2"], "--wrk-rounds applies to `bench failover` only"),
        (["topology", "--topology", "ring"], "argument --topology: invalid choice: 'ring'"),
        (["topology", "--picture", "net.svg"], "--picture net.svg: give a file name ending in .png"),
        (["topology", "--picture", "/nonexistent/net.png"], "the folder /nonexistent does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, no_machine, capsys):
    assert main(args) == USAGE_ERROR
    line = one_error_line(capsys)
    assert line.startswith("error: ")
    assert message in line


# Two servers, the second named as the test says.
SERVERS_NAMED = ("[[servers]]\nname = 'primary'\nip = '10.0.0.11'\n"
                 "[[servers]]\nname = '{}'\nip = '10.0.0.12'\n")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[load]\nrate = 0\n", "load.rate"),
        ("[probe]\nfall = 0\n", "probe.fall"),
        ("[load\n", "--config"),
        # numbers that are not finite, and the bounds of a failover experiment
        ("[failover]\nhold_down_s = nan\n", "failover.hold_down_s: must be a finite number, got nan"),
        ("[probe]\ninterval_s = inf\n", "probe.interval_s: must be a finite number, got inf"),
        ("[[servers]]\nname = 'a'\nip = '10.0.0.11'\ncpu = nan\n", "servers[0].cpu: must be a finite number"),
        ("[probe]\ninterval_s = 11.0\ntimeout_s = 1.0\n", "probe.interval_s: must be > 0 and at most 10 s"),
        ("[probe]\nfall = 101\n", "probe.fall: must be between 1 and 100"),
        ("[probe]\ntimeout_fall = 1001\n", "probe.timeout_fall: must be >= probe.fall (2) and at most 1000"),
        ("[probe]\nrise = 101\n", "probe.rise: must be between 1 and 100"),
        ("[failover]\nhold_down_s = 3601\n", "failover.hold_down_s: must be between 0 and 3600 seconds"),
        # a web port the switch would confuse with other traffic (3306 hung the run)
        ("[web]\nport = 3306\n", "web.port: 3306 is the databases' port"),
        ("[web]\nport = 6653\n", "web.port: 6653 is network.controller_port"),
        ("[web]\nport = 8181\n", "web.port: 8181 is network.status_port"),
        ("[web]\nport = 40000\n", "web.port: must be outside the hosts' ephemeral ports 32768-60999"),
        # names of Mininet's or the testbed's own nodes, and a MAC two hosts would have
        (SERVERS_NAMED.format("s1"), "servers[1].name: 's1' is already the name of the switch"),
        (SERVERS_NAMED.format("c0"), "servers[1].name: 'c0' is already the name of Mininet's controller"),
        (SERVERS_NAMED.format("client2"), "servers[1].name: 'client2' is already the name of an extra"),
        (SERVERS_NAMED.format("primary"), "servers[1].name: 'primary' is already the name of servers[0]"),
        (SERVERS_NAMED.format("verylongname"), "servers[1].name: 'verylongname' must be 1-10 lowercase"),
        ("[network]\nvmac = '00:00:00:00:00:0c'\n",
         "network.vmac: 00:00:00:00:00:0c is already the MAC of secondary (10.0.0.12)"),
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


@pytest.mark.parametrize(
    "option, name, message",
    [
        # MariaDB's option files: a comment from here on (its data folder went elsewhere), quotes,
        # escapes and the end of the value
        ("--out", "res#1", "'#' not allowed in the path"),
        ("--out", "it's", "\"'\" not allowed in the path"),
        ("--out", 'say"hi', "'\"' not allowed in the path"),
        ("--out", "back\\slash", "'\\\\' not allowed in the path"),
        ("--out", "new\nline", "'\\n' not allowed in the path"),
        # what a shell reads in a command a person pastes
        ("--out", "a b", "' ' not allowed in the path"),
        ("--out", "a;b", "';' not allowed in the path"),
        ("--out", "$HOME", "'$' not allowed in the path"),
        ("--out", "`id`", "'`' not allowed in the path"),
        ("--out", "a*b", "'*' not allowed in the path"),
        ("--out", "~me", "'~' not allowed in the path"),
        ("--out", "a# b", "' ' '#' not allowed in the path"),  # every one of them, once
        ("--config", "my config.toml", "' ' not allowed in the path"),
        ("--config", "x#.toml", "'#' not allowed in the path"),
    ],
)
def test_a_path_with_characters_option_files_or_shells_read_is_refused(
    option, name, message, tmp_path, no_machine, capsys
):
    path = tmp_path / name
    assert main(["run", "baseline", option, str(path)]) == USAGE_ERROR
    line = one_error_line(capsys)
    assert line.startswith(f"error: {option} {str(path)!r}: ") and message in line
    assert "use letters, digits and . _ - + , @ : /" in line
    assert not path.exists()  # refused before the folder was made


def test_the_current_folders_part_of_the_path_counts_too(tmp_path, monkeypatch, no_machine, capsys):
    """The default --out results, from a folder whose name MariaDB would cut at the `#`."""
    here = tmp_path / "lab #3"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["run", "baseline"]) == USAGE_ERROR
    assert one_error_line(capsys) == (
        f"error: --out 'results': ' ' '#' not allowed in the path '{here}/results'; use letters, digits "
        "and . _ - + , @ : / (MariaDB's option files or shells read the others)"
    )
    assert not (here / "results").exists()


@pytest.fixture
def machine_reached(monkeypatch) -> str:
    """Past every input check, the machine check says this (and nothing starts)."""
    said = "the machine check was reached"
    monkeypatch.setattr(prerequisites, "machine_problem", lambda: said)
    return said


@pytest.mark.parametrize("name", ["run-1_a.b+c,d@e:f", "résultats", "2026-12-01"])
def test_a_path_of_letters_digits_and_safe_punctuation_is_taken(name, tmp_path, machine_reached, capsys):
    assert main(["run", "baseline", "--out", str(tmp_path / name)]) == USAGE_ERROR
    assert one_error_line(capsys) == f"error: {machine_reached}"
    assert (tmp_path / name).is_dir()


@pytest.mark.parametrize(
    "made, found",
    [
        # the hierarchies Mininet's CPULimitedHost creates /<name> in (cgroup v1)
        (["cpu/secondary"], ["cpu/secondary"]),
        (["cpuacct/secondary"], ["cpuacct/secondary"]),
        (["cpuset/secondary/inner"], ["cpuset/secondary"]),  # `cgdelete -r` would take inner too
        (["cpuacct/secondary", "cpuset/secondary"], ["cpuacct/secondary", "cpuset/secondary"]),  # seen here
        # cgroup v2: one hierarchy, the cgroup sits at the root
        (["cgroup.controllers", "secondary"], ["secondary"]),
    ],
)
def test_a_cpu_limited_server_named_like_an_existing_cgroup_is_refused(
    made, found, machine_cgroups, no_machine, capsys
):
    for relative in made:
        place = machine_cgroups / relative
        if place.suffix == ".controllers":
            place.write_text("cpu\n")
        else:
            place.mkdir(parents=True)
    assert main(["run", "baseline"]) == USAGE_ERROR
    shown = " ".join(str(machine_cgroups / place) for place in found)
    assert one_error_line(capsys) == (
        f"error: config servers[1].name: the cgroup {shown} exists, and Mininet deletes the cgroup "
        "named like a server with cpu < 1 when the run ends; rename the server, or, if an earlier run "
        f"left it, `sdn-ha clean` or `sudo rmdir {shown}` removes it"
    )
    assert all((machine_cgroups / place).is_dir() for place in found)  # nothing touched them


@pytest.mark.machine  # it reaches the out folder's check: results/, root's
@pytest.mark.parametrize(
    "made",
    [
        "cpu/primary",  # primary has cpu = 1: a plain host, no cgroup
        "memory/secondary",  # a controller Mininet does not use
        "secondary",  # cgroup v1: the root holds the hierarchies, not cgroups
    ],
)
def test_cgroups_mininet_would_not_touch_are_no_problem(made, machine_cgroups, machine_reached, capsys):
    (machine_cgroups / made).mkdir(parents=True)
    assert main(["run", "baseline"]) == USAGE_ERROR
    assert one_error_line(capsys) == f"error: {machine_reached}"


def test_the_cgroup_of_an_active_run_says_the_run_is_active(machine_cgroups, no_machine, capsys):
    (machine_cgroups / "cpu" / "secondary").mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as run_lock:  # held as a run holds it
        run_lock.bind("\0" + common.LOCK_NAME)
        run_lock.listen()
        assert main(["run", "baseline"]) == USAGE_ERROR
    assert one_error_line(capsys) == (
        f"error: another testbed run is active (pid {os.getpid()}); wait for it or stop it"
    )


def test_the_stop_signals_are_handled_from_the_start_and_given_back(monkeypatch, capsys):
    """Before the options are read, so before anything slow (the machine check runs commands)."""
    import experiments.__main__ as entry

    seen = {}

    def parse_first(argv):
        seen.update({sig: signal.getsignal(sig) for sig in STOP_SIGNALS})
        raise common.UsageError("stopped while parsing")

    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    monkeypatch.setattr(entry, "parse", parse_first)
    assert main(["run", "baseline"]) == USAGE_ERROR
    assert seen == {signal.SIGINT: common._interrupt, signal.SIGTERM: common._interrupt,
                    signal.SIGHUP: common._hang_up}
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before
    assert one_error_line(capsys) == "error: stopped while parsing"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_before_the_run_is_one_line_and_exit_code_130(signum, monkeypatch, no_machine, capsys):
    """While the config is read: no traceback, and not a process killed by SIGTERM's default."""
    missed = []  # main must answer the signal itself; this one gets it if it does not
    previous = signal.signal(signum, lambda sig, frame: missed.append(sig))

    def config_read(*args, **kwargs):
        signal.raise_signal(signum)
        pytest.fail("the signal did not stop the command")

    monkeypatch.setattr(common, "load_config", config_read)
    try:
        assert main(["run", "baseline"]) == INTERRUPTED
    finally:
        signal.signal(signum, previous)
    assert missed == []
    assert one_error_line(capsys) == "interrupted: nothing is left running"


@pytest.mark.parametrize(
    "line, message",
    [
        ("nan fail primary", "script.txt:1: the time must be between 0 and 3600 s"),
        ("inf fail primary", "script.txt:1: the time must be between 0 and 3600 s"),
        ("5 load nan", "script.txt:1: load: the rate must be between 1 and 5000 requests per second"),
        ("5 load inf", "script.txt:1: load: the rate must be between 1 and 5000 requests per second"),
    ],
)
def test_a_demo_script_with_a_number_that_is_not_finite_is_refused(
    line, message, tmp_path, monkeypatch, no_machine, capsys
):
    from experiments.runs import demo

    monkeypatch.setattr(demo, "terminal_problem", lambda: None)  # as if run in a terminal
    script = tmp_path / "script.txt"
    script.write_text(line + "\n")
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--script", "script.txt", "--out", str(tmp_path / "out")]) == USAGE_ERROR
    assert one_error_line(capsys) == f"error: {message}"


def test_wrong_option_points_at_its_commands_help(no_machine, capsys):
    assert main(["run", "baseline", "--bogus"]) == USAGE_ERROR
    assert "see `sdn-ha run --help`" in one_error_line(capsys)


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


def test_missing_service_accounts_are_named_with_what_creates_them(monkeypatch):
    def getpwnam(name):
        if name == "hatb-web":
            raise KeyError(name)
        return object()

    monkeypatch.setattr(prerequisites.pwd, "getpwnam", getpwnam)
    assert prerequisites.missing_accounts_problem() == (
        "no such account: hatb-web (created by setup/install.sh): run `make setup` first"
    )
    monkeypatch.setattr(prerequisites.pwd, "getpwnam", lambda name: object())
    assert prerequisites.missing_accounts_problem() is None


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
    assert names == [*SCENARIOS, "compare-replication", "study"]


@pytest.mark.parametrize(
    "command",
    [[], ["list"], ["run"], ["bench"], ["chaos"], ["demo"], ["exec"], ["report"], ["compare"], ["clean"]],
)
def test_help_exits_0(command):
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: sdn-ha")


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


def test_a_scenario_that_needs_the_controller_is_refused_under_another_mechanism(tmp_path, capsys):
    assert main(["run", "controller-restart", "--mechanism", "vrrp", "--out", str(tmp_path)]) == USAGE_ERROR
    assert one_error_line(capsys).startswith(
        "error: controller-restart applies to failover.mechanism sdn only, not vrrp: ")


def test_the_demo_is_refused_under_another_mechanism(tmp_path, capsys, monkeypatch):
    from experiments.runs import demo

    monkeypatch.setattr(demo, "terminal_problem", lambda: None)
    assert main(["demo", "--mechanism", "proxy", "--out", str(tmp_path)]) == USAGE_ERROR
    assert "failover.mechanism must be sdn, not proxy" in one_error_line(capsys)


def test_topology_says_what_is_on_every_port_and_draws_it(tmp_path, capsys):
    assert main(["topology", "--topology", "two-tier", "--picture", str(tmp_path / "net.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("two-tier: 3 edges and 2 cores, 4 hosts, 6 cables")
    assert "  edge2 (dpid 2): port 1 primary 10.0.0.11, port 2 cable to core1 port 2, " \
           "port 3 cable to core2 port 2" in out
    assert "  core1 (dpid 101): port 1 cable to edge1 port 3, port 2 cable to edge2 port 2, " \
           "port 3 cable to edge3 port 2" in out
    assert (tmp_path / "net.png").stat().st_size > 10_000
    assert main(["topology"]) == 0  # one switch, and no proxy port without HAProxy
    assert "  s1 (dpid 1): port 1 client 10.0.0.1, port 2 monitor 10.0.0.250, port 3 primary 10.0.0.11, " \
           "port 4 secondary 10.0.0.12" in capsys.readouterr().out.splitlines()
