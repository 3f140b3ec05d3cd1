"""The OpenFlow 1.3 messages that put the virtual IP on a server: pure builders, no switch.

The flow table, highest priority first:

    300  arp, arp_tpa=VIP                        -> CONTROLLER (the app answers with the VMAC)
    270  tcp, in_port=S, ip_src=S, tcp_src=80,
         tcp_flags=+rst, ip_dst=MONITOR          -> NORMAL   (a refused probe: untouched)
    260  tcp, in_port=S, ip_src=S, tcp_src=80,
         tcp_flags=+rst                          -> CONTROLLER, then as 200 (`probe.passive`:
                                                    a reset to a client is a word the server died)
    250  tcp, in_port=S, ip_src=S, tcp_src=80,
         ip_dst=MONITOR                          -> NORMAL   (health probe replies: untouched)
    200  tcp, in_port=S, ip_src=S, tcp_src=80    -> eth_src=VMAC, ip_src=VIP, NORMAL
    100  ip, ip_dst=VIP                          -> eth_dst=A.mac, ip_dst=A.ip, output:A.port
      0  (anything else)                         -> NORMAL   (plain L2 switching: probes,
                                                              replication, ARP)

S is each server (two flows per server), A the active one. Everything but the priority-100
flow is installed once when the switch connects; failover replaces that one flow (same match
and priority, so the switch swaps it atomically), one message whatever the number of clients.
Its cookie names the active server, so the flow table itself says who holds the VIP.

With `failover.switch_failover` the VIP flow's action is instead group VIP_GROUP, a
fast-failover group with one bucket per server, the active one first and the others in
priority order, each bucket watching its server's port: when the active server's port goes
down, the switch itself sends the VIP's traffic to the next server whose port is up, with no
round trip to the controller. The controller then moves the VIP as it always does, and its
group message puts the new active first (so that the old one coming back up takes nothing
back by itself); the flow's cookie still names the active server.
"""

from __future__ import annotations

from typing import Any

from topology.config import HostPlan, TestbedConfig

PRIORITY_ARP = 300
PRIORITY_PROBE_RESET = 270
PRIORITY_RESET = 260
RST = 0x004  # the TCP flag
RESET_COPY_BYTES = 128  # of a reset copied to the controller: its headers are enough
PRIORITY_PROBE_REPLY = 250
PRIORITY_REPLY = 200
PRIORITY_VIP = 100
PRIORITY_NORMAL = 0

COOKIE_BASE = 0x7E57_0000_0000_0000  # "test": marks every flow this controller installs
COOKIE_VIP = COOKIE_BASE | 0x100  # + the server's index: which server holds the VIP
VIP_GROUP = 1  # the fast-failover group of the VIP (switch_failover)


def vip_cookie(config: TestbedConfig, server: str) -> int:
    names = [plan.name for plan in config.server_plans]
    return COOKIE_VIP + names.index(server)


def server_for_cookie(config: TestbedConfig, cookie: int) -> str | None:
    """The server whose VIP flow carries `cookie`, or None for any other cookie."""
    index = cookie - COOKIE_VIP
    plans = config.server_plans
    return plans[index].name if 0 <= index < len(plans) else None


def _flow(dp: Any, priority: int, match: Any, actions: list, cookie: int = COOKIE_BASE) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
    return parser.OFPFlowMod(
        datapath=dp,
        cookie=cookie,
        command=ofp.OFPFC_ADD,
        priority=priority,
        match=match,
        instructions=instructions,
    )


def base_flows(dp: Any, config: TestbedConfig) -> list:
    """Flows installed once when the switch connects (all but the VIP flow)."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    net = config.network
    port = config.web.port
    normal = [parser.OFPActionOutput(ofp.OFPP_NORMAL)]
    flows = [
        _flow(dp, PRIORITY_NORMAL, parser.OFPMatch(), normal),
        _flow(
            dp,
            PRIORITY_ARP,
            parser.OFPMatch(eth_type=0x0806, arp_tpa=net.vip),
            [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)],
        ),
    ]
    for server in config.server_plans:
        reply = dict(eth_type=0x0800, ip_proto=6, in_port=server.port, ipv4_src=server.ip, tcp_src=port)
        to_client = [parser.OFPActionSetField(eth_src=net.vmac), parser.OFPActionSetField(ipv4_src=net.vip),
                     *normal]
        if config.probe.passive:
            resets = dict(reply, tcp_flags=(RST, RST))
            to_monitor = parser.OFPMatch(**resets, ipv4_dst=config.monitor.ip)
            flows.append(_flow(dp, PRIORITY_PROBE_RESET, to_monitor, normal))
            flows.append(_flow(dp, PRIORITY_RESET, parser.OFPMatch(**resets),
                               [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, RESET_COPY_BYTES), *to_client]))
        flows.append(
            _flow(
                dp,
                PRIORITY_PROBE_REPLY,
                parser.OFPMatch(**reply, ipv4_dst=config.monitor.ip),
                normal,
            )
        )
        flows.append(_flow(dp, PRIORITY_REPLY, parser.OFPMatch(**reply), to_client))
    return flows


def _to_server(parser: Any, server: HostPlan) -> list:
    """The actions that deliver a client's packet for the VIP to `server`."""
    return [
        parser.OFPActionSetField(eth_dst=server.mac),
        parser.OFPActionSetField(ipv4_dst=server.ip),
        parser.OFPActionOutput(server.port),
    ]


def vip_flow(dp: Any, config: TestbedConfig, server: HostPlan) -> Any:
    """The one flow that sends client -> VIP traffic to `server` (through the fast-failover
    group, with `failover.switch_failover`)."""
    parser = dp.ofproto_parser
    actions = ([parser.OFPActionGroup(VIP_GROUP)] if config.failover.switch_failover
               else _to_server(parser, server))
    return _flow(
        dp,
        PRIORITY_VIP,
        parser.OFPMatch(eth_type=0x0800, ipv4_dst=config.network.vip),
        actions,
        cookie=vip_cookie(config, server.name),
    )


def vip_group(dp: Any, config: TestbedConfig, server: HostPlan, add: bool) -> Any:
    """The fast-failover group: `server` first, then the others in priority order, each bucket
    live while its server's port is up. `add` for a switch that has none yet, else a modify."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    order = [server, *(plan for plan in config.server_plans if plan.name != server.name)]
    buckets = [parser.OFPBucket(watch_port=plan.port, watch_group=ofp.OFPG_ANY,
                                actions=_to_server(parser, plan)) for plan in order]
    command = ofp.OFPGC_ADD if add else ofp.OFPGC_MODIFY
    return parser.OFPGroupMod(dp, command, ofp.OFPGT_FF, VIP_GROUP, buckets)


def vip_flow_request(dp: Any) -> Any:
    """Ask the switch for its VIP flow (its cookie says which server holds the VIP)."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    return parser.OFPFlowStatsRequest(
        dp,
        table_id=0,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        cookie=COOKIE_VIP,
        cookie_mask=0xFFFF_FFFF_FFFF_FF00,  # every VIP cookie, whatever the server index
        match=parser.OFPMatch(),
    )


def arp_reply(dp: Any, config: TestbedConfig, request: Any, in_port: int) -> Any | None:
    """A packet-out answering an ARP request for the VIP with the VMAC, or None if not one."""
    from os_ken.lib.packet import arp, ethernet, packet

    if request.opcode != arp.ARP_REQUEST or request.dst_ip != config.network.vip:
        return None
    reply = packet.Packet()
    reply.add_protocol(
        ethernet.ethernet(ethertype=0x0806, dst=request.src_mac, src=config.network.vmac)
    )
    reply.add_protocol(
        arp.arp(
            opcode=arp.ARP_REPLY,
            src_mac=config.network.vmac,
            src_ip=config.network.vip,
            dst_mac=request.src_mac,
            dst_ip=request.src_ip,
        )
    )
    reply.serialize()
    parser, ofp = dp.ofproto_parser, dp.ofproto
    return parser.OFPPacketOut(
        datapath=dp,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(in_port)],
        data=reply.data,
    )
