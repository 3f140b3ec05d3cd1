"""The config is validated at the edge: every bad value is a one-line error naming its key.

The tables below hold one row per error message of topology/config.py: what is wrong, the key
the error names and a fragment of what it says.
"""

import json
from pathlib import Path
from typing import Any

import pytest

import topology.config as config_module
from topology.config import ConfigError, TestbedConfig, load_config, mac_for

ROOT = Path(__file__).resolve().parent.parent


def test_default_toml_is_the_built_in_defaults():
    assert load_config(ROOT / "config" / "default.toml") == TestbedConfig()


def test_overrides_apply_and_ints_are_accepted_for_floats():
    config = load_config(None, {"load.rate": 500, "probe.fall": 2})
    assert config.load.rate == 500.0 and isinstance(config.load.rate, float)
    assert config.probe.fall == 2


def test_network_plan_is_derived_from_the_config():
    config = TestbedConfig()
    assert [p.port for p in (config.client, config.monitor, *config.server_plans)] == [1, 2, 3, 4]
    assert config.server("secondary").mac == "00:00:00:00:00:0c"
    assert TestbedConfig.from_dict(config.to_dict()) == config


SHIPPED_TOML = [*sorted((ROOT / "config").rglob("*.toml")), *sorted((ROOT / "docs").rglob("*.toml"))]


@pytest.mark.parametrize("path", SHIPPED_TOML)
def test_every_shipped_toml_config_loads(path: Path) -> None:
    assert isinstance(load_config(path), TestbedConfig)


@pytest.mark.parametrize("path", sorted((ROOT / "docs").rglob("config.json")))
def test_every_recorded_config_json_loads(path: Path) -> None:
    """The resolved configs of the example runs, read as the controller reads a run's config."""
    assert isinstance(TestbedConfig.from_dict(json.loads(path.read_text())), TestbedConfig)


@pytest.mark.parametrize(
    "overrides",
    [
        # the bounds themselves are allowed
        {"probe.interval_s": 10, "probe.timeout_s": 9.9, "probe.late_s": 10},
        {"probe.fall": 100, "probe.timeout_fall": 1000, "probe.rise": 100},
        {"failover.hold_down_s": 3600},
        {"failover.hold_down_s": 0},
        # ports next to the ones kept for other traffic
        {"web.port": 8080},
        {"web.port": 32767},
        {"web.port": 61000},
        {"web.port": 3307},
    ],
)
def test_values_at_the_bounds_load(overrides: dict[str, Any]) -> None:
    config = load_config(None, overrides)
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        assert getattr(getattr(config, section), key) == value


@pytest.mark.parametrize(
    "network, names",
    [
        ({}, ["s2", "clientx"]),  # not the switch, not client<N>
        ({"switch": "s2"}, ["s1", "c1"]),  # s1 is free once the switch is s2
    ],
)
def test_server_names_near_the_reserved_ones_load(network: dict[str, Any], names: list[str]) -> None:
    servers = [{"name": name, "ip": f"10.0.0.{11 + i}"} for i, name in enumerate(names)]
    config = TestbedConfig.from_dict({"network": network, "servers": servers})
    assert [plan.name for plan in config.server_plans] == names


@pytest.mark.parametrize(
    "subnet, ip, mac",
    [
        # the default /24 keeps the MACs the docs quote: the last octet
        ("10.0.0.0/24", "10.0.0.1", "00:00:00:00:00:01"),
        ("10.0.0.0/24", "10.0.0.11", "00:00:00:00:00:0b"),
        ("10.0.0.0/24", "10.0.0.250", "00:00:00:00:00:fa"),
        # a /16: the whole offset in the subnet, so 10.0.0.11 and 10.0.1.11 differ
        ("10.0.0.0/16", "10.0.0.11", "00:00:00:00:00:0b"),
        ("10.0.0.0/16", "10.0.1.11", "00:00:00:00:01:0b"),
        ("172.16.0.0/16", "172.16.255.254", "00:00:00:00:ff:fe"),
        ("192.168.5.64/26", "192.168.5.75", "00:00:00:00:00:0b"),
    ],
)
def test_a_hosts_mac_is_its_offset_in_the_subnet(subnet: str, ip: str, mac: str) -> None:
    assert mac_for(ip, subnet) == mac


SLASH_16 = {
    "network": {"subnet": "10.0.0.0/16", "clients": 3},
    "servers": [{"name": "primary", "ip": "10.0.0.11"}, {"name": "secondary", "ip": "10.0.1.11"}],
}


def test_hosts_of_a_slash_16_get_macs_of_their_own() -> None:
    config = TestbedConfig.from_dict(SLASH_16)
    plans = [config.client, config.monitor, *config.server_plans, *config.extra_clients]
    assert len({plan.mac for plan in plans}) == len(plans) == 6
    assert config.server("secondary").mac == "00:00:00:00:01:0b"


def test_two_hosts_with_one_mac_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last octet alone, as the MAC once was, gives two hosts of a /16 one MAC: refused."""
    def last_octet(ip: str, subnet: str) -> str:
        return f"00:00:00:00:00:{int(ip.split('.')[3]):02x}"

    monkeypatch.setattr(config_module, "mac_for", last_octet)
    with pytest.raises(ConfigError) as error:
        TestbedConfig.from_dict(SLASH_16)
    assert error.value.key == "servers[1].ip"
    assert "10.0.1.11 gets the MAC 00:00:00:00:00:0b, already that of primary (10.0.0.11)" in str(error.value)


def test_extra_clients_sit_after_the_servers():
    config = load_config(None, {"network.clients": 3})
    assert [(p.name, p.ip, p.port) for p in config.extra_clients] == [
        ("client2", "10.0.0.151", 5), ("client3", "10.0.0.152", 6)]


# An address near the top of IPv4, with a subnet around it, so that client2 (client_ip + 150)
# would fall past 255.255.255.255.
TOP_OF_IPV4 = {"network.subnet": "255.255.0.0/16", "network.client_ip": "255.255.255.200",
               "network.monitor_ip": "255.255.0.250", "network.clients": 2}


@pytest.mark.parametrize(
    "overrides, key, says",
    [
        # network: the subnet and every address in it
        ({"network.subnet": "ten"}, "network.subnet", "'ten' is not a network like 10.0.0.0/24"),
        ({"network.subnet": "10.0.0.0/8"}, "network.subnet", "must be an IPv4 network of /16 to /30"),
        ({"network.subnet": "fd00::/64"}, "network.subnet", "must be an IPv4 network"),
        ({"network.client_ip": "nope"}, "network.client_ip", "'nope' is not an IPv4 address"),
        ({"network.client_ip": "10.0.0.0"}, "network.client_ip", "outside network.subnet 10.0.0.0/24"),
        ({"network.monitor_ip": "10.0.0.255"}, "network.monitor_ip", "outside network.subnet"),
        ({"network.monitor_ip": "10.0.0.1"}, "network.monitor_ip",
         "10.0.0.1 is already used by network.client_ip"),
        ({"network.clients": 0}, "network.clients", "must be between 1 and 64"),
        ({"network.clients": 65}, "network.clients", "must be between 1 and 64"),
        (TOP_OF_IPV4, "network.clients", "too many clients after 255.255.255.200"),
        ({"network.clients": 2, "network.client_ip": "10.0.0.200"}, "network.clients",
         "10.0.1.94 is outside network.subnet"),
        ({"network.clients": 2, "network.client_ip": "10.0.0.100"}, "network.clients",
         "10.0.0.250 is already used by network.monitor_ip"),
        ({"network.vip": "10.0.1.5"}, "network.vip", "10.0.1.5 is outside network.subnet"),
        ({"network.vip": "10.0.0.11"}, "network.vip", "10.0.0.11 is already used by servers[0].ip"),
        ({"network.vip": "not-an-ip"}, "network.vip", "'not-an-ip' is not an IPv4 address"),
        # network: the rest
        ({"network.vmac": "zz"}, "network.vmac", "'zz' is not a MAC like 02:00:00:00:01:00"),
        ({"network.controller_port": 80}, "network.controller_port", "must be between 1024 and 65535"),
        ({"network.status_port": 70000}, "network.status_port", "must be between 1024 and 65535"),
        ({"network.status_port": 6653}, "network.status_port", "not the controller_port"),
        ({"network.dashboard_port": 80}, "network.dashboard_port", "must be between 1024 and 65535"),
        ({"network.dashboard_port": 8181}, "network.dashboard_port", "neither the controller_port nor"),
        ({"network.switch": "br;rm"}, "network.switch", "'br;rm' must be 's' and a number, like s1"),
        ({"network.vmac": "00:00:00:00:00:0b"}, "network.vmac",
         "00:00:00:00:00:0b is already the MAC of primary (10.0.0.11)"),
        ({"network.vmac": "00:00:00:00:00:fa"}, "network.vmac", "already the MAC of monitor (10.0.0.250)"),
        # probe
        ({"probe.interval_s": 0}, "probe.interval_s", "must be > 0"),
        ({"probe.timeout_s": 0.05}, "probe.timeout_s", "below probe.interval_s (0.04)"),
        ({"probe.timeout_s": 0}, "probe.timeout_s", "must be > 0"),
        ({"probe.interval_s": 10.5}, "probe.interval_s", "must be > 0 and at most 10 seconds"),
        ({"probe.fall": 0}, "probe.fall", "must be between 1 and 100"),
        ({"probe.fall": 101}, "probe.fall", "must be between 1 and 100"),
        ({"probe.timeout_fall": 1}, "probe.timeout_fall", "must be >= probe.fall (2)"),
        ({"probe.timeout_fall": 1001}, "probe.timeout_fall", "and at most 1000"),
        ({"probe.rise": 0}, "probe.rise", "must be between 1 and 100"),
        ({"probe.rise": 101}, "probe.rise", "must be between 1 and 100"),
        ({"probe.late_s": 0.03}, "probe.late_s", "must be 0 (off) or above probe.timeout_s (0.035)"),
        ({"probe.late_s": 11}, "probe.late_s", "and at most 10 seconds"),
        # failover
        ({"failover.failback": "sometimes"}, "failover.failback", "must be one of never, auto"),
        ({"failover.hold_down_s": -1}, "failover.hold_down_s", "must be between 0 and 3600 seconds"),
        ({"failover.hold_down_s": 3601}, "failover.hold_down_s", "must be between 0 and 3600 seconds"),
        # load
        ({"load.rate": 0}, "load.rate", "between 1 and 5000 requests per second"),
        ({"load.duration_s": 0}, "load.duration_s", "between 1 and 3600 seconds"),
        ({"load.fault_at_s": 30}, "load.fault_at_s", "below load.duration_s (20.0)"),  # after the load
        ({"load.fault_at_s": -1}, "load.fault_at_s", "must be >= 0"),
        ({"load.post_ratio": 1.5}, "load.post_ratio", "must be between 0 and 1"),
        ({"load.timeout_s": 31}, "load.timeout_s", "at most 30 seconds"),
        # web
        ({"web.port": 0}, "web.port", "must be between 1 and 65535"),
        # the switch rewrites what servers send from web.port: no other traffic may use it
        ({"web.port": 3306}, "web.port", "3306 is the databases' port"),
        ({"web.port": 6653}, "web.port", "6653 is network.controller_port"),
        ({"web.port": 8181}, "web.port", "8181 is network.status_port"),
        ({"web.port": 7000, "network.status_port": 7000}, "web.port", "7000 is network.status_port"),
        ({"web.port": 32768}, "web.port", "outside the hosts' ephemeral ports 32768-60999"),
        ({"web.port": 60999}, "web.port", "outside the hosts' ephemeral ports 32768-60999"),
        ({"web.workers": 0}, "web.workers", "must be between 1 and 16"),
        ({"web.threads": 65}, "web.threads", "must be between 1 and 64"),
        # database
        ({"database.replication": "sync"}, "database.replication", "must be one of async, semi-sync"),
        ({"database.semi_sync_timeout_ms": 5}, "database.semi_sync_timeout_ms", "between 10 and 60000"),
        # types and keys, checked while reading, before any of the above
        ({"probe.fall": "3"}, "probe.fall", "must be int, got str '3'"),
        ({"probe.fall": True}, "probe.fall", "must be int, got bool True"),  # a bool is not an int here
        ({"probe.interval_s": "fast"}, "probe.interval_s", "must be float, got str 'fast'"),
        ({"probe.bogus": 1}, "probe.bogus", "unknown key; allowed: interval_s, timeout_s, fall"),
        # numbers that are not finite (TOML and JSON can spell them), in every kind of key
        ({"failover.hold_down_s": float("nan")}, "failover.hold_down_s", "must be a finite number, got nan"),
        ({"probe.interval_s": float("inf")}, "probe.interval_s", "must be a finite number, got inf"),
        ({"probe.timeout_s": float("nan")}, "probe.timeout_s", "must be a finite number, got nan"),
        ({"load.rate": float("-inf")}, "load.rate", "must be a finite number, got -inf"),
        ({"load.duration_s": float("inf")}, "load.duration_s", "must be a finite number, got inf"),
        ({"load.fault_at_s": float("nan")}, "load.fault_at_s", "must be a finite number, got nan"),
        ({"load.post_ratio": float("nan")}, "load.post_ratio", "must be a finite number, got nan"),
        ({"load.timeout_s": float("inf")}, "load.timeout_s", "must be a finite number, got inf"),
    ],
)
def test_bad_values_name_their_key(overrides: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert error.value.key == key
    assert str(error.value).startswith(key + ":")
    assert says in str(error.value)


OTHER = {"name": "b", "ip": "10.0.0.12"}


@pytest.mark.parametrize(
    "servers, key, says",
    [
        ([], "servers", "must be a non-empty list of [[servers]] tables"),
        ({"name": "a"}, "servers", "must be a non-empty list"),
        (["primary", OTHER], "servers[0]", "must be a table with name, ip and cpu"),
        ([{"name": "a", "ip": "10.0.0.11", "ram": 1}, OTHER], "servers[0].ram",
         "unknown key; allowed: name, ip, cpu"),
        ([{"name": "a"}, OTHER], "servers[0].ip", "is required"),
        ([{"ip": "10.0.0.11"}, OTHER], "servers[0].name", "is required"),
        ([{"name": 7, "ip": "10.0.0.11"}, OTHER], "servers[0].name", "must be str, got int 7"),
        ([{"name": "a", "ip": "10.0.0.11", "cpu": "half"}, OTHER], "servers[0].cpu", "must be float"),
        ([{"name": "primary", "ip": "10.0.0.11"}], "servers", "needs at least two servers"),
        ([{"name": "a", "ip": "10.0.0.11"}, {"name": "a", "ip": "10.0.0.12"}], "servers[1].name",
         "'a' is already the name of servers[0]"),
        ([{"name": "a", "ip": "10.0.0.11"}, {"name": "b", "ip": "10.0.0.11"}], "servers[1].ip",
         "10.0.0.11 is already used by servers[0].ip"),
        ([{"name": "a", "ip": "10.0.1.11"}, OTHER], "servers[0].ip", "outside network.subnet"),
        ([{"name": "a;ls", "ip": "10.0.0.11"}, OTHER], "servers[0].name",
         "'a;ls' must be 1-10 lowercase letters or digits, starting with a letter"),
        ([{"name": "abcdefghijk", "ip": "10.0.0.11"}, OTHER], "servers[0].name",
         "must be 1-10 lowercase letters"),  # "<name>-eth0" would pass Linux's 15 characters
        # the names Mininet or the testbed give their own nodes
        ([{"name": "client", "ip": "10.0.0.11"}, OTHER], "servers[0].name",
         "'client' is already the name of the client host"),
        ([{"name": "monitor", "ip": "10.0.0.11"}, OTHER], "servers[0].name", "the monitor host"),
        ([OTHER, {"name": "s1", "ip": "10.0.0.11"}], "servers[1].name",
         "'s1' is already the name of the switch (network.switch)"),
        ([OTHER, {"name": "c0", "ip": "10.0.0.11"}], "servers[1].name", "Mininet's controller node"),
        ([{"name": "client2", "ip": "10.0.0.11"}, OTHER], "servers[0].name", "an extra client host"),
        ([{"name": "client64", "ip": "10.0.0.11"}, OTHER], "servers[0].name", "an extra client host"),
        ([{"name": "a", "ip": "10.0.0.11", "cpu": 0}, OTHER], "servers[0].cpu",
         "must be in (0, 1], got 0.0"),
        ([{"name": "a", "ip": "10.0.0.11", "cpu": 1.5}, OTHER], "servers[0].cpu",
         "must be in (0, 1], got 1.5"),
        ([{"name": "a", "ip": "10.0.0.11", "cpu": float("nan")}, OTHER], "servers[0].cpu",
         "must be a finite number, got nan"),
    ],
)
def test_bad_servers_name_their_key(servers: Any, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        TestbedConfig.from_dict({"servers": servers})
    assert error.value.key == key
    assert says in str(error.value)


@pytest.mark.parametrize(
    "data, key, says",
    [
        (["network"], "config", "must be a table"),
        ({"probes": {}}, "probes",
         "unknown section; allowed: database, failover, load, machines, network, placement, probe"),
        ({"probe": 3}, "probe", "must be a table"),
    ],
)
def test_bad_structure_names_its_key(data: Any, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        TestbedConfig.from_dict(data)
    assert error.value.key == key
    assert says in str(error.value)


@pytest.mark.parametrize(
    "content, says",
    [
        (None, "no such file"),  # nothing written
        (b"[probe\nfall = 3", "is not valid TOML"),
        (b"\xff\xfe[probe]", "cannot read"),  # not UTF-8
        ("a folder", "cannot read"),
    ],
)
def test_a_config_file_that_cannot_be_used_is_named(tmp_path: Path, content: bytes | str | None,
                                                   says: str) -> None:
    path = tmp_path / "testbed.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.mkdir()
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.key == "--config"
    assert says in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize(
    "overrides, key",
    [
        # Each pair is wrong in two places: the one reported is the one checked first.
        ({"network.subnet": "ten", "network.vip": "nope"}, "network.subnet"),
        ({"network.vip": "nope", "network.vmac": "zz"}, "network.vip"),
        ({"network.switch": "x", "probe.fall": 0}, "network.switch"),
        ({"probe.rise": 0, "failover.hold_down_s": -1}, "probe.rise"),
        ({"failover.hold_down_s": -1, "load.rate": 0}, "failover.hold_down_s"),
        ({"load.timeout_s": 0, "web.port": 0}, "load.timeout_s"),
        ({"web.threads": 0, "database.replication": "sync"}, "web.threads"),
        ({"database.replication": "sync", "probe.fall": "3"}, "probe.fall"),  # types come first
    ],
)
def test_the_first_failing_check_is_the_one_reported(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert error.value.key == key


def test_servers_are_checked_after_the_network_and_before_the_probes() -> None:
    data = {"servers": [{"name": "a", "ip": "10.0.0.11"}], "network": {"switch": "x"}, "probe": {"fall": 0}}
    with pytest.raises(ConfigError, match="^network.switch"):
        TestbedConfig.from_dict(data)
    del data["network"]
    with pytest.raises(ConfigError, match="^servers: needs at least two"):
        TestbedConfig.from_dict(data)


def test_a_run_config_that_cannot_be_read_is_a_config_error(tmp_path):
    from topology.config import ConfigError, TestbedConfig

    good = tmp_path / "config.json"
    good.write_text(json.dumps(TestbedConfig().to_dict()))
    assert TestbedConfig.from_file(good) == TestbedConfig()
    (tmp_path / "junk.json").write_text("{not json")
    for path in (tmp_path / "junk.json", tmp_path / "missing.json"):
        with pytest.raises(ConfigError, match="cannot read"):
            TestbedConfig.from_file(path)
    (tmp_path / "bad.json").write_text(json.dumps({"load": {"rate": -1}}))
    with pytest.raises(ConfigError, match="load.rate"):
        TestbedConfig.from_file(tmp_path / "bad.json")
