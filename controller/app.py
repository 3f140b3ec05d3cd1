"""The failover controller: a Ryu application (run on os-ken) that owns the virtual IP.

One handler per event, nothing clever, as in Ryu's simple_switch_13:
- the switch connects: install the base flows and ask the switch for its VIP flow. Only the
  testbed's own switch is served: any other datapath on the OpenFlow port is logged and
  dropped, and messages from any datapath but the one served are ignored;
- the switch answers with its VIP flows: tell the state machine, which adopts the server a
  VIP flow names (the controller restarted while the switch kept forwarding, fail-mode
  secure) or installs the VIP for the preferred server. Until then it acts on nothing;
- an ARP request for the VIP arrives: answer with the virtual MAC;
- a switch port changes state: tell the state machine (a server's port down fails over at once);
- a health probe result arrives from the prober: tell the state machine, and tell the fence
  policy the database's mode the probe saw;
- a fence attempt ends (controller/fencing.py, in a thread of its own): tell the fence policy;
- a status request or a command arrives from the status endpoint (controller/status.py, on
  127.0.0.1 only): answer it from this app's own thread.
What to do is decided by `FailoverMachine` (controller/failover.py) and `FencePolicy`
(controller/fence_policy.py); this app only carries it out, in `apply` and `apply_fence`.
The flows come from `controller/flows.py`. Each decision is written, timestamped, to the
run's event log.

Started by `python -m controller` (controller/__main__.py), which sets the `testbed_*`
options below in os-ken's CONF.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import arp, packet
from os_ken.ofproto import ofproto_v1_3

from controller import flows
from controller.eventlog import EVENT_LOG, EventLog
from controller.failover import VIP_INSTALLED, VIP_MOVED, Decision, FailoverMachine
from controller.fence_policy import FenceAction, FencePlan, FencePolicy
from controller.fencing import DatabaseFence
from controller.status import StatusServer, command_reply
from topology.config import TestbedConfig

# The testbed's own options, set by the launcher (controller/__main__.py) or by a test.
cfg.CONF.register_cli_opts(
    [
        cfg.StrOpt("testbed-config", help="resolved testbed config (JSON)"),
        cfg.StrOpt("testbed-run-dir", help="the run folder, for the event log"),
        cfg.StrOpt("testbed-probe-socket", help="UNIX socket the prober reports to"),
        cfg.StrOpt("testbed-socket-dir", help="folder of the databases' UNIX sockets"),
        cfg.StrOpt("testbed-token-file", help="file holding the token that commands need"),
    ]
)


def switch_dpid(switch: str) -> int:
    """The datapath id of the testbed's switch: Mininet derives it from the name (s1 -> 1)."""
    return int(switch[1:])  # the config allows only "s" and digits


class EventProbeResult(event.EventBase):
    """One health probe's result, as sent by controller/prober.py."""

    def __init__(
        self, server: str, ok: bool, latency_ms: float, detail: str,
        gtid: str | None = None, read_only: bool | None = None, timed_out: bool = False,
    ) -> None:
        super().__init__()
        self.timed_out = timed_out
        self.server = server
        self.ok = ok
        self.latency_ms = latency_ms
        self.detail = detail
        self.gtid = gtid  # the database's GTID position, from a passed probe
        self.read_only = read_only

    @classmethod
    def from_datagram(cls, data: bytes) -> EventProbeResult:
        """Read one of the prober's datagrams; ValueError, KeyError or TypeError if malformed."""
        message = json.loads(data)
        gtid, read_only = message.get("gtid"), message.get("read_only")
        return cls(
            str(message["server"]), bool(message["ok"]),
            float(message["latency_ms"]), str(message.get("detail", "")),
            str(gtid) if gtid is not None else None,
            bool(read_only) if read_only is not None else None,
            bool(message.get("timed_out", False)),
        )


class EventFenceResult(event.EventBase):
    """A fence attempt ended, in its own thread; the fence policy hears of it in the app's."""

    def __init__(self, action: FenceAction, ok: bool, detail: str) -> None:
        super().__init__()
        self.action = action
        self.ok = ok
        self.detail = detail


class EventStatusRequest(event.EventRequestBase):
    """From the status endpoint: a status report (command None) or a command to carry out."""

    def __init__(self, dst: str, command: str | None) -> None:
        super().__init__()
        self.dst = dst
        self.command = command


class EventStatusReply(event.EventReplyBase):
    def __init__(self, dst: str, status: int, body: dict[str, Any]) -> None:
        super().__init__(dst)
        self.status = status
        self.body = body


class FailoverController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        run_dir = Path(self.CONF.testbed_run_dir)
        self.config = TestbedConfig.from_dict(json.loads(Path(self.CONF.testbed_config).read_text()))
        self.event_log = EventLog(run_dir / EVENT_LOG)
        self.machine = FailoverMachine(
            [plan.name for plan in self.config.server_plans],
            fall=self.config.probe.fall,
            timeout_fall=self.config.probe.timeout_fall,
            rise=self.config.probe.rise,
            failback=self.config.failover.failback,
            hold_down_s=self.config.failover.hold_down_s,
        )
        self.server_on_port = {plan.port: plan.name for plan in self.config.server_plans}
        self.switch_dpid = switch_dpid(self.config.network.switch)
        self.datapath = None  # the testbed's switch, once connected: the only one served
        self.probe_socket_path = Path(self.CONF.testbed_probe_socket)
        self.fence_policy = FencePolicy()
        self.fence = DatabaseFence(Path(self.CONF.testbed_socket_dir or "."), self._fence_ended)
        self.last_probe: dict[str, EventProbeResult] = {}
        self.last_probe_at: dict[str, float] = {}

    def start(self) -> None:
        super().start()
        # Bound before the receiving thread starts, so no early probe finds no socket.
        self.probe_socket_path.unlink(missing_ok=True)
        self.probe_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.probe_socket.bind(str(self.probe_socket_path))
        self.threads.append(hub.spawn(self._receive_probes))
        if self.CONF.testbed_token_file:
            token = Path(self.CONF.testbed_token_file).read_text().strip()
            self.status_server = StatusServer(self.config.network.status_port, token, self._ask)
            self.threads.append(hub.spawn(self.status_server.serve_forever))
        self.event_log.write("controller_started", active=self.machine.active)

    def _ask(self, command: str | None) -> tuple[int, dict[str, Any]]:
        """Called from the status server's threads: hand the request to this app's loop."""
        reply = self.send_request(EventStatusRequest(self.name, command))
        return reply.status, reply.body

    def _receive_probes(self) -> None:
        """Turn each probe datagram into an event for this app's own event loop."""
        while True:
            data = self.probe_socket.recv(4096)
            try:
                result = EventProbeResult.from_datagram(data)
            except (ValueError, KeyError, TypeError):
                self.logger.warning("dropped a malformed probe message: %r", data[:200])
                continue
            if result.server in self.machine.servers:
                self.send_event(self.name, result)

    # -- event handlers -----------------------------------------------------------------

    def _from_switch(self, ev) -> bool:
        """Whether an OpenFlow event comes from the switch this app serves."""
        return self.datapath is not None and ev.msg.datapath is self.datapath

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features_handler(self, ev) -> None:
        dp = ev.msg.datapath
        # Anyone on the machine can connect to the OpenFlow port. Were any switch served, a
        # foreign one would take the place of the testbed's (the VIP flow sent to it, probe
        # results and port events ignored until it answered) and its port events or flow
        # stats would move the VIP. So only the testbed's switch is served; another is
        # dropped. (The features message's own dpid: os-ken sets `dp.id` only after this
        # event is queued.)
        if ev.msg.datapath_id != self.switch_dpid:
            # Its messages queued before the drop arrive here too: log and close once.
            if getattr(dp, "state", None) != DEAD_DISPATCHER:
                self.event_log.write("foreign_switch_refused", dpid=ev.msg.datapath_id,
                                     address=str(getattr(dp, "address", "")))
                dp.close()
            return
        self.datapath = dp
        self.apply(self.machine.switch_connected(time.time()))
        for flow in flows.base_flows(dp, self.config):
            dp.send_msg(flow)
        dp.send_msg(flows.vip_flow_request(dp))
        self.event_log.write("switch_connected", dpid=dp.id)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats_reply_handler(self, ev) -> None:
        if not self._from_switch(ev):
            return
        holders = [
            flows.server_for_cookie(self.config, stat.cookie)
            for stat in ev.msg.body
            if stat.priority == flows.PRIORITY_VIP
        ]
        self.apply(self.machine.vip_flows(holders, time.time()))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in_handler(self, ev) -> None:
        if not self._from_switch(ev):
            return
        msg = ev.msg
        try:
            request = packet.Packet(msg.data).get_protocol(arp.arp)
        except Exception:  # noqa: BLE001 - a malformed frame is dropped, the app keeps serving
            self.logger.warning("dropped a packet-in that does not parse")
            return
        if request is None:
            return
        reply = flows.arp_reply(msg.datapath, self.config, request, msg.match["in_port"])
        if reply is not None:
            msg.datapath.send_msg(reply)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def port_status_handler(self, ev) -> None:
        if not self._from_switch(ev):
            return
        desc = ev.msg.desc
        server = self.server_on_port.get(desc.port_no)
        if server is None:
            return
        ofp = ev.msg.datapath.ofproto
        down = bool(desc.state & ofp.OFPPS_LINK_DOWN or desc.config & ofp.OFPPC_PORT_DOWN)
        down = down or ev.msg.reason == ofp.OFPPR_DELETE
        self.event_log.write("port_status", server=server, up=not down)
        self.apply(self.machine.port(server, not down, time.time()))

    @set_ev_cls(EventProbeResult)
    def probe_result_handler(self, ev: EventProbeResult) -> None:
        self.last_probe[ev.server] = ev
        self.last_probe_at[ev.server] = time.time()
        self.apply(self.machine.probe(ev.server, ev.ok, time.time(), ev.detail, ev.gtid, ev.timed_out))
        # Only a passed probe reports the database's mode.
        read_only = ev.read_only if ev.ok else None
        self.apply_fence(self.fence_policy.probe(ev.server, read_only, self.machine.holder, time.monotonic()))

    @set_ev_cls(EventFenceResult)
    def fence_result_handler(self, ev: EventFenceResult) -> None:
        self.apply_fence(self.fence_policy.result(ev.action, ev.ok, ev.detail, time.monotonic()))

    @set_ev_cls(EventStatusRequest)
    def status_request_handler(self, req: EventStatusRequest) -> None:
        if req.command is None:
            status, body = 200, self.status()
        else:
            decisions = self.machine.command(req.command, time.time())
            self.apply(decisions)
            status, body = command_reply(self.machine.vip_placed, decisions, self.machine.active)
        self.reply_to_request(req, EventStatusReply(req.src, status, body))

    def status(self) -> dict[str, Any]:
        now = time.time()
        servers = {}
        for name, state in self.machine.servers.items():
            probe = self.last_probe.get(name)
            servers[name] = {
                "up": state.up,
                "port_up": state.port_up,
                "consecutive_failures": state.failures,
                "consecutive_successes": state.successes,
                "last_probe_ok": probe.ok if probe else None,
                "last_probe_latency_ms": probe.latency_ms if probe else None,
                "last_probe_age_s": round(now - self.last_probe_at[name], 3) if probe else None,
                "db_read_only": probe.read_only if probe else None,
                "gtid": state.gtid,
            }
        return {
            "active": self.machine.active,
            "vip": self.config.network.vip,
            "failback": self.machine.failback,
            "servers": servers,
            "recent_events": list(self.event_log.recent),
        }

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier_reply_handler(self, ev) -> None:
        if not self._from_switch(ev):
            return
        # The switch has applied every flow message sent before the barrier.
        self.event_log.write("flows_installed", active=self.machine.active)

    # -- effects ------------------------------------------------------------------------

    def apply(self, decisions: list[Decision]) -> None:
        """Carry out the failover machine's decisions: the one way the VIP flow is sent."""
        for decision in decisions:
            if decision.kind in (VIP_MOVED, VIP_INSTALLED) and self.datapath is not None:
                dp = self.datapath
                dp.send_msg(flows.vip_flow(dp, self.config, self.config.server(decision.server)))
                dp.send_msg(dp.ofproto_parser.OFPBarrierRequest(dp))
            # After the flow: the fence's attempts run in the background and never delay it.
            self.apply_fence(self.fence_policy.decided(decision, time.monotonic()))
            self.event_log.write(decision.kind, **decision.event_fields())
            self.logger.info("%s %s: %s", decision.kind, decision.server, decision.reason)

    def apply_fence(self, plan: FencePlan) -> None:
        """Carry out the fence policy's plan: log its events, start its attempts."""
        for kind, fields in plan.events:
            self.event_log.write(kind, **fields)
        for action in plan.actions:
            self.fence.run(action)

    def _fence_ended(self, action: FenceAction, ok: bool, detail: str) -> None:
        """Called in a fence attempt's thread: hand its result to this app's event loop."""
        self.send_event(self.name, EventFenceResult(action, ok, detail))
