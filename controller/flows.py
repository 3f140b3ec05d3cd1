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

FORWARDING_TABLE = 1  # a fabric's table 1 (controller/fabric_flows.py)
LLDP_ETHERTYPE = 0x88CC  # the cables' check (controller/discovery.py)

PRIORITY_ARP = 300
PRIORITY_ANY_ARP = 290  # on a fabric: every ARP request, answered by the controller
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


def _flow(dp: Any, priority: int, match: Any, actions: list, cookie: int = COOKIE_BASE,
          goto: int | None = None) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    if goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(goto))
    return parser.OFPFlowMod(
        datapath=dp,
        cookie=cookie,
        command=ofp.OFPFC_ADD,
        priority=priority,
        match=match,
        instructions=instructions,
    )


def base_flows(dp: Any, config: TestbedConfig, switch: str | None = None) -> list:
    """Flows installed once when `switch` (the single one by default) connects: all but the VIP
    flow. On a fabric, each switch's table 0 ends in the forwarding table
    (controller/fabric_flows.py), every ARP request goes to the controller, and only the
    clients' edge has the VIP's rewrites, which match a server's replies wherever they came in.
    Every LLDP frame goes to the controller too, which checks the cables with them."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    net = config.network
    port = config.web.port
    fabric = config.fabric
    single = fabric.is_single
    normal = [parser.OFPActionOutput(ofp.OFPP_NORMAL)] if single else []
    forward = None if single else FORWARDING_TABLE
    to_controller = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
    flows = [_flow(dp, PRIORITY_NORMAL, parser.OFPMatch(), normal, goto=forward)]
    if not single:
        flows.append(_flow(dp, PRIORITY_ANY_ARP, parser.OFPMatch(eth_type=0x0806), to_controller))
        # The cables' LLDP check (controller/discovery.py): every frame to the controller.
        flows.append(_flow(dp, PRIORITY_ANY_ARP, parser.OFPMatch(eth_type=LLDP_ETHERTYPE), to_controller))
        if (switch or fabric.clients_edge) != fabric.clients_edge:
            return flows
    flows.append(_flow(dp, PRIORITY_ARP, parser.OFPMatch(eth_type=0x0806, arp_tpa=net.vip), to_controller))
    for server in config.server_plans:
        reply = dict(eth_type=0x0800, ip_proto=6, ipv4_src=server.ip, tcp_src=port)
        if single:
            reply["in_port"] = server.port
        to_client = [parser.OFPActionSetField(eth_src=net.vmac), parser.OFPActionSetField(ipv4_src=net.vip),
                     *normal]
        if config.probe.passive:
            resets = dict(reply, tcp_flags=(RST, RST))
            to_monitor = parser.OFPMatch(**resets, ipv4_dst=config.monitor.ip)
            flows.append(_flow(dp, PRIORITY_PROBE_RESET, to_monitor, normal, goto=forward))
            flows.append(_flow(dp, PRIORITY_RESET, parser.OFPMatch(**resets),
                               [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, RESET_COPY_BYTES), *to_client],
                               goto=forward))
        flows.append(
            _flow(
                dp,
                PRIORITY_PROBE_REPLY,
                parser.OFPMatch(**reply, ipv4_dst=config.monitor.ip),
                normal,
                goto=forward,
            )
        )
        flows.append(_flow(dp, PRIORITY_REPLY, parser.OFPMatch(**reply), to_client, goto=forward))
    return flows


def _to_server(parser: Any, server: HostPlan, output: bool = True) -> list:
    """The actions that deliver a client's packet for the VIP to `server` (on a fabric, without
    the output: the forwarding table takes it to the server's edge)."""
    rewrite = [parser.OFPActionSetField(eth_dst=server.mac), parser.OFPActionSetField(ipv4_dst=server.ip)]
    return [*rewrite, parser.OFPActionOutput(server.port)] if output else rewrite


def vip_flow(dp: Any, config: TestbedConfig, server: HostPlan) -> Any:
    """The one flow that sends client -> VIP traffic to `server` (through the fast-failover
    group, with `failover.switch_failover`)."""
    parser = dp.ofproto_parser
    single = config.fabric.is_single
    if not single:
        actions = _to_server(parser, server, output=False)
    elif config.failover.switch_failover:
        actions = [parser.OFPActionGroup(VIP_GROUP)]
    else:
        actions = _to_server(parser, server)
    return _flow(
        dp,
        PRIORITY_VIP,
        parser.OFPMatch(eth_type=0x0800, ipv4_dst=config.network.vip),
        actions,
        cookie=vip_cookie(config, server.name),
        goto=None if single else FORWARDING_TABLE,
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
    """A packet-out answering an ARP request for the VIP with the VMAC (on a fabric, for any
    host too, with its MAC), or None if not one the controller answers."""
    from os_ken.lib.packet import arp, ethernet, packet

    answers = arp_answers(config)
    if request.opcode != arp.ARP_REQUEST or request.dst_ip not in answers:
        return None
    mac = answers[request.dst_ip]
    reply = packet.Packet()
    reply.add_protocol(
        ethernet.ethernet(ethertype=0x0806, dst=request.src_mac, src=mac)
    )
    reply.add_protocol(
        arp.arp(
            opcode=arp.ARP_REPLY,
            src_mac=mac,
            src_ip=request.dst_ip,
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


def arp_answers(config: TestbedConfig) -> dict[str, str]:
    """The addresses the controller answers ARP for, and with which MAC: the VIP, and on a
    fabric every host (its broadcasts would otherwise loop over the redundant cables)."""
    answers = {config.network.vip: config.network.vmac}
    if not config.fabric.is_single:
        answers.update({plan.ip: plan.mac for plan in config.host_plans})
    return answers
