"""The os-ken layer without a switch: feed the app events with a fake datapath, check the flows.

As in Faucet's tests, the fake datapath encodes every message it is sent (so a message a real
switch could not decode fails here too) and keeps a fake flow table: an OFPFC_ADD with the
same table, priority and match replaces the flow, as OpenFlow 1.3 says. It keeps a fake group
table too, and the ports that are down: a fast-failover group sends to its first bucket whose
port is up, as the switch does.
"""

import json
import os
import socket
import sys
import threading
from collections import Counter
from dataclasses import replace

import pytest
from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, register_instance
from os_ken.lib import hub
from os_ken.lib.packet import arp, ethernet, ipv4, packet, tcp
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from controller import discovery, flows
from controller.app import (
    EventFenceResult,
    EventProbeResult,
    EventProbeTick,
    EventStatusRequest,
    FailoverController,
)
from controller.eventlog import EVENT_LOG
from controller.failover import COMMAND_REFUSED, VIP_MOVED, Decision
from controller.fence_policy import FenceAction
from controller.fencing import DatabaseFence
from controller.probe_intake import FOREIGN_SENDER, NOT_AN_OBJECT, LoopEnded
from controller.prober import WAKE_SOCKET, probe_message
from controller.status import NOT_PLACED, command_reply
from tests.test_probe_intake import MALFORMED
from topology.config import TestbedConfig

CONFIG = TestbedConfig()
PRIMARY, SECONDARY = CONFIG.server_plans


class FakeDatapath:
    ofproto = ofproto_v1_3
    ofproto_parser = ofproto_v1_3_parser
    id = 1

    def __init__(self):
        self.sent = []
        self.table = {}
        self.state = MAIN_DISPATCHER  # as os-ken's Datapath: DEAD_DISPATCHER once closed
        self.is_active = True
        self.closed = False
        self.groups = {}
        self.ports_down = set()

    def close(self):
        self.closed = True
        self.state = DEAD_DISPATCHER

    def send_msg(self, msg):
        msg.set_xid(len(self.sent) + 1)
        msg.serialize()
        self.sent.append(msg)
        if isinstance(msg, ofproto_v1_3_parser.OFPFlowMod):
            assert msg.command == self.ofproto.OFPFC_ADD
            key = (msg.table_id, msg.priority, json.dumps(msg.match.to_jsondict(), sort_keys=True))
            self.table[key] = msg
        if isinstance(msg, ofproto_v1_3_parser.OFPGroupMod):
            exists = msg.group_id in self.groups
            # an ADD of a group that exists, or a MODIFY of one that does not, is an error
            assert exists == (msg.command == self.ofproto.OFPGC_MODIFY)
            self.groups[msg.group_id] = msg

    def flows_at(self, priority):
        return [m for (_, p, _), m in self.table.items() if p == priority]


class RecordingFence:
    """Stands in for the databases' fence (controller/fencing.py): records each action the
    app asked it to run, in order, and runs none."""

    def __init__(self):
        self.calls = []
        self.actions = []

    def run(self, action):
        self.actions.append(action)
        self.calls.append(("read_only" if action.read_only else "writable", action.server))


def make_app(tmp_path, *options, config=None):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps((config or CONFIG).to_dict()))
    cfg.CONF(
        args=[
            "--testbed-config", str(config_path),
            "--testbed-run-dir", str(tmp_path),
            "--testbed-probe-socket", str(tmp_path / "probes.sock"),
            *options,
        ],
        project="os_ken",
    )
    controller = FailoverController()
    controller.fence = RecordingFence()
    return controller


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def switch_connects(app, vip_holder=None):
    """The switch connects and answers the app's question about its VIP flow."""
    dp = FakeDatapath()
    features = ofproto_v1_3_parser.OFPSwitchFeatures(dp, datapath_id=dp.id)
    app.switch_features_handler(ofp_event.EventOFPSwitchFeatures(features))
    request = dp.sent[-1]
    assert isinstance(request, ofproto_v1_3_parser.OFPFlowStatsRequest)
    assert request.cookie == flows.COOKIE_VIP
    body = []
    if vip_holder is not None:
        # The switch kept what an earlier controller gave it: the VIP flow and its group.
        dp.groups[flows.VIP_GROUP] = flows.vip_group(dp, CONFIG, CONFIG.server(vip_holder), add=True)
        cookie = flows.vip_cookie(CONFIG, vip_holder)
        body.append(ofproto_v1_3_parser.OFPFlowStats(
            table_id=0, duration_sec=5, duration_nsec=0, priority=flows.PRIORITY_VIP, idle_timeout=0,
            hard_timeout=0, flags=0, cookie=cookie, packet_count=10, byte_count=1000,
            match=ofproto_v1_3_parser.OFPMatch(eth_type=0x0800, ipv4_dst=CONFIG.network.vip), instructions=[],
        ))
    reply = ofproto_v1_3_parser.OFPFlowStatsReply(dp, body=body)
    app.flow_stats_reply_handler(ofp_event.EventOFPFlowStatsReply(reply))
    return dp


@pytest.fixture
def connected(app):
    return app, switch_connects(app)


def vip_target(dp):
    """Where the switch sends the VIP's traffic: the VIP flow's actions, or those of its group's
    first bucket whose port is up."""
    (flow,) = dp.flows_at(flows.PRIORITY_VIP)
    actions = flow.instructions[0].actions
    groups = [a.group_id for a in actions if isinstance(a, ofproto_v1_3_parser.OFPActionGroup)]
    if groups:
        group = dp.groups[groups[0]]
        assert group.type == dp.ofproto.OFPGT_FF
        actions = next(b.actions for b in group.buckets if b.watch_port not in dp.ports_down)
    fields = {a.key: a.value for a in actions if hasattr(a, "key")}
    outputs = [a.port for a in actions if isinstance(a, ofproto_v1_3_parser.OFPActionOutput)]
    return fields["ipv4_dst"], fields["eth_dst"], outputs, flow.cookie


def port_status(dp, port_no, down):
    """The switch's port went down (or up): it says so, and its groups see it at once."""
    (dp.ports_down.add if down else dp.ports_down.discard)(port_no)
    ofp = dp.ofproto
    desc = ofproto_v1_3_parser.OFPPort(
        port_no=port_no, hw_addr="00:00:00:00:00:01", name=b"s1-eth%d" % port_no,
        config=0, state=ofp.OFPPS_LINK_DOWN if down else ofp.OFPPS_LIVE,
        curr=0, advertised=0, supported=0, peer=0, curr_speed=0, max_speed=0,
    )
    msg = ofproto_v1_3_parser.OFPPortStatus(dp, reason=ofp.OFPPR_MODIFY, desc=desc)
    return ofp_event.EventOFPPortStatus(msg)


def test_switch_connect_installs_base_flows_and_vip_on_primary(connected):
    app, dp = connected
    assert vip_target(dp) == (PRIMARY.ip, PRIMARY.mac, [PRIMARY.port], flows.vip_cookie(CONFIG, "primary"))
    # Flow count: a fixed few plus four per server (two copy resets), whatever the number of clients.
    assert len(dp.table) == 3 + 4 * len(CONFIG.servers)
    assert isinstance(dp.sent[-1], ofproto_v1_3_parser.OFPBarrierRequest)


def test_a_restarted_controller_adopts_the_vip_from_the_switch_and_moves_nothing(app):
    dp = switch_connects(app, vip_holder="secondary")
    assert dp.flows_at(flows.PRIORITY_VIP) == []  # no VIP flow sent: the switch keeps its own
    assert app.machine.active == "secondary"
    before = len(dp.sent)
    for _ in range(10):  # the preferred primary is healthy: still no failback (policy never)
        app.probe_result_handler(EventProbeResult("primary", True, 2.0, ""))
    assert len(dp.sent) == before


def test_probe_results_before_the_vip_is_known_are_not_acted_on(app):
    dp = FakeDatapath()
    features = ofproto_v1_3_parser.OFPSwitchFeatures(dp, datapath_id=dp.id)
    app.switch_features_handler(ofp_event.EventOFPSwitchFeatures(features))
    before = len(dp.sent)
    for _ in range(CONFIG.probe.fall):
        app.probe_result_handler(EventProbeResult("primary", False, 40.0, "timeout"))
    app.probe_result_handler(EventProbeResult("secondary", True, 2.0, "", "1-1-1", read_only=False))
    assert len(dp.sent) == before and app.machine.active == "primary"
    assert app.fence.calls == []  # not even a writable standby is corrected: who holds the VIP is unknown


def connection_dead(app, dp):
    """os-ken closed `dp`'s connection and tells the app (EventOFPStateChange to DEAD)."""
    dp.close()
    ev = ofp_event.EventOFPStateChange(dp)
    ev.state = DEAD_DISPATCHER
    app.state_change_handler(ev)


def test_a_reconnecting_switch_is_asked_again_and_its_vip_flow_adopted(connected):
    app, dp = connected
    connection_dead(app, dp)
    dp = switch_connects(app, vip_holder="primary")
    assert dp.flows_at(flows.PRIORITY_VIP) == []  # adopted, not sent again
    assert app.fence.calls == [("writable", "primary")]


def test_a_command_before_the_vip_is_placed_is_refused_with_409(app):
    assert ask(app, "failover") == (409, {"error": NOT_PLACED})
    assert app.machine.active == "primary"


def test_port_down_moves_the_vip_with_one_group_and_one_flow_message(connected):
    app, dp = connected
    before = len(dp.sent)
    app.port_status_handler(port_status(dp, PRIMARY.port, down=True))
    new = dp.sent[before:]
    # The group first (the new active first in it), then the flow with its new cookie.
    assert [type(m).__name__ for m in new] == ["OFPGroupMod", "OFPFlowMod", "OFPBarrierRequest"]
    cookie = flows.vip_cookie(CONFIG, "secondary")
    assert vip_target(dp) == (SECONDARY.ip, SECONDARY.mac, [SECONDARY.port], cookie)
    assert flows.server_for_cookie(CONFIG, new[1].cookie) == "secondary"


def test_the_vip_flow_is_sent_then_the_old_database_fenced_then_the_new_one_made_writable(connected):
    app, dp = connected
    order = []
    app.fence.calls = order
    real_send = dp.send_msg
    dp.send_msg = lambda msg: (order.append(("send", type(msg).__name__)), real_send(msg))
    app.port_status_handler(port_status(dp, PRIMARY.port, down=True))
    # The server that lost the VIP is fenced after the flow; the one that gained it is
    # promoted once that fence has answered, so the two are never writable together.
    assert order == [("send", "OFPGroupMod"), ("send", "OFPFlowMod"), ("send", "OFPBarrierRequest"),
                     ("read_only", "primary")]
    (fence,) = app.fence.actions
    app.fence_result_handler(EventFenceResult(fence, True, ""))
    assert order[4:] == [("writable", "secondary")]


def test_the_switch_moves_the_vips_traffic_itself_and_the_controller_then_agrees(connected):
    app, dp = connected
    dp.ports_down.add(PRIMARY.port)  # the port is down; the controller has not heard yet
    assert vip_target(dp)[:3] == (SECONDARY.ip, SECONDARY.mac, [SECONDARY.port])
    app.port_status_handler(port_status(dp, PRIMARY.port, down=True))
    (group,) = dp.groups.values()
    assert [b.watch_port for b in group.buckets] == [SECONDARY.port, PRIMARY.port]  # the new active first
    app.port_status_handler(port_status(dp, PRIMARY.port, down=False))
    cookie = flows.vip_cookie(CONFIG, "secondary")
    assert vip_target(dp) == (SECONDARY.ip, SECONDARY.mac, [SECONDARY.port], cookie)


def test_without_switch_failover_the_flow_sends_to_the_server_itself(tmp_path):
    global CONFIG
    kept, CONFIG = CONFIG, replace(CONFIG, failover=replace(CONFIG.failover, switch_failover=False))
    try:
        app = make_app(tmp_path)
        dp = switch_connects(app)
        assert dp.groups == {}
        dp.ports_down.add(PRIMARY.port)
        assert vip_target(dp)[0] == PRIMARY.ip  # the switch moves nothing by itself
        app.port_status_handler(port_status(dp, PRIMARY.port, down=True))
        assert vip_target(dp)[0] == SECONDARY.ip
    finally:
        CONFIG = kept


@pytest.mark.parametrize(
    "server, read_only, expected",
    [("primary", True, [("writable", "primary")]),  # the active must be writable
     ("secondary", False, [("read_only", "secondary")]),  # the others read-only
     ("primary", False, []),  # as it should be: nothing to do
     ("secondary", None, [])],  # the probe did not say
)
def test_probes_reporting_the_database_mode_drive_the_fence(connected, server, read_only, expected):
    app, dp = connected
    app.probe_result_handler(EventProbeResult(server, True, 2.0, "", "1-1-1", read_only))
    assert app.fence.calls == expected


def events_of(tmp_path, *kinds):
    events = [json.loads(line) for line in (tmp_path / EVENT_LOG).read_text().splitlines()]
    return [{k: v for k, v in e.items() if k not in ("time", "source")} for e in events if e["kind"] in kinds]


def test_fence_results_are_logged_and_a_failed_fence_is_tried_again(connected, tmp_path):
    app, dp = connected
    app.port_status_handler(port_status(dp, PRIMARY.port, down=True))
    (fence,) = app.fence.actions
    app.fence_result_handler(EventFenceResult(fence, False, "Can't connect"))
    retry, promote = app.fence.actions[1:]  # a dead database: the promotion goes ahead
    assert (retry.server, retry.read_only, retry.attempt) == ("primary", True, 2)
    assert (promote.server, promote.read_only) == ("secondary", False)
    app.fence_result_handler(EventFenceResult(promote, True, ""))
    app.fence_result_handler(EventFenceResult(retry, True, ""))
    assert events_of(tmp_path, "db_writable", "db_read_only", "fence_failed") == [
        {"kind": "fence_failed", "server": "primary", "read_only": True, "generation": 1,
         "detail": "Can't connect"},
        {"kind": "db_writable", "server": "secondary", "generation": 1},
        {"kind": "db_read_only", "server": "primary", "generation": 1},
    ]


def test_a_fence_attempts_result_comes_back_through_the_apps_event_queue(connected, tmp_path, monkeypatch):
    app, dp = connected
    monkeypatch.setitem(app_manager.SERVICE_BRICKS, app.name, app)
    app.fence = DatabaseFence(tmp_path, app._fence_ended)  # no database socket there: it fails
    app.fence.attempt(FenceAction("secondary", True, 1.0))
    ev, _state = app.events.get(timeout=5)
    assert isinstance(ev, EventFenceResult) and not ev.ok
    app.fence_result_handler(ev)
    (failed,) = events_of(tmp_path, "fence_failed")
    assert (failed["server"], failed["read_only"]) == ("secondary", True)


def test_a_fence_that_runs_out_of_time_says_it_gave_up(connected, tmp_path):
    app, dp = connected
    app.port_status_handler(port_status(dp, PRIMARY.port, down=True))
    (fence,) = app.fence.actions
    late = replace(fence, attempt=60, retry_until=0.0)  # its last attempt, out of time
    app.fence_result_handler(EventFenceResult(late, False, "timed out"))
    assert [(a.server, a.read_only) for a in app.fence.actions[1:]] == [("secondary", False)]  # no retry
    gave_up = {"kind": "fence_gave_up", "server": "primary", "generation": 1}
    assert events_of(tmp_path, "fence_failed", "fence_gave_up") == [gave_up]  # its failure was told before


def test_probe_failures_move_the_vip_after_fall(connected, tmp_path):
    app, dp = connected
    for i in range(CONFIG.probe.fall):
        assert vip_target(dp)[0] == PRIMARY.ip, f"moved after {i} failures"
        app.probe_result_handler(EventProbeResult("primary", False, 40.0, "timeout"))
    assert vip_target(dp)[0] == SECONDARY.ip
    events = [json.loads(line) for line in (tmp_path / EVENT_LOG).read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[-2:] == ["server_down", "vip_moved"]


def test_port_events_of_other_ports_change_nothing(connected):
    app, dp = connected
    before = len(dp.sent)
    app.port_status_handler(port_status(dp, CONFIG.client.port, down=True))
    assert len(dp.sent) == before


def arp_packet_in(dp, target_ip, opcode=arp.ARP_REQUEST):
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(ethertype=0x0806, dst="ff:ff:ff:ff:ff:ff", src=CONFIG.client.mac))
    pkt.add_protocol(arp.arp(opcode=opcode, src_mac=CONFIG.client.mac, src_ip=CONFIG.client.ip,
                             dst_mac="00:00:00:00:00:00", dst_ip=target_ip))
    pkt.serialize()
    return raw_packet_in(dp, pkt.data)


def raw_packet_in(dp, data):
    msg = ofproto_v1_3_parser.OFPPacketIn(
        dp, buffer_id=dp.ofproto.OFP_NO_BUFFER, total_len=len(data), reason=0, table_id=0,
        cookie=0, match=ofproto_v1_3_parser.OFPMatch(in_port=CONFIG.client.port), data=data,
    )
    return ofp_event.EventOFPPacketIn(msg)


def test_arp_for_the_vip_is_answered_with_the_virtual_mac(connected):
    app, dp = connected
    before = len(dp.sent)
    app.packet_in_handler(arp_packet_in(dp, CONFIG.network.vip))
    (reply,) = dp.sent[before:]
    assert [a.port for a in reply.actions] == [CONFIG.client.port]
    answer = packet.Packet(reply.data).get_protocol(arp.arp)
    assert (answer.opcode, answer.src_mac) == (arp.ARP_REPLY, CONFIG.network.vmac)
    assert answer.src_ip == CONFIG.network.vip
    assert (answer.dst_mac, answer.dst_ip) == (CONFIG.client.mac, CONFIG.client.ip)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", os.urandom(13), os.urandom(60), os.urandom(1500)],
    ids=["empty", "one byte", "short", "random", "random-long"],
)
def test_malformed_packet_in_is_dropped_and_the_app_keeps_serving(connected, data):
    app, dp = connected
    before = len(dp.sent)
    app.packet_in_handler(raw_packet_in(dp, data))
    assert len(dp.sent) == before
    app.packet_in_handler(arp_packet_in(dp, CONFIG.network.vip))
    assert len(dp.sent) == before + 1


def test_arp_for_other_addresses_and_arp_replies_are_ignored(connected):
    app, dp = connected
    before = len(dp.sent)
    app.packet_in_handler(arp_packet_in(dp, PRIMARY.ip))
    app.packet_in_handler(arp_packet_in(dp, CONFIG.network.vip, opcode=arp.ARP_REPLY))
    assert len(dp.sent) == before


def reset_packet_in(dp, source_ip, flags):
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(ethertype=0x0800, dst=CONFIG.client.mac, src=PRIMARY.mac))
    pkt.add_protocol(ipv4.ipv4(src=source_ip, dst=CONFIG.client.ip, proto=6))
    pkt.add_protocol(tcp.tcp(src_port=CONFIG.web.port, dst_port=40000, bits=flags))
    pkt.serialize()
    return raw_packet_in(dp, pkt.data)


def test_a_reset_from_a_servers_web_port_is_a_word_to_the_prober_at_most_every_20_ms(tmp_path, monkeypatch):
    app = make_app(tmp_path, "--testbed-socket-dir", str(tmp_path))
    dp = switch_connects(app)
    before = len(dp.sent)
    prober = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    prober.bind(str(tmp_path / WAKE_SOCKET))
    prober.settimeout(1)
    now = [100.0]
    app.reset_words.sender.clock = lambda: now[0]
    try:
        app.packet_in_handler(reset_packet_in(dp, PRIMARY.ip, tcp.TCP_RST))
        assert json.loads(prober.recv(512)) == {"server": "primary", "why": "a reset from its web port"}
        now[0] += 0.01
        app.packet_in_handler(reset_packet_in(dp, PRIMARY.ip, tcp.TCP_RST | tcp.TCP_ACK))  # too soon
        app.packet_in_handler(reset_packet_in(dp, "10.0.0.99", tcp.TCP_RST))  # not a server
        app.packet_in_handler(reset_packet_in(dp, SECONDARY.ip, tcp.TCP_SYN | tcp.TCP_ACK))  # no reset
        now[0] += 0.011
        app.packet_in_handler(reset_packet_in(dp, PRIMARY.ip, tcp.TCP_RST))
        assert json.loads(prober.recv(512))["server"] == "primary"
        prober.settimeout(0.05)
        with pytest.raises(TimeoutError):
            prober.recv(512)
    finally:
        prober.close()
    assert [e["server"] for e in events_of(tmp_path, "suspected")] == ["primary", "primary"]
    assert len(dp.sent) == before and app.machine.active == "primary"  # the probe decides, not the word


def test_the_switch_copies_resets_to_the_controller_only_with_probe_passive(tmp_path):
    flows_on = [f for f in flows.base_flows(FakeDatapath(), CONFIG) if f.priority == flows.PRIORITY_RESET]
    assert len(flows_on) == len(CONFIG.servers)
    (copy, *_rewrite) = flows_on[0].instructions[0].actions
    assert copy.port == ofproto_v1_3.OFPP_CONTROLLER
    off = replace(CONFIG, probe=replace(CONFIG.probe, passive=False))
    priorities = {f.priority for f in flows.base_flows(FakeDatapath(), off)}
    assert not priorities & {flows.PRIORITY_RESET, flows.PRIORITY_PROBE_RESET}


def test_event_log_is_json_lines(connected, tmp_path):
    app, dp = connected
    lines = (tmp_path / EVENT_LOG).read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines[-2:]] == ["switch_connected", "vip_installed"]


def ask(app, command):
    """What the status endpoint's thread does, done inline: a request, and its reply."""
    import queue

    request = EventStatusRequest(app.name, command)
    request.src, request.sync, request.reply_q = "test", True, queue.Queue()
    app.status_request_handler(request)
    reply = request.reply_q.get_nowait()
    return reply.status, reply.body


def test_status_reports_the_active_server_and_each_probe(connected):
    app, dp = connected
    app.probe_result_handler(EventProbeResult("secondary", True, 3.5, "", "1-1-7", True))
    status, body = ask(app, None)
    assert status == 200 and body["active"] == "primary" and body["vip"] == CONFIG.network.vip
    assert body["servers"]["secondary"]["last_probe_latency_ms"] == 3.5
    assert body["servers"]["secondary"]["gtid"] == "1-1-7"
    assert body["recent_events"][-1]["kind"] == "vip_installed"


def test_a_failover_command_moves_the_vip_and_a_bad_one_is_refused(connected):
    app, dp = connected
    status, body = ask(app, "failover")
    assert (status, body["active"]) == (200, "secondary")
    assert vip_target(dp)[0] == SECONDARY.ip
    status, body = ask(app, "reboot")
    assert status == 409 and body["decisions"][0]["kind"] == "command_refused"


MOVED = Decision(VIP_MOVED, "secondary", "failover requested, to secondary", "primary")
REFUSED = Decision(COMMAND_REFUSED, "primary", "no other server is up")


@pytest.mark.parametrize(
    "placed, decisions, expected",
    [
        (False, [], (409, {"error": NOT_PLACED})),
        (False, [MOVED], (409, {"error": NOT_PLACED})),  # placement is checked first
        (True, [MOVED], (200, {"decisions": [{"kind": "vip_moved", "server": "secondary",
                                             "reason": "failover requested, to secondary",
                                             "previous": "primary"}], "active": "secondary"})),
        (True, [REFUSED], (409, {"decisions": [{"kind": "command_refused", "server": "primary",
                                               "reason": "no other server is up", "previous": None}],
                                 "active": "secondary"})),
        (True, [MOVED, REFUSED], (409, {"decisions": [MOVED.__dict__, REFUSED.__dict__],
                                        "active": "secondary"})),  # any refusal is a conflict
    ],
)
def test_a_commands_http_status_is_200_only_when_the_vip_moved(placed, decisions, expected):
    assert command_reply(placed, decisions, "secondary") == expected


def test_the_status_server_needs_the_token_for_commands():
    import urllib.error
    import urllib.request

    from os_ken.lib import hub

    from controller.status import StatusServer

    asked = []
    server = StatusServer(0, "s3cret", lambda command: (asked.append(command), (200, {"ok": True}))[1])
    assert server.server_address[0] == "127.0.0.1"
    hub.spawn(server.serve_forever)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        def post(path, token=None):
            request = urllib.request.Request(base + path, method="POST", data=b"")
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                return urllib.request.urlopen(request, timeout=5).status
            except urllib.error.HTTPError as error:
                return error.code

        assert urllib.request.urlopen(base + "/status", timeout=5).status == 200
        assert post("/command/failover") == 401
        assert post("/command/failover", "wrong") == 401
        assert post("/command/failover", "s3cret") == 200
        assert post("/elsewhere", "s3cret") == 404
        assert asked == [None, "failover"]
    finally:
        server.shutdown()
        server.server_close()


class ForeignDatapath(FakeDatapath):
    """Another switch on the OpenFlow port: not the testbed's (s1 is datapath 1)."""

    id = 0xBAD


def test_a_foreign_switch_is_refused_and_cannot_move_the_vip(connected, tmp_path):
    app, dp = connected
    foreign = ForeignDatapath()
    features = ofproto_v1_3_parser.OFPSwitchFeatures(foreign, datapath_id=foreign.id)
    app.switch_features_handler(ofp_event.EventOFPSwitchFeatures(features))
    assert foreign.closed and foreign.sent == []  # dropped, and given nothing
    # Whatever it then says is not acted on: a port of a server "down", a VIP flow naming
    # the secondary, an ARP request for the VIP.
    app.port_status_handler(port_status(foreign, PRIMARY.port, down=True))
    reply = ofproto_v1_3_parser.OFPFlowStatsReply(foreign, body=[])
    app.flow_stats_reply_handler(ofp_event.EventOFPFlowStatsReply(reply))
    app.packet_in_handler(arp_packet_in(foreign, CONFIG.network.vip))
    assert foreign.sent == [] and app.machine.active == "primary"
    # The testbed's own switch is still the one served.
    app.port_status_handler(port_status(dp, PRIMARY.port, down=True))
    assert vip_target(dp)[0] == SECONDARY.ip
    events = [json.loads(line) for line in (tmp_path / EVENT_LOG).read_text().splitlines()]
    assert [e["dpid"] for e in events if e["kind"] == "foreign_switch_refused"] == [foreign.id]


def test_the_switches_served_have_the_datapath_ids_the_network_gives_them():
    assert CONFIG.fabric.switch_of_dpid(1) == CONFIG.network.switch
    assert CONFIG.fabric.switch_of_dpid(2) is None
    two_tier = CONFIG.with_overrides({"network.topology": "two-tier"}).fabric
    assert [two_tier.switch_of_dpid(d) for d in (1, 3, 101, 102)] == ["edge1", "edge3", "core1", "core2"]


def features(app, dp):
    msg = ofproto_v1_3_parser.OFPSwitchFeatures(dp, datapath_id=dp.id)
    app.switch_features_handler(ofp_event.EventOFPSwitchFeatures(msg))


def test_a_second_connection_claiming_the_served_dpid_is_refused(connected, tmp_path):
    app, dp = connected
    impostor = FakeDatapath()  # datapath 1, as the testbed's switch
    features(app, impostor)
    features(app, impostor)  # its messages queued before the close: logged once
    assert impostor.closed and impostor.sent == []
    # Its port events are not acted on; the first switch's and the probes still are.
    app.port_status_handler(port_status(impostor, SECONDARY.port, down=True))
    assert app.machine.servers["secondary"].up
    for _ in range(CONFIG.probe.fall):
        app.probe_result_handler(EventProbeResult("primary", False, 1.0, "ConnectionRefusedError"))
    assert vip_target(dp)[0] == SECONDARY.ip and impostor.sent == []
    connection_dead(app, impostor)  # its own connection ending unseats nobody
    app.port_status_handler(port_status(dp, SECONDARY.port, down=True))
    assert not app.machine.servers["secondary"].up
    assert [e["dpid"] for e in events_of(tmp_path, "duplicate_switch_refused")] == [1]


def test_the_switch_is_served_again_once_its_first_connection_is_gone(connected, tmp_path):
    app, dp = connected
    connection_dead(app, dp)
    again = switch_connects(app, vip_holder="primary")
    assert not again.closed and app.datapath is again
    gone = {"kind": "switch_disconnected", "dpid": 1, "switch": "s1"}
    assert events_of(tmp_path, "switch_disconnected") == [gone]
    app.port_status_handler(port_status(again, PRIMARY.port, down=True))
    assert vip_target(again)[0] == SECONDARY.ip
    assert events_of(tmp_path, "duplicate_switch_refused") == []


def test_a_closed_connection_holds_no_place_before_its_state_change_is_handled(connected):
    app, dp = connected
    dp.close()  # os-ken closed it; the DEAD state change is still in the app's queue
    again = switch_connects(app, vip_holder="primary")
    assert not again.closed and app.datapath is again


# -- the probe socket ---------------------------------------------------------------------


def handle_events(app):
    """What the app's event loop does with what is queued: each event to its handlers."""
    while not app.events.empty():
        ev, state = app.events.get_nowait()
        app._events_sem.release()
        for handler in app.get_handlers(ev, state):
            handler(ev)


def listen(app, monkeypatch):
    """Bind the app's probe socket; send(data) sends one datagram from this process, lets
    the receiving loop take one step and the app's loop handle what it queued."""
    monkeypatch.setitem(app_manager.SERVICE_BRICKS, app.name, app)
    register_instance(app)  # the handlers, as os-ken finds them
    receiver = app.loops.listen()
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def send(data):
        sender.sendto(data, str(app.loops.socket_path))
        receiver.step()  # never raises but to end the loop
        handle_events(app)

    return send, [sender, receiver.socket]


@pytest.fixture
def listening(connected, monkeypatch):
    app, dp = connected
    send, sockets = listen(app, monkeypatch)
    yield app, dp, send
    for sock in sockets:
        sock.close()


def report(server, ok):
    detail = "" if ok else "ConnectionRefusedError"
    return json.dumps(probe_message(server, ok, 1.0, detail, {}, 1.0)).encode()


def test_malformed_datagrams_are_dropped_and_counted_and_probes_still_fail_over(listening, tmp_path):
    app, dp, send = listening
    for data, _reason in MALFORMED:
        send(data)
    for _ in range(200):  # a flood: counted, not logged line by line
        send(b"[]")
    assert app.last_probe == {} and app.machine.active == "primary"
    for _ in range(CONFIG.probe.fall):
        send(report("primary", ok=False))
    assert vip_target(dp)[0] == SECONDARY.ip
    expected = Counter(reason for _, reason in MALFORMED)
    expected[NOT_AN_OBJECT] += 200
    assert ask(app, None)[1]["probes_dropped"] == dict(expected)
    assert sorted(e["reason"] for e in events_of(tmp_path, "probe_dropped")) == sorted(expected)


def test_only_the_prober_named_by_the_pid_file_is_heard(tmp_path, monkeypatch):
    pid_file = tmp_path / "prober.pid"
    pid_file.write_text("1\n")  # another process than this one
    app = make_app(tmp_path, "--testbed-prober-pid-file", str(pid_file))
    dp = switch_connects(app)
    send, sockets = listen(app, monkeypatch)
    try:
        for _ in range(CONFIG.probe.fall):
            send(report("primary", ok=False))
        assert vip_target(dp)[0] == PRIMARY.ip and app.last_probe == {}
        pid_file.write_text(f"{os.getpid()}\n")  # the prober (this process) started again
        for _ in range(CONFIG.probe.fall):
            send(report("primary", ok=False))
        assert vip_target(dp)[0] == SECONDARY.ip
    finally:
        for sock in sockets:
            sock.close()
    body = ask(app, None)[1]
    assert body["probes_dropped"] == {FOREIGN_SENDER: CONFIG.probe.fall}
    assert body["prober"]["pid"] == os.getpid()
    (refused,) = events_of(tmp_path, "foreign_probe_refused")
    assert (refused["pid"], refused["prober_pid"]) == (os.getpid(), 1)


def test_the_receiving_loop_survives_an_exception_handing_a_result_over(listening, tmp_path, monkeypatch):
    app, dp, send = listening
    real_send_event = app.send_event
    handed = []

    def fails_once(name, ev, state=None):
        handed.append(ev)
        if len(handed) == 1:
            raise RuntimeError("the queue is broken")
        real_send_event(name, ev, state)

    monkeypatch.setattr(app, "send_event", fails_once)
    send(report("primary", ok=True))
    send(report("primary", ok=True))
    assert app.last_probe["primary"].ok and len(handed) == 2
    assert ask(app, None)[1]["probes_dropped"] == {"error": 1}
    (dropped,) = events_of(tmp_path, "probe_dropped")
    assert dropped["reason"] == "error" and "the queue is broken" in dropped["detail"]


def test_a_probe_loop_that_ends_says_so_in_the_log_and_in_status(app, tmp_path):
    receiver = app.loops.listen()
    receiver.socket.close()  # the loop cannot go on
    release = threading.Event()

    def ticks_until_released():
        release.wait()
        raise LoopEnded("released")

    app.threads.append(app.loops.spawn("ticker", ticks_until_released))  # the app owns the threads
    app.threads.append(app.loops.spawn("receiver", receiver.step))
    hub.joinall(app.threads[-1:])
    prober = ask(app, None)[1]["prober"]
    assert (prober["receiver_alive"], prober["ticker_alive"]) == (False, True)
    release.set()
    hub.joinall(app.threads)
    assert ask(app, None)[1]["prober"]["ticker_alive"] is False
    assert events_of(tmp_path, "probe_receiver_died", "probe_ticker_died") == [
        {"kind": "probe_receiver_died", "reason": "the probe socket is closed"},
        {"kind": "probe_ticker_died", "reason": "released"},
    ]


def test_the_ticker_hands_a_tick_to_the_apps_loop(app, monkeypatch):
    monkeypatch.setitem(app_manager.SERVICE_BRICKS, app.name, app)
    app.loops.tick()
    ev, _state = app.events.get_nowait()
    assert isinstance(ev, EventProbeTick)


# -- probe silence ------------------------------------------------------------------------


@pytest.fixture
def clocked(connected):
    """The connected app on a clock the test moves: `advance(s)`."""
    app, dp = connected
    now = [1000.0]
    app.clock = lambda: now[0]

    def advance(seconds):
        now[0] += seconds

    return app, dp, advance


def probes_pass(app, *servers):
    for server in servers:
        app.probe_result_handler(EventProbeResult(server, True, 2.0, ""))


def test_a_servers_probe_silence_moves_the_vip_and_status_shows_it_stale(clocked, tmp_path):
    app, dp, advance = clocked
    budget = app.machine.silence_budget_s
    probes_pass(app, "primary", "secondary")
    advance(budget / 2)
    probes_pass(app, "secondary")
    app.probe_tick_handler(EventProbeTick())
    assert vip_target(dp)[0] == PRIMARY.ip
    advance(budget / 2 + 0.05)  # the primary: silent for longer than the budget
    app.probe_tick_handler(EventProbeTick())
    assert vip_target(dp)[0] == SECONDARY.ip
    assert app.fence.calls == [("read_only", "primary")]  # the promotion waits for its answer
    body = ask(app, None)[1]
    primary, secondary = body["servers"]["primary"], body["servers"]["secondary"]
    assert (primary["up"], primary["last_probe_ok"], primary["probe_stale"]) == (False, True, True)
    assert primary["last_probe_age_s"] == pytest.approx(budget + 0.05)
    assert (secondary["probe_stale"], body["prober"]["silent"]) == (False, False)
    (down,) = events_of(tmp_path, "server_down")
    assert down["server"] == "primary" and down["reason"].startswith("no probe result for ")


def test_a_silent_prober_is_said_and_so_is_its_return(clocked, tmp_path):
    app, dp, advance = clocked
    budget = app.machine.silence_budget_s
    probes_pass(app, "primary", "secondary")
    advance(budget + 0.1)
    app.probe_tick_handler(EventProbeTick())
    app.probe_tick_handler(EventProbeTick())  # said once
    prober = ask(app, None)[1]["prober"]
    assert prober["silent"] is True and prober["last_result_age_s"] == pytest.approx(budget + 0.1)
    probes_pass(app, "secondary")
    assert ask(app, None)[1]["prober"]["silent"] is False
    # Nothing is known of any server while the prober is silent: none is marked down for it.
    assert [e["kind"] for e in events_of(tmp_path, "prober_silent", "prober_back", "server_down",
                                         "no_healthy_server")] == ["prober_silent", "prober_back"]
    assert vip_target(dp)[0] == PRIMARY.ip  # the VIP stays


def test_status_before_any_probe_shows_nothing_as_current(connected):
    app, dp = connected
    body = ask(app, None)[1]
    assert body["prober"]["silent"] is True and body["prober"]["last_result_age_s"] is None
    assert body["prober"]["budget_s"] == pytest.approx(
        CONFIG.probe.timeout_fall * CONFIG.probe.interval_s + CONFIG.probe.timeout_s + 0.25)
    assert [s["probe_stale"] for s in body["servers"].values()] == [True, True]
    assert body["probes_dropped"] == {}


@pytest.mark.parametrize("given", [True, False])
def test_the_launcher_passes_the_prober_pid_file_to_the_app(tmp_path, monkeypatch, given):
    import controller.__main__ as launcher

    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG.to_dict()))
    pid_file = tmp_path / "prober.pid"
    argv = ["controller", "--config", str(config), "--run-dir", str(tmp_path), "--probe-socket",
            str(tmp_path / "probes.sock"), "--socket-dir", str(tmp_path), "--token-file", str(tmp_path / "t")]
    monkeypatch.setattr(sys, "argv", argv + (["--prober-pid-file", str(pid_file)] if given else []))
    monkeypatch.setattr(launcher.logging, "basicConfig", lambda **kwargs: None)
    ran = []
    monkeypatch.setattr(app_manager.AppManager, "run_apps",
                        staticmethod(lambda apps: ran.append((apps, cfg.CONF.testbed_prober_pid_file))))
    assert launcher.main() == 0
    assert ran == [(["controller.app"], str(pid_file) if given else None)]


def test_a_message_the_switch_refuses_is_said_in_the_event_log(connected, tmp_path):
    app, dp = connected
    error = ofproto_v1_3_parser.OFPErrorMsg(dp, type_=dp.ofproto.OFPET_BAD_MATCH, code=3, data=b"\x04\x0e")
    app.error_handler(ofp_event.EventOFPErrorMsg(error))
    assert events_of(tmp_path, "switch_error") == [
        {"kind": "switch_error", "type": dp.ofproto.OFPET_BAD_MATCH, "code": 3, "detail": "040e"}]


TWO_TIER = CONFIG.with_overrides({"network.topology": "two-tier"})


def fabric_connects(app):
    """Every switch of the two-tier fabric connects; the clients' edge says it has no VIP flow."""
    dps = {}
    for name in TWO_TIER.fabric.switches:
        dp = dps[name] = FakeDatapath()
        dp.id = TWO_TIER.fabric.dpid(name)
        features(app, dp)
    reply = ofproto_v1_3_parser.OFPFlowStatsReply(dps["edge1"], body=[])
    app.flow_stats_reply_handler(ofp_event.EventOFPFlowStatsReply(reply))
    return dps


def test_on_a_fabric_every_switch_is_served_and_a_cut_cable_is_planned_around(tmp_path):
    app = make_app(tmp_path, config=TWO_TIER)
    dps = fabric_connects(app)
    assert not any(dp.closed for dp in dps.values())
    # Every switch got its forwarding: groups on the switches that forward to another's hosts.
    assert all(dp.groups for dp in dps.values())
    assert all(dp.table for dp in dps.values())
    # The VIP flow is on the clients' edge only, rewriting to the primary, then table 1.
    holding = [name for name, dp in dps.items() if dp.flows_at(flows.PRIORITY_VIP)]
    assert holding == ["edge1"]
    assert vip_target(dps["edge1"])[0] == PRIMARY.ip
    before = {name: len(dp.sent) for name, dp in dps.items()}
    # The cable edge2-core1 goes down; both ends tell.
    link = TWO_TIER.fabric.link("edge2", "core1")
    app.port_status_handler(port_status(dps["core1"], link.core_port, down=True))
    app.port_status_handler(port_status(dps["edge2"], link.edge_port, down=True))
    # Planned again once: the edges' groups that prefer another core now are modified; the
    # cores' groups did not change and are not sent again.
    for name, dp in dps.items():
        modified = [m for m in dp.sent[before[name]:] if isinstance(m, ofproto_v1_3_parser.OFPGroupMod)]
        assert all(m.command == dp.ofproto.OFPGC_MODIFY for m in modified), name
        assert bool(modified) == name.startswith("edge"), (name, modified)
    assert app.machine.active == "primary" and vip_target(dps["edge1"])[0] == PRIMARY.ip
    assert [e["link"] for e in events_of(tmp_path, "link_status")] == ["edge2-core1"]
    # The primary's own port, on its edge switch, going down moves the VIP.
    app.port_status_handler(port_status(dps["edge2"], PRIMARY_ON_FABRIC.port, down=True))
    assert vip_target(dps["edge1"])[0] == SECONDARY.ip


def test_on_a_fabric_the_other_cable_of_a_server_going_down_cuts_it_off_and_moves_the_vip(tmp_path):
    app = make_app(tmp_path, config=TWO_TIER)
    dps = fabric_connects(app)
    for core in ("core1", "core2"):
        cable = TWO_TIER.fabric.link("edge2", core)
        app.port_status_handler(port_status(dps[core], cable.core_port, down=True))
    assert vip_target(dps["edge1"])[0] == SECONDARY.ip
    (cut,) = events_of(tmp_path, "server_cut_off")
    assert cut["server"] == "primary" and "no path" in cut["reason"]


def test_on_a_fabric_the_controller_answers_arp_for_every_host(tmp_path):
    app = make_app(tmp_path, config=TWO_TIER)
    dps = fabric_connects(app)
    before = len(dps["edge2"].sent)
    app.packet_in_handler(arp_packet_in(dps["edge2"], SECONDARY.ip))
    (reply,) = [m for m in dps["edge2"].sent[before:] if isinstance(m, ofproto_v1_3_parser.OFPPacketOut)]
    answer = packet.Packet(reply.data).get_protocol(arp.arp)
    assert (answer.src_ip, answer.src_mac) == (SECONDARY.ip, SECONDARY.mac)


PRIMARY_ON_FABRIC = TWO_TIER.server("primary")


def lldp_in(dp, in_port, frame):
    msg = ofproto_v1_3_parser.OFPPacketIn(
        dp, buffer_id=dp.ofproto.OFP_NO_BUFFER, total_len=len(frame), reason=0, table_id=0,
        cookie=0, match=ofproto_v1_3_parser.OFPMatch(in_port=in_port), data=frame)
    return ofp_event.EventOFPPacketIn(msg)


def probes_sent(dp, since=0):
    """(dpid, port) named by each LLDP frame `dp` was told to send, and the port it goes out of."""
    outs = [m for m in dp.sent[since:] if isinstance(m, ofproto_v1_3_parser.OFPPacketOut)
            and discovery.sender_of(m.data) is not None]
    return [(discovery.sender_of(m.data), m.actions[0].port) for m in outs]


def test_on_a_fabric_each_switch_sends_a_probe_frame_out_of_every_cable_port(tmp_path):
    app = make_app(tmp_path, config=TWO_TIER)
    dps = fabric_connects(app)
    fabric = TWO_TIER.fabric
    for name, dp in dps.items():
        ports = sorted(p for lk in fabric.links for p in ((lk.edge_port,) if lk.edge == name else
                                                           (lk.core_port,) if lk.core == name else ()))
        assert sorted(probes_sent(dp)) == [((fabric.dpid(name), port), port) for port in ports], name


def test_on_a_fabric_a_probe_as_planned_verifies_the_cable_and_one_from_elsewhere_holds_it_down(tmp_path):
    app = make_app(tmp_path, config=TWO_TIER)
    dps = fabric_connects(app)
    fabric = TWO_TIER.fabric
    cable = fabric.link("edge2", "core1")
    app.packet_in_handler(lldp_in(dps["edge2"], cable.edge_port,
                                  discovery.probe_frame(fabric.dpid("core1"), cable.core_port)))
    assert [e["link"] for e in events_of(tmp_path, "cable_verified")] == ["edge2-core1"]
    assert ask(app, None)[1]["cables"]["edge2-core1"] == {"up": True, "verified": True, "miswired": None}
    # The same port hears core2's port 3 instead: the cable leads elsewhere, so it is down.
    before = {name: len(dp.sent) for name, dp in dps.items()}
    elsewhere = discovery.probe_frame(fabric.dpid("core2"), 3)
    app.packet_in_handler(lldp_in(dps["edge2"], cable.edge_port, elsewhere))
    (miswired,) = events_of(tmp_path, "cable_miswired")
    assert (miswired["link"], miswired["heard"], miswired["planned"]) == ("edge2-core1", "core2 port 3",
                                                                          f"core1 port {cable.core_port}")
    assert ask(app, None)[1]["cables"]["edge2-core1"] == {"up": False, "verified": False,
                                                         "miswired": "core2 port 3"}
    assert any(isinstance(m, ofproto_v1_3_parser.OFPGroupMod) for m in dps["edge1"].sent[before["edge1"]:])
    # A frame as planned again: the cable is up again, and its port's own news are unchanged.
    app.packet_in_handler(lldp_in(dps["edge2"], cable.edge_port,
                                  discovery.probe_frame(fabric.dpid("core1"), cable.core_port)))
    assert ask(app, None)[1]["cables"]["edge2-core1"]["up"] is True
    assert [e["up"] for e in events_of(tmp_path, "link_status")] == [False, True]


def test_on_a_fabric_a_cable_port_coming_up_is_probed_again(tmp_path):
    app = make_app(tmp_path, config=TWO_TIER)
    dps = fabric_connects(app)
    cable = TWO_TIER.fabric.link("edge3", "core2")
    app.port_status_handler(port_status(dps["core2"], cable.core_port, down=True))
    before = len(dps["core2"].sent)
    app.port_status_handler(port_status(dps["core2"], cable.core_port, down=False))
    sender = (TWO_TIER.fabric.dpid("core2"), cable.core_port)
    assert probes_sent(dps["core2"], before) == [(sender, cable.core_port)]


def test_on_a_fabric_cables_not_verified_yet_are_probed_again_every_second(tmp_path):
    app = make_app(tmp_path, config=TWO_TIER)
    now = [100.0]
    app.clock = lambda: now[0]
    dps = fabric_connects(app)
    fabric = TWO_TIER.fabric
    verified = fabric.link("edge2", "core1")
    app.packet_in_handler(lldp_in(dps["edge2"], verified.edge_port,
                                  discovery.probe_frame(fabric.dpid("core1"), verified.core_port)))
    down = fabric.link("edge3", "core2")
    app.port_status_handler(port_status(dps["core2"], down.core_port, down=True))

    def probed_on_tick() -> set[tuple[int, int]]:
        before = {name: len(dp.sent) for name, dp in dps.items()}
        app.probe_tick_handler(EventProbeTick())
        return {sender for name, dp in dps.items() for sender, _ in probes_sent(dp, before[name])}

    expected = {(fabric.dpid(s), p) for lk in fabric.links if lk.name not in (verified.name, down.name)
                for s, p in ((lk.edge, lk.edge_port), (lk.core, lk.core_port))}
    assert probed_on_tick() == expected  # both ends of each, but not the verified or the down one
    now[0] += 0.5
    assert probed_on_tick() == set()  # not before a second has passed
    now[0] += 0.6
    assert probed_on_tick() == expected
