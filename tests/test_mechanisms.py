"""The classic answers' parts, without a network: keepalived's and HAProxy's rendered configs,
what the follower reads from them, and what it decides (tables of reports -> events and
database actions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.fence_policy import FENCE_TIMEOUT_S, PROMOTE_TIMEOUT_S, PROMOTE_WAIT_S
from controller.follower import Follower
from services import haproxy, keepalived
from services.haproxy import HAProxy, chosen_server, server_states
from services.keepalived import Keepalived, parse_notify_line
from topology.config import PRESETS, ConfigError, TestbedConfig, load_config


def config_with(mechanism: str, preset: str = "tuned", **more: object) -> TestbedConfig:
    return load_config(overrides={"failover.mechanism": mechanism, "failover.preset": preset, **more})


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


# -- the config ------------------------------------------------------------------------------


def test_both_peers_have_exactly_the_configs_presets():
    assert set(keepalived.PRESETS) == set(PRESETS) == set(haproxy.PRESETS)


@pytest.mark.parametrize(("key", "value"), [("failover.mechanism", "bgp"), ("failover.preset", "fast")])
def test_an_unknown_mechanism_or_preset_is_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config(overrides={key: value})


def test_the_proxy_host_has_the_vip_and_a_port_of_its_own_only_under_the_proxy():
    config = config_with("proxy", **{"network.clients": 3})
    proxy = config.host_plans[-1]
    assert (proxy.name, proxy.ip) == ("proxy", config.network.vip)
    assert len({plan.port for plan in config.host_plans}) == len(config.host_plans)
    assert "proxy" not in [plan.name for plan in config_with("vrrp").host_plans]


def test_a_server_may_not_be_called_proxy():
    with pytest.raises(ConfigError, match=r"servers\[1\]\.name.*proxy host"):
        TestbedConfig.from_dict({"servers": [{"name": "primary", "ip": "10.0.0.11"},
                                             {"name": "proxy", "ip": "10.0.0.12"}]})


# -- keepalived ------------------------------------------------------------------------------


def keepalived_for(server: str, preset: str = "tuned") -> Keepalived:
    config = config_with("vrrp", preset)
    return Keepalived(config, config.server(server), f"{server}-eth0", Path("/run"), Path("/s"))


@pytest.mark.parametrize("preset", PRESETS)
def test_keepalived_runs_vrrp3_from_backup_without_preempting_with_its_presets_timing(preset):
    rendered = lines_of(keepalived_for("primary", preset).render_config())
    timing = keepalived.PRESETS[preset]
    for line in ("vrrp_version 3", "state BACKUP", "nopreempt", "interface primary-eth0",
                 f"advert_int {timing.advert_int_s:g}", f"interval {timing.check_interval_s}",
                 f"fall {timing.fall}", f"rise {timing.rise}", "10.0.0.100/24 dev primary-eth0",
                 "vrrp_notify_fifo /s/vrrp-primary.fifo", "enable_script_security"):
        assert line in rendered, line


def test_keepalived_priorities_follow_the_servers_order_and_each_names_the_others_as_peers():
    primary, secondary = keepalived_for("primary"), keepalived_for("secondary")
    assert primary.priority > secondary.priority
    assert "unicast_src_ip 10.0.0.11" in lines_of(primary.render_config())
    peers = lines_of(primary.render_config())
    assert "10.0.0.12" in peers and "10.0.0.11" not in peers[peers.index("unicast_peer {"):]


def test_keepalived_checks_the_health_of_its_own_server():
    rendered = keepalived_for("secondary").render_config()
    assert "http://10.0.0.12:80/health" in rendered


def test_the_shipped_preset_is_keepalived_s_defaults():
    shipped = keepalived.PRESETS["defaults"]
    assert (shipped.advert_int_s, shipped.check_interval_s, shipped.fall, shipped.rise) == (1.0, 1, 1, 1)


@pytest.mark.parametrize(("line", "parsed"), [
    ('INSTANCE "VIP" MASTER 150\n', ("VIP", "MASTER")),
    ('INSTANCE "VIP" FAULT 150', ("VIP", "FAULT")),
    ('GROUP "G1" BACKUP 0', None),
    ("", None),
    ("junk", None),
    ('INSTANCE ""', None),
])
def test_notify_fifo_lines(line, parsed):
    assert parse_notify_line(line) == parsed


# -- HAProxy ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_haproxy_sends_to_the_first_server_and_keeps_the_others_as_backups(preset):
    config = config_with("proxy", preset)
    rendered = lines_of(HAProxy(config, Path("/run"), Path("/s")).render_config())
    assert "server primary 10.0.0.11:80 check" in rendered
    assert "server secondary 10.0.0.12:80 check backup" in rendered
    assert "bind 10.0.0.100:80" in rendered
    assert "stats socket /s/haproxy.sock mode 600 level admin" in rendered
    assert "option httpchk GET /health" in rendered


def test_only_the_tuned_haproxy_watches_client_traffic_and_redispatches():
    shipped = HAProxy(config_with("proxy", "defaults"), Path("/r"), Path("/s")).render_config()
    tuned = HAProxy(config_with("proxy", "tuned"), Path("/r"), Path("/s")).render_config()
    assert "observe layer4" not in shipped and "redispatch" not in shipped
    assert "inter 2000ms" in shipped and "fall 3 rise 2" in shipped
    assert "observe layer4 error-limit 1 on-error mark-down" in tuned and "option redispatch 1" in tuned
    assert "timeout check" not in shipped and "timeout check 100ms" in tuned


@pytest.mark.parametrize(("failback", "sticks"), [("never", True), ("auto", False)])
def test_haproxy_sticks_to_the_last_server_only_without_failback(failback, sticks):
    config = config_with("proxy", **{"failover.failback": failback})
    rendered = lines_of(HAProxy(config, Path("/r"), Path("/s")).render_config())
    # `size 1` without `nopurge` evicted the one entry under concurrent requests (a ping-pong).
    assert ("stick-table type integer size 1k nopurge" in rendered) is sticks
    assert ("stick on int(1)" in rendered) is sticks


# What HAProxy 2.6 answers (`show servers state web`), the primary down and the backup up.
STATE_ANSWER = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result
3 web 1 primary 10.0.0.11 0 0 1 1 2 8 2
3 web 2 secondary 10.0.0.12 2 0 1 1 2 6 3

"""


def test_server_states_are_read_by_column_name():
    assert server_states(STATE_ANSWER) == {"primary": 0, "secondary": 2}
    assert server_states("No such backend.\n") == {}
    assert server_states("1\n# be_id srv_name\n3 primary\n") == {}


@pytest.mark.parametrize(("states", "chosen"), [
    ({"primary": 2, "secondary": 2}, "primary"),
    ({"primary": 0, "secondary": 2}, "secondary"),
    ({"primary": 3, "secondary": 2}, "secondary"),  # stopping: no new traffic
    ({"primary": 0, "secondary": 0}, None),
    ({}, None),
])
def test_haproxy_chooses_the_first_running_server(states, chosen):
    assert chosen_server(states, ["primary", "secondary"]) == chosen


# -- the follower's decisions ------------------------------------------------------------------


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def write(self, kind: str, **fields: object) -> None:
        self.events.append((kind, fields))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def actions_of(plan) -> list[tuple[str, bool, float]]:
    return [(a.server, a.read_only, a.timeout_s) for a in plan.actions]


VRRP_CASES = [
    # reports in order -> the VIP's holder after them, the placements logged, the last actions
    ([("primary", "MASTER")], "primary", ["vip_installed"], [("primary", False, PROMOTE_TIMEOUT_S)]),
    ([("primary", "MASTER"), ("primary", "FAULT")], None, ["vip_installed"],
     [("primary", True, FENCE_TIMEOUT_S)]),
    ([("primary", "MASTER"), ("primary", "FAULT"), ("secondary", "MASTER")], "secondary",
     ["vip_installed", "vip_moved"], [("secondary", False, PROMOTE_TIMEOUT_S)]),
    # the new master may speak first: that is a move, so the old one is fenced then, and its
    # FAULT after starts no second fence (the promotion waits for the fence's answer)
    ([("primary", "MASTER"), ("secondary", "MASTER")], "secondary",
     ["vip_installed", "vip_moved"], [("primary", True, FENCE_TIMEOUT_S)]),
    ([("primary", "MASTER"), ("secondary", "MASTER"), ("primary", "FAULT")], "secondary",
     ["vip_installed", "vip_moved"], []),
    ([("secondary", "BACKUP")], None, [], [("secondary", True, FENCE_TIMEOUT_S)]),
]


@pytest.mark.parametrize(("reports", "holder", "placements", "last_actions"), VRRP_CASES)
def test_the_follower_under_keepalived(reports, holder, placements, last_actions):
    log = Log()
    follower = Follower(log)
    plan = None
    for t, (server, state) in enumerate(reports):
        plan = follower.vrrp_state(server, state, now=float(t))
    assert follower.holder == holder
    assert [k for k in log.kinds() if k.startswith("vip_")] == placements
    assert log.kinds().count("vrrp_state") == len(reports)
    assert actions_of(plan) == last_actions


UP, DOWN = 2, 0
BOTH_UP = {"primary": UP, "secondary": UP}
PRIMARY_DOWN = {"primary": DOWN, "secondary": UP}
PROMOTE = {name: (name, False, PROMOTE_TIMEOUT_S) for name in ("primary", "secondary")}
FENCE = {name: (name, True, FENCE_TIMEOUT_S) for name in ("primary", "secondary")}
PROXY_CASES = [
    ([BOTH_UP], "primary", ["vip_installed"], [PROMOTE["primary"]]),
    # the old server is fenced first; the new one is promoted when that fence answers
    ([BOTH_UP, PRIMARY_DOWN], "secondary", ["vip_installed", "vip_moved"], [FENCE["primary"]]),
    # HAProxy sends the traffic back once the first server is up again: so does the follower
    ([BOTH_UP, PRIMARY_DOWN, BOTH_UP], "primary", ["vip_installed", "vip_moved", "vip_moved"],
     [FENCE["secondary"]]),
    # a change that moves nothing decides nothing
    ([BOTH_UP, {"primary": UP, "secondary": DOWN}], "primary", ["vip_installed"], []),
    ([{"primary": UP, "secondary": DOWN}, {"primary": DOWN, "secondary": DOWN}], None, ["vip_installed"],
     [FENCE["primary"]]),
]


@pytest.mark.parametrize(("polls", "holder", "placements", "last_actions"), PROXY_CASES)
def test_the_follower_under_haproxy(polls, holder, placements, last_actions):
    log = Log()
    follower = Follower(log)
    plan = None
    for t, states in enumerate(polls):
        plan = follower.proxy_states(states, ["primary", "secondary"], now=float(t))
    assert follower.holder == holder
    assert [k for k in log.kinds() if k.startswith("vip_")] == placements
    assert actions_of(plan) == last_actions
    if holder is None:
        assert log.kinds()[-1] == "no_healthy_server"


# -- the bench's table and picture ---------------------------------------------------------------


def bench_results() -> dict:
    gap = {"n": 2, "median": 20.0, "p95": 30.0, "max": 31.0}
    applies = {"applies": True, "failover_gap_ms": gap, "requests_failed": {"median": 4},
               "acked_writes_lost": {"max": 0}, "availability_pct": {"median": 99.9}}
    baseline = {"latency_ms": {"p50": 1.1, "p99": 4.0}, "requests_failed": 0, "false_failovers": 0}
    ping_pong = {**applies, "vip_moves": {"max": 7}}
    none = {**applies, "failover_gap_ms": {"n": 0, "median": None, "p95": None, "max": None}}
    return {"rate": 500, "trials": 2, "scenarios": ["primary-crash", "controller-restart", "flap"],
            "cells": {"sdn": {"duration_s": 8, "fault_at_s": 2, "baseline": baseline,
                              "scenarios": {"primary-crash": applies, "controller-restart": applies,
                                            "flap": applies}},
                      "vrrp defaults": {"duration_s": 20, "fault_at_s": 3, "baseline": baseline,
                                        "scenarios": {"primary-crash": none,
                                                      "controller-restart": {"applies": False},
                                                      "flap": ping_pong}}}}


def test_the_mechanisms_table_shows_every_cell_and_what_does_not_apply():
    from experiments.results.mechanisms_report import mechanisms_table

    table = mechanisms_table(bench_results())
    assert "(sdn: 8 s of load, the fault at 2 s; vrrp defaults: 20 s of load, the fault at 3 s)" in table
    assert "| scenario | sdn | vrrp defaults |" in table
    assert ("| primary-crash | 20.0 / 30.0 (4 failed, 0 lost) | no failover within 17 s (4 failed, 0 lost) |"
            in table)
    assert "| controller-restart | 20.0 / 30.0 (4 failed, 0 lost) | does not apply |" in table
    assert ("| flap | 20.0 / 30.0 (4 failed, 0 lost) | 20.0 / 30.0 (4 failed, 0 lost, up to 7 moves) |"
            in table)
    assert "| controller-restart | 99.9 | - |" in table  # availability
    assert "| vrrp defaults | 1.1 | 4.0 | 0 | 0 |" in table


def test_a_resumed_bench_keeps_every_cell_it_recorded_whole_or_not(tmp_path):
    from experiments.runs.mechanisms_bench import in_bench_order, resumed_results

    results = bench_results()
    results["cells"]["proxy tuned"] = {"duration_s": 8, "fault_at_s": 2, "baseline": {},
                                       "scenarios": {"primary-crash": {"applies": True}}}
    (tmp_path / "bench-mechanisms.json").write_text(json.dumps(results))
    resumed = resumed_results(tmp_path, ("primary-crash", "controller-restart"))
    assert list(resumed["cells"]) == ["sdn", "vrrp defaults", "proxy tuned"]  # its other runs come next
    assert list(in_bench_order({"proxy tuned": {}, "vrrp defaults": {}, "sdn": {}})) == [
        "sdn", "vrrp defaults", "proxy tuned"]


def test_a_run_a_stopped_bench_finished_is_found_and_one_it_stopped_in_is_not(tmp_path):
    from experiments.runs.mechanisms_bench import finished_run

    def run(name: str, stamp: str, summary: dict | None) -> Path:
        folder = tmp_path / f"{name}-{stamp}"
        (folder / "trial-01").mkdir(parents=True)
        if summary is not None:
            (folder / "summary.json").write_text(json.dumps(summary))
        return folder

    done = run("web-crash", "20261201-180512", {"scenario": "web-crash", "trials": 20, "failover_gap_ms": {}})
    run("web-crash", "20261201-183845", None)  # stopped in its trials: no summary yet
    run("db-crash", "20261201-181510", {"scenario": "db-crash", "trials": 5})  # fewer trials
    baseline = run("baseline", "20261201-175440", {"scenario": "baseline"})  # one trial: no "trials"
    assert finished_run(tmp_path, "web-crash", 20)[0] == done
    assert finished_run(tmp_path, "db-crash", 20) is None
    assert finished_run(tmp_path, "baseline", 1)[0] == baseline
    assert finished_run(tmp_path, "flap", 20) is None


@pytest.mark.parametrize("content", [None, "not json", "[1, 2]"])
def test_a_folder_without_bench_results_cannot_be_resumed(tmp_path, content):
    from experiments.runs.mechanisms_bench import ResumeError, resumed_results

    if content is not None:
        (tmp_path / "bench-mechanisms.json").write_text(content)
    with pytest.raises(ResumeError, match=f"--resume {tmp_path}: "):
        resumed_results(tmp_path, ())


def test_the_mechanisms_picture_is_drawn(tmp_path):
    from experiments.results.mechanisms_report import draw_gaps

    draw_gaps(bench_results(), tmp_path / "gaps.png")
    assert (tmp_path / "gaps.png").stat().st_size > 10_000


@pytest.mark.parametrize(("given", "cells"), [
    (None, None),
    (["sdn", "vrrp:defaults", "proxy"], (("sdn", "tuned"), ("vrrp", "defaults"), ("proxy", "tuned"))),
])
def test_bench_cells_from_the_command_line(given, cells):
    from experiments.cli.bench import mechanism_cells
    from experiments.runs.mechanisms_bench import CELLS

    assert mechanism_cells(given) == (cells or CELLS)


@pytest.mark.parametrize("bad", ["bgp", "vrrp:fast", "sdn:tuned"])
def test_a_bad_bench_cell_is_a_usage_error(bad):
    from experiments.cli.bench import mechanism_cells
    from experiments.cli.common import UsageError

    with pytest.raises(UsageError, match="give sdn, or vrrp or proxy"):
        mechanism_cells([bad])


def test_a_search_candidate_stands_for_the_tuned_preset_only_while_it_runs():
    from experiments.runs.preset_search import CANDIDATES, tuned_as

    kept = keepalived.PRESETS["tuned"]
    label, candidate = CANDIDATES["vrrp"][-1]
    with tuned_as("vrrp", candidate):
        assert f"advert_int {candidate.advert_int_s:g}" in keepalived_for("primary").render_config()
    assert keepalived.PRESETS["tuned"] is kept
    with pytest.raises(RuntimeError), tuned_as("proxy", CANDIDATES["proxy"][0][1]):
        raise RuntimeError("a run that fails")
    assert haproxy.PRESETS["tuned"] is not CANDIDATES["proxy"][0][1]  # restored after the failure


def test_the_search_candidates_go_from_slow_to_fast():
    from experiments.runs.preset_search import CANDIDATES

    adverts = [timing.advert_int_s for _, timing in CANDIDATES["vrrp"]]
    checks = [timing.check_interval_ms for _, timing in CANDIDATES["proxy"]]
    assert adverts == sorted(adverts, reverse=True) and checks == sorted(checks, reverse=True)


def test_the_vip_holder_is_read_from_what_the_event_log_added_since_the_last_call(tmp_path):
    import json

    from experiments.testbed.control import HolderFromLog, active_from_log

    log = tmp_path / "controller-events.jsonl"
    holder = HolderFromLog(log)
    assert holder() is None  # no log yet
    line = lambda kind, server: json.dumps({"time": 1.0, "kind": kind, "server": server}) + "\n"  # noqa: E731
    log.write_text(line("vip_installed", "primary") + line("db_writable", "primary"))
    assert holder() == "primary"
    with open(log, "a") as f:
        f.write(line("vip_moved", "secondary")[:-10])  # a line still being written
    assert holder() == "primary"
    with open(log, "a") as f:
        f.write(line("vip_moved", "secondary")[-10:] + line("no_healthy_server", None))
    assert holder() == "secondary" == active_from_log(log, "primary")


# -- where the VIP's traffic goes, read from the switch ------------------------------------------

DUMP = """OFPST_FLOW reply (OF1.3) (xid=0x2):
 cookie=0x7e57000000000101, duration=3.2s, table=0, n_packets=12, priority=100,ip,nw_dst=10.0.0.100 \
actions=set_field:00:00:00:00:00:12->eth_dst,set_field:10.0.0.12->ip_dst,output:2
 cookie=0x7e57000000000000, duration=9.1s, table=0, n_packets=0, priority=200,tcp,in_port=1 actions=NORMAL
"""


@pytest.mark.parametrize(("dump", "cookies"), [
    (DUMP, [0x7E57_0000_0000_0101]),
    ("OFPST_FLOW reply (OF1.3) (xid=0x2):\n", []),  # no VIP flow
    ("", []),  # ovs-ofctl failed and printed nothing
])
def test_the_vip_flows_cookies_are_read_from_the_switchs_dump(dump, cookies):
    from controller.flows import server_for_cookie
    from experiments.testbed.ovs import vip_flow_cookies

    assert vip_flow_cookies(dump) == cookies
    assert [server_for_cookie(config_with("sdn"), c) for c in cookies] == ["secondary"] * len(cookies)


def test_the_follower_promotes_once_the_old_servers_fence_answers_or_its_wait_is_over():
    follower = Follower(Log())
    follower.handle(("proxy", BOTH_UP, None), ["primary", "secondary"], 0.0)
    plan = follower.handle(("proxy", PRIMARY_DOWN, None), ["primary", "secondary"], 1.0)
    assert actions_of(plan) == [FENCE["primary"]]
    assert follower.handle(("tick",), ["primary", "secondary"], 1.1).actions == []  # still waiting
    late = follower.handle(("tick",), ["primary", "secondary"], 1.0 + PROMOTE_WAIT_S)
    assert actions_of(late) == [PROMOTE["secondary"]]
    assert [kind for kind, _ in late.events] == ["promoted_unfenced"]
