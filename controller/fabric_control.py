"""The app's part on a fabric: what each switch is sent when it connects or a cable changes,
and the LLDP check of the cables (controller/discovery.py).

The decisions are FabricState's (controller/fabric_flows.py) and CableCheck's; this class
only turns them into OpenFlow messages for the app to send and events for it to log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controller import discovery, fabric_flows
from controller.fabric_flows import LinkChange
from topology.config import TestbedConfig

PROBE_AGAIN_S = 1.0  # how often a cable not verified yet is probed again


class FabricControl:
    def __init__(self, config: TestbedConfig) -> None:
        self.fabric = config.fabric
        self.state = fabric_flows.FabricState(config)  # its cables down, servers cut off
        self.check = discovery.CableCheck(self.fabric)
        self.probed_at: float | None = None

    def connected(self, dp: Any, switch: str) -> list:
        """A switch has connected (its base flows sent): its whole forwarding, then a probe
        frame out of each of its cable ports."""
        plan = self.state.to_send(switch, connected=True)
        return [*fabric_flows.messages(dp, plan, add=True),
                *self.probes(dp, switch, self.check.ports_to_probe(switch))]

    def probes(self, dp: Any, switch: str, ports: Iterable[int]) -> list:
        """Packet-outs of an LLDP frame naming `switch` and the port, one per port."""
        parser, ofp = dp.ofproto_parser, dp.ofproto
        dpid = self.fabric.dpid(switch)
        return [parser.OFPPacketOut(datapath=dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                    actions=[parser.OFPActionOutput(port)],
                                    data=discovery.probe_frame(dpid, port))
                for port in ports]

    def probes_again(self, switches: dict[str, Any], now: float) -> list[tuple[Any, Any]]:
        """(datapath, packet-out) for every cable not verified yet, at most every PROBE_AGAIN_S.
        A switch's first frames are lost when the switch at the cable's other end has not
        connected yet, or has not its LLDP rule in place: the one that connects later sends
        its own, but both can miss; and a cable that was down at the start is verified once up."""
        if self.probed_at is not None and now - self.probed_at < PROBE_AGAIN_S:
            return []
        self.probed_at = now
        # A cable whose port is down cannot carry a frame: its port coming up probes it. One
        # held down only by the check (miswired) is probed on, to see it rewired.
        ports_down = {cable for cable, end in self.state.ends_down if end != discovery.CHECK_END}
        out = []
        for link in self.fabric.links:
            if link.name in self.check.verified or link.name in ports_down:
                continue
            for switch, port in ((link.edge, link.edge_port), (link.core, link.core_port)):
                if switch in switches:
                    out += [(switches[switch], m) for m in self.probes(switches[switch], switch, [port])]
        return out

    def cable_port(self, switch: str, port: int, up: bool) -> LinkChange | None:
        """`switch`'s `port` went up or down: what changes if it is a cable's (None if not)."""
        link = self.fabric.link_at(switch, port)
        return None if link is None else self.state.cable(link.name, switch, up=up)

    def probe_heard(self, switch: str, port: int, data: bytes) -> tuple[list[tuple[str, dict[str, Any]]],
                                                                         LinkChange | None]:
        """A frame from the LLDP rule: the events to log, and what changes if the check holds a
        cable down (or lets it go). A frame that is not a probe of ours is ignored."""
        sender = discovery.sender_of(data)
        if sender is None:
            return [], None
        heard = self.check.heard(switch, port, sender)
        events = [heard.event] if heard.event else []
        if heard.cable is None:
            return events, None
        cable, held = heard.cable
        return events, self.state.cable(cable, discovery.CHECK_END, up=not held)

    def updates(self, switches: dict[str, Any]) -> list[tuple[Any, Any]]:
        """(datapath, message) for the groups that changed on every connected switch."""
        return [(dp, message) for name, dp in switches.items()
                for message in fabric_flows.messages(dp, self.state.to_send(name, connected=False),
                                                     add=False)]

    def status(self) -> dict[str, dict[str, Any]]:
        return self.check.status(self.state.down)
