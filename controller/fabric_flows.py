"""Forwarding on a fabric (topology/fabric.py): which port or fast-failover group takes each
host's traffic on every switch, with a backup for every cable planned in advance.

Only with `network.topology` two-tier or leaf-spine; the single switch uses NORMAL. Every
switch has two tables:

    table 0  (controller/flows.py)  ARP to the controller, which answers for every host (no
             broadcast ever crosses the fabric, so its loops need no spanning tree); on the
             clients' edge the VIP's rewrites as on one switch; everything else -> table 1
    table 1  (this module)  by destination MAC, a host's own port on its edge, else a
             fast-failover group (below); on every switch but the clients' edge, any
             other MAC goes towards the clients' edge (one route for all the clients, so
             no switch but theirs has a rule per client); the clients' edge drops the rest

The groups, for a host H on edge E(H):

    on another edge X    H's packets go up to a core: one bucket per core, each watching X's
                         cable to it, the cores whose cable down to E(H) is up first. A packet
                         for H that came *down* from core C (C lost its cable to E(H) and
                         bounced it) goes up again by the other cores only.
    on a core C          from edge X, down C's cable to E(H); if that is down, bounce by another
                         edge (not X, not E(H)), and at last back out of X (IN_PORT), whose
                         rule for bounced packets sends it up another core.

So any one cable can go down and the switches at its ends move the traffic at once, with no
round trip to the controller; the controller hears the port go down and plans again with that
cable left out (the buckets' order changes, so that no packet takes the bounce for long). Two
cables down at once can take a bounce between two edges until the controller has planned.

`plan_switch` is pure (the plan as data, tested without a switch); `messages` turns a plan
into OpenFlow 1.3 messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.flows import COOKIE_BASE, FORWARDING_TABLE
from topology.config import HostPlan, TestbedConfig
from topology.fabric import Fabric

PRIORITY_HOST = 10  # eth_dst=H
PRIORITY_BOUNCED = 20  # in_port=a cable, eth_dst=H
# The route towards the clients' edge matches any MAC, so it must lose to every host's rule,
# a local host's included (its packets come in from a cable too).
PRIORITY_TO_CLIENTS = 3
PRIORITY_TO_CLIENTS_BOUNCED = 4  # in_port=a cable
TO_CLIENTS = 0  # the index of the route towards the clients' edge in the groups' ids
IN_PORT = "in_port"  # a bucket that sends the packet back where it came from
GROUP_BASE = 0x1000  # VIP_GROUP (controller/flows.py) is 1


@dataclass(frozen=True)
class Bucket:
    watch_port: int
    out_port: int | str  # a port number, or IN_PORT


@dataclass(frozen=True)
class Group:
    group_id: int
    buckets: tuple[Bucket, ...]


@dataclass(frozen=True)
class Rule:
    """One table-1 flow: packets for `mac` (any MAC if None; from `in_port`, if set) to
    `port` or `group`."""

    mac: str | None
    priority: int
    in_port: int | None = None
    port: int | None = None
    group: int | None = None


@dataclass(frozen=True)
class SwitchPlan:
    groups: tuple[Group, ...]
    rules: tuple[Rule, ...]


def group_id(host_index: int, came_from: int = 0) -> int:
    """The group of the `host_index`th host (from 1; TO_CLIENTS for the route towards the
    clients' edge); `came_from` 0 for its own traffic, else 1 + the index of the peer it came
    from (a core on an edge, an edge on a core)."""
    return GROUP_BASE + host_index * 64 + came_from


def plan_switch(fabric: Fabric, hosts: Iterable[HostPlan], switch: str, down: frozenset[str],
                backup: bool = True) -> SwitchPlan:
    """Switch `switch`'s table-1 rules and groups, with the cables named in `down` (Link.name)
    cut. Without `backup` (`failover.switch_failover` off) each group has its first bucket
    only: a cut cable's traffic is lost until the controller has planned again."""
    groups: list[Group] = []
    rules: list[Rule] = []
    clients_edge = fabric.clients_edge
    for index, host in enumerate(hosts, start=1):
        home = host.switch
        if switch == home:
            rules.append(Rule(host.mac, PRIORITY_HOST, port=host.port))
        elif home == clients_edge:
            continue  # the one route towards the clients' edge, below, takes its packets
        elif switch in fabric.edges:
            _plan_edge(fabric, switch, home, index, host.mac, down, backup, groups, rules)
        else:
            _plan_core(fabric, switch, home, index, host.mac, down, backup, groups, rules)
    if switch != clients_edge:
        plan = _plan_edge if switch in fabric.edges else _plan_core
        plan(fabric, switch, clients_edge, TO_CLIENTS, None, down, backup, groups, rules)
    return SwitchPlan(tuple(groups), tuple(rules))


def _priorities(mac: str | None) -> tuple[int, int]:
    """A destination's rules' priorities: (its own, bounced)."""
    return (PRIORITY_HOST, PRIORITY_BOUNCED) if mac else (PRIORITY_TO_CLIENTS, PRIORITY_TO_CLIENTS_BOUNCED)


def _plan_edge(fabric: Fabric, edge: str, home: str, index: int, mac: str | None, down: frozenset[str],
               backup: bool, groups: list[Group], rules: list[Rule]) -> None:
    # The cores this edge and the host's edge are both still cabled to first; the others stay,
    # in case the plan is stale (their cables' own state is what the switch watches).
    def cut(core: str) -> bool:
        return fabric.link(edge, core).name in down or fabric.link(home, core).name in down
    cores = sorted(fabric.cores, key=cut)
    def up_by(cores_: list[str]) -> tuple[Bucket, ...]:
        buckets = tuple(Bucket(port, port) for port in (fabric.link(edge, core).edge_port for core in cores_))
        return buckets if backup else buckets[:1]
    own, bounced = _priorities(mac)
    groups.append(Group(group_id(index), up_by(cores)))
    rules.append(Rule(mac, own, group=group_id(index)))
    if len(fabric.cores) < 2:
        return  # one core: a bounced packet has nowhere else to go (the table's miss drops it)
    for k, came_from in enumerate(fabric.cores, start=1):
        gid = group_id(index, k)
        groups.append(Group(gid, up_by([core for core in cores if core != came_from])))
        rules.append(Rule(mac, bounced, in_port=fabric.link(edge, came_from).edge_port, group=gid))


def _plan_core(fabric: Fabric, core: str, home: str, index: int, mac: str | None, down: frozenset[str],
               backup: bool, groups: list[Group], rules: list[Rule]) -> None:
    own, bounced = _priorities(mac)
    downlink = fabric.link(home, core).core_port
    rules.append(Rule(mac, own, port=downlink))  # from the host's own edge: never bounced
    for k, came_from in enumerate(fabric.edges, start=1):
        if came_from == home:
            continue
        back = fabric.link(came_from, core).core_port
        others = [fabric.link(edge, core).core_port for edge in fabric.edges if edge not in (home, came_from)]
        buckets = (Bucket(downlink, downlink), *(Bucket(port, port) for port in others),
                   Bucket(back, IN_PORT))
        gid = group_id(index, k)
        groups.append(Group(gid, buckets if backup else buckets[:1]))
        rules.append(Rule(mac, bounced, in_port=back, group=gid))


def fabric_hosts(config: TestbedConfig) -> list[HostPlan]:
    """Every host the fabric forwards to, in a fixed order (its index, from 1, names its groups)."""
    return list(config.host_plans)


def messages(dp: Any, plan: SwitchPlan, add: bool) -> list:
    """The plan as OpenFlow messages: groups first (a rule may name one), then the rules.
    `add` for a switch that has just connected (groups added, rules added); else the groups
    are modified in place and the rules, which never change, are not sent again."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    out: list = []
    for group in plan.groups:
        buckets = [parser.OFPBucket(watch_port=b.watch_port, watch_group=ofp.OFPG_ANY,
                                    actions=[parser.OFPActionOutput(ofp.OFPP_IN_PORT if b.out_port == IN_PORT
                                                                    else b.out_port)])
                   for b in group.buckets]
        command = ofp.OFPGC_ADD if add else ofp.OFPGC_MODIFY
        out.append(parser.OFPGroupMod(dp, command, ofp.OFPGT_FF, group.group_id, buckets))
    if not add:
        return out
    for rule in plan.rules:
        fields = {"in_port": rule.in_port, "eth_dst": rule.mac}
        match = parser.OFPMatch(**{key: value for key, value in fields.items() if value is not None})
        action = (parser.OFPActionGroup(rule.group) if rule.group is not None
                  else parser.OFPActionOutput(rule.port))
        out.append(parser.OFPFlowMod(
            datapath=dp, table_id=FORWARDING_TABLE, command=ofp.OFPFC_ADD, priority=rule.priority,
            match=match,
            instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [action])],
            cookie=COOKIE_BASE))
    return out


@dataclass
class LinkChange:
    """What a cable's news changes: the events to log and the servers whose reachability the
    failover machine must hear of, as a port of theirs going down or up."""

    events: list[tuple[str, dict[str, Any]]]
    servers: list[tuple[str, bool]]  # (server, reachable)


class FabricState:
    """Which of a fabric's cables are down and which servers no path reaches: the pure part
    of the controller's fabric, fed the switches' port news (both ends of a cable tell)."""

    def __init__(self, config: TestbedConfig) -> None:
        self.config = config
        self.fabric = config.fabric
        self.ends_down: set[tuple[str, str]] = set()  # (cable, switch): the ends that report down
        self.cut_off: set[str] = set()
        self.groups: dict[str, dict[int, Group]] = {}  # what each switch was sent

    @property
    def down(self) -> set[str]:
        """The cables with an end down."""
        return {cable for cable, _ in self.ends_down}

    def plan(self, switch: str) -> SwitchPlan:
        return plan_switch(self.fabric, fabric_hosts(self.config), switch, frozenset(self.down),
                           self.config.failover.switch_failover)

    def to_send(self, switch: str, connected: bool) -> SwitchPlan:
        """What `switch` must be sent: its whole plan when it has just connected, else only the
        groups that differ from what it was sent (a modify makes Open vSwitch revalidate its
        flows: sending every group of every switch on each cable's news slows the traffic down)."""
        plan = self.plan(switch)
        sent = self.groups.get(switch, {}) if not connected else {}
        self.groups[switch] = {group.group_id: group for group in plan.groups}
        if connected:
            return plan
        return SwitchPlan(tuple(g for g in plan.groups if sent.get(g.group_id) != g), ())

    def cable(self, name: str, switch: str, up: bool) -> LinkChange | None:
        """Cable `name`'s end on `switch` is up or down. A cable is down while either end says
        so (its two ends tell, in any order, and an end can report a change of the other's);
        None when the cable's state does not change. Each switch's `to_send` must then go out."""
        was_up = name not in self.down
        (self.ends_down.discard if up else self.ends_down.add)((name, switch))
        cable_up = name not in self.down
        if cable_up == was_up:
            return None
        change = LinkChange([("link_status", {"link": name, "switch": switch, "up": cable_up})], [])
        reached = self.fabric.reachable(self.down)
        for plan in self.config.server_plans:
            cut = plan.switch not in reached
            if cut == (plan.name in self.cut_off):
                continue
            (self.cut_off.add if cut else self.cut_off.discard)(plan.name)
            reason = ("no path of the fabric reaches its switch" if cut
                      else "a path of the fabric reaches its switch again")
            change.events.append(("server_cut_off" if cut else "server_reachable",
                                  {"server": plan.name, "reason": reason}))
            change.servers.append((plan.name, not cut))
        return change
