"""Servers on other machines: the [[machines]] and [placement] parts of the config, and the
SSH commands the head runs on those machines (topology/remote.py), without any machine.

One row per error message of topology/placement.py: what is wrong, the key the error names
and a fragment of what it says.
"""

from typing import Any

import pytest

from topology.config import ConfigError, TestbedConfig
from topology.placement import MachineConfig
from topology.remote import RemoteMachine

M2 = {"name": "m2", "address": "192.168.56.12"}
M3 = {"name": "m3", "address": "vm3.lab.example", "user": "admin", "port": 2222,
      "key": "/root/.ssh/id_lab", "known_hosts": "/root/.ssh/known_lab"}
SECONDARY_FULL_CPU = [{"name": "primary", "ip": "10.0.0.11"}, {"name": "secondary", "ip": "10.0.0.12"}]


def built(machines: Any = None, placement: Any = None, servers: Any = None, **sections: Any) -> TestbedConfig:
    data: dict[str, Any] = {"servers": servers or SECONDARY_FULL_CPU, "probe": {"agent": False}, **sections}
    if machines is not None:
        data["machines"] = machines
    if placement is not None:
        data["placement"] = placement
    return TestbedConfig.from_dict(data)


def test_without_machines_every_host_runs_on_the_head():
    config = TestbedConfig()
    assert config.machines == () and config.placement == ()
    assert all(config.machine_of(plan.name) is None for plan in config.host_plans)


def test_a_placed_server_runs_on_its_machine_and_the_rest_on_the_head():
    config = built([M2, M3], {"secondary": "m3", "primary": "head"})
    assert config.machine_of("secondary") == MachineConfig("m3", "vm3.lab.example", "admin", 2222,
                                                            "/root/.ssh/id_lab", "/root/.ssh/known_lab")
    assert config.machine_of("primary") is None and config.machine_of("client") is None
    assert TestbedConfig.from_dict(config.to_dict()) == config  # as the controller reads config.json


@pytest.mark.parametrize(("machines", "placement", "key", "says"), [
    ({"name": "m2"}, None, "machines", "must be a list of [[machines]] tables"),
    (["m2"], None, "machines[0]", "must be a table with name, address"),
    ([{"address": "10.1.1.1"}], None, "machines[0].name", "is required"),
    ([{"name": "m2"}], None, "machines[0].address", "is required"),
    ([{**M2, "password": "x"}], None, "machines[0].password", "unknown key; allowed: name, address"),
    ([{**M2, "name": "head"}], None, "machines[0].name", "not 'head' (this machine)"),
    ([{**M2, "name": "M2"}], None, "machines[0].name", "must be 1-16 lowercase letters"),
    ([M2, {**M2, "address": "10.1.1.2"}], None, "machines[1].name", "'m2' is listed twice"),
    ([M2, {"name": "m3", "address": M2["address"]}], None, "machines[1].address", "is already machine m2"),
    ([{**M2, "address": "-oProxyCommand=x"}], None, "machines[0].address", "neither an IPv4 address"),
    ([{**M2, "address": "a b"}], None, "machines[0].address", "neither an IPv4 address"),
    ([{**M2, "address": "300.1.1.1"}], None, "machines[0].address", "neither an IPv4 address"),
    ([{**M2, "user": "root;ls"}], None, "machines[0].user", "is not a user name"),
    ([{**M2, "port": 0}], None, "machines[0].port", "must be in 1-65535"),
    ([{**M2, "port": "22"}], None, "machines[0].port", "must be int, got str"),
    ([{**M2, "key": "id_ed25519"}], None, "machines[0].key", "must be an absolute path"),
    ([{**M2, "known_hosts": "~/.ssh/kh"}], None, "machines[0].known_hosts", "must be an absolute path"),
    ([{**M2, "tunnel": "vxlan"}], None, "machines[0].tunnel", "'vxlan' must be one of: gre, ssh"),
    ([M2], ["secondary"], "placement", "must be a table of host"),
    ([M2], {"secondary": 2}, "placement.secondary", "must be str, got int"),
    ([M2], {"client": "m2"}, "placement.client", "only servers (primary, secondary) can run on another"),
    ([M2], {"monitor": "m2"}, "placement.monitor", "the switches and the controller stay on the head"),
    ([M2], {"secondary": "m9"}, "placement.secondary", "no machine 'm9'; add a [[machines]] table"),
    ([], {"secondary": "m2"}, "placement.secondary", "or use one of: head"),
])
def test_bad_machines_and_placements_name_their_key(machines, placement, key, says):
    with pytest.raises(ConfigError) as raised:
        built(machines, placement)
    assert raised.value.key == key and says in str(raised.value), str(raised.value)


def test_a_cpu_share_of_the_head_cannot_go_to_another_machine():
    servers = [{"name": "primary", "ip": "10.0.0.11"}, {"name": "secondary", "ip": "10.0.0.12", "cpu": 0.5}]
    with pytest.raises(ConfigError, match=r"secondary has cpu = 0.5.*set its cpu = 1.0, or leave it on"):
        built([M2], {"secondary": "m2"}, servers)
    assert built([M2], {"secondary": "head"}, servers).machine_of("secondary") is None


def test_the_web_services_word_cannot_cross_machines():
    says = "secondary on m2 cannot reach the prober's wake socket on the head: set probe.agent = false"
    with pytest.raises(ConfigError, match=says):
        built([M2], {"secondary": "m2"}, probe={"agent": True})


@pytest.mark.parametrize("mechanism", ["vrrp", "proxy"])
def test_keepalived_and_haproxy_stay_on_one_machine(mechanism):
    with pytest.raises(ConfigError, match="runs only on one machine"):
        built([M2], {"secondary": "m2"}, failover={"mechanism": mechanism})


# -- the SSH commands -------------------------------------------------------------------------

def test_a_command_runs_on_the_machine_through_its_master_connection(tmp_path):
    machine = RemoteMachine(MachineConfig(**M3), control_path=tmp_path / "m3.ctl")
    argv = machine.argv(["nsenter", "--net=/proc/42/ns/net", "mariadb", "-e", "SELECT 'a b'"])
    assert argv[:3] == ["ssh", "-p", "2222"] and argv[-3:-1] == ["admin@vm3.lab.example", "--"]
    assert argv[-1] == "exec nsenter --net=/proc/42/ns/net mariadb -e 'SELECT '\"'\"'a b'\"'\"''"
    options = " ".join(argv)
    for option in ("-i /root/.ssh/id_lab", "IdentitiesOnly=yes", "BatchMode=yes",
                   "UserKnownHostsFile=/root/.ssh/known_lab", "StrictHostKeyChecking=yes",
                   f"ControlPath={tmp_path / 'm3.ctl'}", "ControlMaster=no", "-T"):
        assert option in options, option


def test_the_master_connection_is_the_one_that_is_a_master(tmp_path):
    master = RemoteMachine(MachineConfig(**M2), control_path=tmp_path / "m2.ctl").master_command()
    assert "ControlMaster=yes" in master and "ControlMaster=no" not in master
    assert "-N" in master and "ControlPersist=no" in master and master[-1] == "root@192.168.56.12"
    with pytest.raises(ValueError, match="no control path"):
        RemoteMachine(MachineConfig(**M2)).master_command()


def test_a_started_process_writes_its_pid_then_becomes_the_command():
    argv = RemoteMachine(MachineConfig(**M2)).started_argv(["mariadbd", "--defaults-file=/x"], "/tmp/db.pid")
    assert argv[-1] == "exec sh -c 'echo $$ > \"$0\" && exec \"$@\"' /tmp/db.pid mariadbd --defaults-file=/x"


class ShortCommandMachine(RemoteMachine):
    """A machine where the started command wrote its PID (77) and then ended at once: its
    /proc entry is gone when the head comes to read it."""

    def run(self, command, timeout=15.0, input=None, check=True):
        import subprocess

        if command[0] == "cat":
            return subprocess.CompletedProcess(command, 0, "77\n", "")
        return subprocess.CompletedProcess(command, 1, "", "cat: /proc/77/stat: No such file")


def test_a_command_that_ended_before_it_was_identified_is_recorded_as_ended():
    record = ShortCommandMachine(MachineConfig(**M2)).started_process("/tmp/x.pid", lambda: False, ["true"])
    assert record == {"machine": "m2", "pid": 77, "ended": True, "cmdline": ["true"]}


# -- the checks before a run ---------------------------------------------------------------------

@pytest.mark.parametrize(("samples", "offset", "uncertainty"), [
    # (sent here, read there, answered here): the shortest round trip wins.
    ([(100.000, 100.0005, 100.001)], 0.0, 0.5),
    ([(100.000, 100.0305, 100.001)], 30.0, 0.5),
    ([(100.000, 99.990, 100.020), (101.000, 100.9805, 101.001)], -20.0, 0.5),
    ([(100.000, 100.300, 100.200), (101.0, 101.1, 101.2)], 200.0, 100.0),  # equally slow: the first
])
def test_the_clock_offset_is_read_from_the_quickest_round_trip(samples, offset, uncertainty):
    from experiments.testbed.machines import clock_offset

    measured, sure = clock_offset(samples)
    assert measured == pytest.approx(offset, abs=1e-6) and sure == pytest.approx(uncertainty, abs=1e-6)


@pytest.mark.parametrize(("there", "programs", "accounts", "offset", "says"), [
    ("abc", [], [], (1.0, 0.2), []),
    ("abc", [], [], (-49.0, 0.2), []),
    ("old", [], [], (1.0, 0.2), ["is not this one's (code old, here abc): copy this project there"]),
    ("", [], [], (1.0, 0.2), ["(code missing, here abc)"]),
    ("abc", ["mnexec", "mariadbd"], [], (1.0, 0.2), ["not installed there: mnexec, mariadbd: run `make"]),
    ("abc", [], ["hatb-web"], (1.0, 0.2), ["no account hatb-web there"]),
    ("abc", [], [], (75.0, 0.2), ["its clock is +75 ms from this one's (at most 50)"]),
    ("abc", [], [], None, ["its clock could not be read"]),
    ("x", ["ip"], ["mysql"], (-90.0, 1.0),
     ["is not this one's", "not installed there: ip", "no account mysql", "its clock is -90 ms"]),
])
def test_a_machine_takes_part_only_with_the_same_code_programs_accounts_and_clock(
        there, programs, accounts, offset, says):
    from experiments.testbed.machines import judge

    check = judge("m2", "abc", there, programs, accounts, offset)
    assert len(check.problems) == len(says)
    for problem, fragment in zip(check.problems, says, strict=True):
        assert fragment in problem, problem
    if not says:
        assert check.summary() == f"m2: ready; clock {offset[0]:+.1f} ms (+/- 0.2)"


def test_the_fingerprint_changes_with_the_code(tmp_path):
    from experiments.testbed.machines import project_fingerprint

    for folder in ("topology", "services", "controller", "experiments"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.py").write_text("x = 1\n")
    before = project_fingerprint(tmp_path)
    assert project_fingerprint(tmp_path) == before
    (tmp_path / "services" / "a.py").write_text("x = 2\n")
    assert project_fingerprint(tmp_path) != before


def test_a_process_whose_machine_does_not_answer_stays_recorded_when_stopped(tmp_path, capsys):
    """Its machine does not answer: the stop goes on, and says so, and keeps the record for
    `make clean` (ssh to a port where nothing listens fails at once)."""
    import subprocess

    from services.runner import ManagedProcess, ProcessRunner, RemoteProcess, RunState

    state = RunState(tmp_path / "state.json")
    runner = ProcessRunner(tmp_path, state)
    local_ssh = subprocess.Popen(["sleep", "30"], start_new_session=True)
    state.add_process("web-secondary", local_ssh.pid, ["sleep", "30"])
    unreachable = RemoteMachine(MachineConfig("m2", "127.0.0.1", port=9))
    runner.processes["web-secondary"] = ManagedProcess("web-secondary", local_ssh, tmp_path / "web.log",
                                                       RemoteProcess(unreachable, 4242))
    runner.stop_all(timeout=1)
    assert local_ssh.wait(5) is not None  # the local ssh is stopped all the same
    assert "web-secondary" in state.processes  # kept, for `make clean`
    assert "web-secondary on m2 may still run: m2: cannot reach root@127.0.0.1" in capsys.readouterr().err
