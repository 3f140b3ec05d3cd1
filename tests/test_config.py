"""The config is validated at the edge: every bad value is a one-line error naming its key."""

from pathlib import Path

import pytest

from topology.config import ConfigError, TestbedConfig, load_config

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


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"probe.interval_s": 0}, "probe.interval_s"),
        ({"probe.timeout_s": 0.05}, "probe.timeout_s"),  # not below the interval
        ({"probe.fall": 0}, "probe.fall"),
        ({"probe.rise": 0}, "probe.rise"),
        ({"probe.timeout_fall": 1}, "probe.timeout_fall"),  # below fall
        ({"probe.fall": "3"}, "probe.fall"),  # wrong type
        ({"probe.fall": True}, "probe.fall"),  # a bool is not an int here
        ({"probe.bogus": 1}, "probe.bogus"),  # unknown key
        ({"network.vip": "10.0.1.5"}, "network.vip"),  # outside the subnet
        ({"network.vip": "10.0.0.11"}, "network.vip"),  # a server's IP
        ({"network.vip": "not-an-ip"}, "network.vip"),
        ({"network.vmac": "zz"}, "network.vmac"),
        ({"network.subnet": "10.0.0.0/8"}, "network.subnet"),
        ({"network.switch": "br;rm"}, "network.switch"),
        ({"load.rate": 0}, "load.rate"),
        ({"load.duration_s": 0}, "load.duration_s"),
        ({"load.fault_at_s": 30}, "load.fault_at_s"),  # after the load ends
        ({"load.post_ratio": 1.5}, "load.post_ratio"),
        ({"failover.failback": "sometimes"}, "failover.failback"),
        ({"database.replication": "sync"}, "database.replication"),
        ({"web.workers": 0}, "web.workers"),
    ],
)
def test_bad_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert error.value.key == key
    assert str(error.value).startswith(key + ":")


@pytest.mark.parametrize(
    "servers, key",
    [
        ([{"name": "primary", "ip": "10.0.0.11"}], "servers"),  # only one
        ([{"name": "a", "ip": "10.0.0.11"}, {"name": "a", "ip": "10.0.0.12"}], "servers[1].name"),
        ([{"name": "a", "ip": "10.0.0.11"}, {"name": "b", "ip": "10.0.0.11"}], "servers[1].ip"),
        ([{"name": "a;ls", "ip": "10.0.0.11"}, {"name": "b", "ip": "10.0.0.12"}], "servers[0].name"),
        ([{"name": "client", "ip": "10.0.0.11"}, {"name": "b", "ip": "10.0.0.12"}], "servers[0].name"),
        ([{"name": "a", "ip": "10.0.0.11", "cpu": 0}, {"name": "b", "ip": "10.0.0.12"}], "servers[0].cpu"),
        ([{"name": "a", "ip": "10.0.0.11", "cpu": 1.5}, {"name": "b", "ip": "10.0.0.12"}], "servers[0].cpu"),
        ([{"name": "a", "ip": "10.0.0.11", "ram": 1}, {"name": "b", "ip": "10.0.0.12"}], "servers[0].ram"),
        ([{"name": "a"}, {"name": "b", "ip": "10.0.0.12"}], "servers[0].ip"),
    ],
)
def test_bad_servers_name_their_key(servers, key):
    with pytest.raises(ConfigError) as error:
        TestbedConfig.from_dict({"servers": servers})
    assert error.value.key == key


def test_unknown_section_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown section"):
        TestbedConfig.from_dict({"probes": {}})
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[probe\nfall = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
