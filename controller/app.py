"""The failover controller: a Ryu application (run on os-ken) that owns the virtual IP.

One handler per event, nothing clever, as in Ryu's simple_switch_13:
- a switch connects: install its base flows (on a fabric, its forwarding too:
  controller/fabric_flows.py) and ask the clients' edge for its VIP flow. Only the testbed's
  own switches are served (controller/switches.py): any other datapath on the OpenFlow port
  is logged and dropped, and so is a second connection claiming a served datapath id while
  the first is alive; their messages are ignored. When a served one is gone (os-ken's state
  change to DEAD), its reconnection is served again;
- the switch answers with its VIP flows: tell the state machine, which adopts the server a
  VIP flow names (the controller restarted while the switch kept forwarding, fail-mode
  secure) or installs the VIP for the preferred server. Until then it acts on nothing;
- an ARP request for the VIP arrives: answer with the virtual MAC; a copy of a reset from a
  server's web port is a word to the prober (controller/reset_words.py);
- a switch port changes state: tell the state machine (a server's port down fails over at once);
  on a fabric, a cable's port: plan the groups again, and a server no path reaches is down;
- a health probe result arrives from the prober: tell the state machine, and tell the fence
  policy the database's mode the probe saw. Datagrams on the probe socket are checked first,
  and only the prober's PID is heard (controller/probe_intake.py);
- every probe interval: tell the state machine the time, so that probe results that stopped
  arriving mark a server down. Receiving probes and ticking are two threads of their own
  (controller/probe_loops.py): if one ends, /status and the event log say so;
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
import time
from pathlib import Path
from typing import Any

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import arp, ethernet, ipv4, packet, tcp
from os_ken.ofproto import ofproto_v1_3

from controller import flows
from controller.discovery import LLDP_ETHERTYPE
from controller.eventlog import EVENT_LOG, EventLog
from controller.fabric_control import FabricControl
from controller.fabric_flows import LinkChange
from controller.failover import VIP_INSTALLED, VIP_MOVED, Decision, machine_for
from controller.fence_policy import FenceAction, FencePlan, FencePolicy
from controller.fencing import DatabaseFence
from controller.probe_loops import EventProbeResult, EventProbeTick, ProbeLoops
from controller.prober import WAKE_SOCKET
from controller.reset_words import ResetWords
from controller.status import StatusServer, command_reply, prober_status, status_body
from controller.switches import ServedSwitches
from services.power_switch import POWER_SOCKET
from topology.config import TestbedConfig

# The testbed's own options, set by the launcher (controller/__main__.py) or by a test.
cfg.CONF.register_cli_opts(
    [
        cfg.StrOpt("testbed-config", help="resolved testbed config (JSON)"),
        cfg.StrOpt("testbed-run-dir", help="the run folder, for the event log"),
        cfg.StrOpt("testbed-probe-socket", help="UNIX socket the prober reports to"),
        cfg.StrOpt("testbed-socket-dir", help="folder of the databases' UNIX sockets"),
        cfg.StrOpt("testbed-token-file", help="file holding the token that commands need"),
        cfg.StrOpt("testbed-prober-pid-file", help="file holding the prober's PID: only it is heard"),
    ]
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


def read_frame(data: bytes) -> tuple[int, arp.arp | None, ipv4.ipv4 | None, tcp.tcp | None]:
    """A packet-in's ethertype and the headers the app acts on; raises if the frame does not parse."""
    frame = packet.Packet(data)
    kind = frame.get_protocol(ethernet.ethernet).ethertype
    return kind, frame.get_protocol(arp.arp), frame.get_protocol(ipv4.ipv4), frame.get_protocol(tcp.tcp)


def port_down(msg: Any) -> bool:
    """Whether a port status message says the port is down: its link, its config, or deleted."""
    desc, ofp = msg.desc, msg.datapath.ofproto
    down = bool(desc.state & ofp.OFPPS_LINK_DOWN or desc.config & ofp.OFPPC_PORT_DOWN)
    return down or msg.reason == ofp.OFPPR_DELETE


class FailoverController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.config = TestbedConfig.from_dict(json.loads(Path(self.CONF.testbed_config).read_text()))
        self.event_log = EventLog(Path(self.CONF.testbed_run_dir) / EVENT_LOG)
        self.machine = machine_for(self.config)
        # The machine's clock: monotonic, for a step of the wall clock must not look like a
        # silence of the probes (the event log keeps wall-clock times). A test may set it.
        self.clock = time.monotonic
        self.fabric = self.config.fabric
        self.server_on_port = {(plan.switch, plan.port): plan.name for plan in self.config.server_plans}
        self.switches = ServedSwitches(self.fabric)  # the clients' edge holds the VIP flow
        self.fabric_control = FabricControl(self.config)  # on a fabric: its cables, groups, LLDP check
        pid_file = Path(self.CONF.testbed_prober_pid_file) if self.CONF.testbed_prober_pid_file else None
        self.loops = ProbeLoops(Path(self.CONF.testbed_probe_socket), pid_file, self.machine.servers,
                                self.config.probe.interval_s, lambda ev: self.send_event(self.name, ev),
                                self.event_log.write, self.logger)  # the probe socket, its intake, the ticker
        socket_dir = Path(self.CONF.testbed_socket_dir or ".")
        power = self.config.failover.power_fence  # the testbed's power switch is in the socket folder
        self.fence_policy = FencePolicy(power=power)
        self.fence = DatabaseFence(socket_dir, self._fence_ended,
                                   socket_dir / POWER_SOCKET if power else None)
        self.last_probe: dict[str, EventProbeResult] = {}
        # The prober's wake socket: a reset seen from a server's web port is a word to it.
        self.reset_words = ResetWords(self.config.server_plans, socket_dir / WAKE_SOCKET,
                                      lambda server: self.machine.servers[server].up, self.event_log.write)

    def start(self) -> None:
        super().start()
        self.threads.extend(self.loops.start())  # the probe socket bound, its receiver and the ticker
        if self.CONF.testbed_token_file:
            token = Path(self.CONF.testbed_token_file).read_text().strip()
            self.status_server = StatusServer(self.config.network.status_port, token, self._ask)
            self.threads.append(hub.spawn(self.status_server.serve_forever))
        self.event_log.write("controller_started", active=self.machine.active)

    def _ask(self, command: str | None) -> tuple[int, dict[str, Any]]:
        """Called from the status server's threads: hand the request to this app's loop."""
        reply = self.send_request(EventStatusRequest(self.name, command))
        return reply.status, reply.body

    # -- event handlers -----------------------------------------------------------------

    @property
    def datapath(self) -> Any:
        """The switch that holds the VIP flow (the clients' edge), or None while it is away."""
        return self.switches.vip_switch

    def _from_switch(self, ev) -> bool:
        """Whether an OpenFlow event comes from the switch that holds the VIP flow."""
        return self.datapath is not None and ev.msg.datapath is self.datapath

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features_handler(self, ev) -> None:
        dp = ev.msg.datapath
        name, refused = self.switches.admit(dp, ev.msg.datapath_id)  # controller/switches.py
        if name is None:
            self._refuse(dp, refused, ev.msg.datapath_id)
            return
        holds_vip = name == self.fabric.clients_edge
        if holds_vip:
            self.apply(self.machine.switch_connected(self.clock()))
        for flow in flows.base_flows(dp, self.config, name):
            dp.send_msg(flow)
        if not self.fabric.is_single:
            for message in self.fabric_control.connected(dp, name):
                dp.send_msg(message)
        if holds_vip:
            dp.send_msg(flows.vip_flow_request(dp))
        self.event_log.write("switch_connected", dpid=ev.msg.datapath_id, switch=name)

    def _refuse(self, dp: Any, kind: str, dpid: int) -> None:
        """Close a connection that is not served. Its messages queued before the close arrive
        here too: log and close once."""
        if getattr(dp, "state", None) != DEAD_DISPATCHER:
            self.event_log.write(kind, dpid=dpid, address=str(getattr(dp, "address", "")))
            dp.close()

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def state_change_handler(self, ev) -> None:
        """A served switch's connection is gone: the next one to connect is served."""
        name = self.switches.gone(ev.datapath) if ev.state == DEAD_DISPATCHER else None
        if name is not None:
            self.event_log.write("switch_disconnected", dpid=ev.datapath.id, switch=name)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats_reply_handler(self, ev) -> None:
        if not self._from_switch(ev):
            return
        holders = [
            flows.server_for_cookie(self.config, stat.cookie)
            for stat in ev.msg.body
            if stat.priority == flows.PRIORITY_VIP
        ]
        self.apply(self.machine.vip_flows(holders, self.clock()))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in_handler(self, ev) -> None:
        if self.switches.name_of(ev.msg.datapath) is None:
            return
        msg = ev.msg
        try:
            kind, request, ip, segment = read_frame(msg.data)
        except Exception:  # noqa: BLE001 - a malformed frame is dropped, the app keeps serving
            self.logger.warning("dropped a packet-in that does not parse")
            return
        if kind == LLDP_ETHERTYPE:  # a cable's probe frame (controller/discovery.py)
            switch = self.switches.name_of(msg.datapath)
            events, change = self.fabric_control.probe_heard(switch, msg.match["in_port"], msg.data)
            for name, fields in events:
                self.event_log.write(name, **fields)
            self._fabric_changed(change)
            return
        if ip is not None and segment is not None and segment.bits & flows.RST:
            if self._from_switch(ev):  # only the clients' edge copies resets
                self.reset_words.reset_seen(ip.src)
            return
        if request is None:
            return
        reply = flows.arp_reply(msg.datapath, self.config, request, msg.match["in_port"])
        if reply is not None:
            msg.datapath.send_msg(reply)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def port_status_handler(self, ev) -> None:
        switch = self.switches.name_of(ev.msg.datapath)
        if switch is None:
            return
        desc, down = ev.msg.desc, port_down(ev.msg)
        server = self.server_on_port.get((switch, desc.port_no))
        if server is not None:
            self.event_log.write("port_status", server=server, up=not down)
            self.apply(self.machine.port(server, not down, self.clock()))
            return
        if not down and self.fabric.link_at(switch, desc.port_no) is not None:
            # A cable back (or new): check where it leads before long.
            for message in self.fabric_control.probes(ev.msg.datapath, switch, [desc.port_no]):
                ev.msg.datapath.send_msg(message)
        self._fabric_changed(self.fabric_control.cable_port(switch, desc.port_no, up=not down))

    def _fabric_changed(self, change: LinkChange | None) -> None:
        """A cable went down or up (its port, or the LLDP check). The switches moved its traffic
        already: plan again without it; a server no path reaches any more is, for the
        failover, a server whose link went down."""
        if change is None:
            return
        for kind, fields in change.events:
            self.event_log.write(kind, **fields)
        for dp, message in self.fabric_control.updates(self.switches.by_name):
            dp.send_msg(message)
        for server, reachable in change.servers:
            self.apply(self.machine.port(server, reachable, self.clock()))

    @set_ev_cls(EventProbeResult)
    def probe_result_handler(self, ev: EventProbeResult) -> None:
        if not ev.late:  # a timed-out probe answered after all (no GTID, no mode) is not shown
            self.last_probe[ev.server] = ev
        self.apply(self.machine.probe(ev.server, ev.ok, self.clock(), ev.detail, ev.gtid, ev.timed_out,
                                      ev.replication, ev.replication_error, ev.confirming,
                                      ev.latency_ms if ev.ok else None, ev.late))
        # Only a passed probe reports the database's mode.
        read_only = ev.read_only if ev.ok else None
        self.apply_fence(self.fence_policy.probe(ev.server, read_only, self.machine.holder, time.monotonic()))

    @set_ev_cls(EventProbeTick)
    def probe_tick_handler(self, ev: EventProbeTick) -> None:
        self.apply(self.machine.tick(self.clock()))
        self.apply_fence(self.fence_policy.tick(time.monotonic()))  # a promotion waiting for a fence
        if not self.fabric.is_single:  # the cables no probe frame has verified yet, again
            for dp, message in self.fabric_control.probes_again(self.switches.by_name, self.clock()):
                dp.send_msg(message)

    @set_ev_cls(EventFenceResult)
    def fence_result_handler(self, ev: EventFenceResult) -> None:
        self.apply_fence(self.fence_policy.result(ev.action, ev.ok, ev.detail, time.monotonic()))

    @set_ev_cls(EventStatusRequest)
    def status_request_handler(self, req: EventStatusRequest) -> None:
        if req.command is None:
            status, body = 200, self.status()
        else:
            decisions = self.machine.command(req.command, self.clock())
            self.apply(decisions)
            status, body = command_reply(self.machine.vip_placed, decisions, self.machine.active)
        self.reply_to_request(req, EventStatusReply(req.src, status, body))

    def status(self) -> dict[str, Any]:
        """Who holds the VIP and what each server's state rests on (controller/status.py)."""
        intake = self.loops.intake
        return status_body(self.machine, self.config.network.vip, self.last_probe, self.clock(),
                           prober_status(self.machine, self.clock(), intake.prober_pid, self.loops.alive),
                           intake.counts(), list(self.event_log.recent),
                           None if self.fabric.is_single else self.fabric_control.status())

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error_handler(self, ev) -> None:
        """The switch refused a message (a flow or group it cannot take): said at once, never
        left to look as if the flows were in place."""
        if not self._from_switch(ev):
            return
        msg = ev.msg
        self.event_log.write("switch_error", type=msg.type, code=msg.code, detail=bytes(msg.data[:64]).hex())
        self.logger.error("the switch refused a message: type %s code %s", msg.type, msg.code)

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
            sent_at = None
            if decision.kind in (VIP_MOVED, VIP_INSTALLED) and self.datapath is not None:
                dp, server = self.datapath, self.config.server(decision.server)
                if self.config.failover.switch_failover and self.fabric.is_single:
                    # The group first: the flow that points at it may be the one just added.
                    dp.send_msg(flows.vip_group(dp, self.config, server, add=decision.kind == VIP_INSTALLED))
                dp.send_msg(flows.vip_flow(dp, self.config, server))
                dp.send_msg(dp.ofproto_parser.OFPBarrierRequest(dp))
                sent_at = time.time()
                # os-ken queues the messages, and its send loop writes them when this handler
                # yields: yield now, so that they leave before the fence's attempt starts (its
                # thread's start runs it up to its first wait: a query to the old database).
                hub.sleep(0)
            # Logged once the flow is out, before the fence starts (whose attempts then run in the
            # background and never delay it). Its time, the stage "flow sent", is when the flow
            # was queued: the yield lets other threads run first, and a packet can reach the new
            # server before it ends, never before the flow was queued.
            self.event_log.write(decision.kind, at=sent_at, **decision.event_fields())
            self.logger.info("%s %s: %s", decision.kind, decision.server, decision.reason)
            self.apply_fence(self.fence_policy.decided(decision, time.monotonic()))

    def apply_fence(self, plan: FencePlan) -> None:
        """Carry out the fence policy's plan: log its events, start its attempts."""
        for kind, fields in plan.events:
            self.event_log.write(kind, **fields)
        for action in plan.actions:
            self.fence.run(action)

    def _fence_ended(self, action: FenceAction, ok: bool, detail: str) -> None:
        """Called in a fence attempt's thread: hand its result to this app's event loop."""
        self.send_event(self.name, EventFenceResult(action, ok, detail))
