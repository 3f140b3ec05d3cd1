"""Which cables a fabric really has: the controller checks the plan with LLDP.

The forwarding (controller/fabric_flows.py) is planned from the config's fabric
(topology/fabric.py), and the network is built from the same plan. A network built by hand
(`mn --custom`), a cable moved in Mininet's CLI or a switch named with another's datapath id
would make that plan wrong without a word. So, on a fabric, each switch sends an LLDP frame
out of every cable port when it connects and when a cable port comes up (the frame names the
sending datapath id and port), and every switch gives the LLDP frames it receives to the
controller (controller/flows.py's table 0). `CableCheck` compares each frame with the plan:

    heard as planned    the cable is `verified` (once: the event `cable_verified`)
    heard otherwise     `cable_miswired`: the cable planned on the receiving port is taken
                        as down (FabricState's end "lldp"), so no traffic is planned over a
                        cable that leads somewhere else; a frame as planned later clears it

Pure: frames in and out as bytes, the plan from the config; the app sends and receives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from os_ken.lib.packet import ethernet, lldp, packet

from controller.flows import LLDP_ETHERTYPE
from topology.fabric import Fabric, Link

__all__ = ["LLDP_ETHERTYPE", "CableCheck", "probe_frame", "sender_of"]
LLDP_DST = "01:80:c2:00:00:0e"  # nearest bridge: never forwarded by a switch
CHASSIS_PREFIX = b"dpid:"
TTL_S = 120
CHECK_END = "lldp"  # the end FabricState is told of for a miswired cable


def probe_frame(dpid: int, port: int, src_mac: str = "02:00:00:00:fe:fe") -> bytes:
    """An LLDP frame saying it left datapath `dpid` by `port`."""
    frame = packet.Packet()
    frame.add_protocol(ethernet.ethernet(dst=LLDP_DST, src=src_mac, ethertype=LLDP_ETHERTYPE))
    frame.add_protocol(lldp.lldp(tlvs=[
        lldp.ChassisID(subtype=lldp.ChassisID.SUB_LOCALLY_ASSIGNED,
                       chassis_id=CHASSIS_PREFIX + b"%016x" % dpid),
        lldp.PortID(subtype=lldp.PortID.SUB_PORT_COMPONENT, port_id=str(port).encode()),
        lldp.TTL(ttl=TTL_S),
        lldp.End(),
    ]))
    frame.serialize()
    return bytes(frame.data)


def sender_of(data: bytes) -> tuple[int, int] | None:
    """(datapath id, port) a probe frame says it left by; None for any other frame."""
    try:
        frame = packet.Packet(data)
        found = frame.get_protocol(lldp.lldp)
    except Exception:  # noqa: BLE001 - anything that does not parse is not ours
        return None
    if found is None or len(found.tlvs) < 2:
        return None
    chassis, port = found.tlvs[0], found.tlvs[1]
    chassis_id = getattr(chassis, "chassis_id", b"")
    if not chassis_id.startswith(CHASSIS_PREFIX):
        return None
    try:
        return int(chassis_id[len(CHASSIS_PREFIX):], 16), int(getattr(port, "port_id", b""))
    except ValueError:
        return None


@dataclass
class Heard:
    """What a probe frame changes: an event to log, and the cable to tell FabricState of (its
    name and whether the check holds it down), or None."""

    event: tuple[str, dict[str, Any]] | None
    cable: tuple[str, bool] | None = None  # (cable, held down by the check)


class CableCheck:
    """The planned cables against the probe frames that arrive."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.verified: set[str] = set()
        self.miswired: dict[str, str] = {}  # cable -> what was heard on its port instead
        self.strays: set[tuple[str, int, str]] = set()  # frames heard on a host's port, said once

    def ports_to_probe(self, switch: str) -> list[int]:
        """`switch`'s cable ports, where it sends a probe frame when it connects."""
        ports = [lk.edge_port for lk in self.fabric.links if lk.edge == switch]
        return ports + [lk.core_port for lk in self.fabric.links if lk.core == switch]

    def heard(self, switch: str, port: int, sender: tuple[int, int]) -> Heard:
        """`switch` received, on `port`, a probe frame that left datapath sender[0] by port sender[1]."""
        planned = self.fabric.link_at(switch, port)
        from_switch = self.fabric.switch_of_dpid(sender[0])
        came = f"{from_switch or f'dpid {sender[0]}'} port {sender[1]}"
        if planned is None:  # on a host's port: a host sent it, or a cable the plan lacks
            if (switch, port, came) in self.strays:
                return Heard(None)  # said once: a host repeating it must not fill the event log
            self.strays.add((switch, port, came))
            return Heard(("cable_miswired", {"switch": switch, "port": port, "heard": came,
                                             "planned": "a host's port"}))
        if self._matches(planned, switch, from_switch, sender[1]):
            was_miswired = self.miswired.pop(planned.name, None) is not None
            if planned.name in self.verified and not was_miswired:
                return Heard(None)
            self.verified.add(planned.name)
            let_go = (planned.name, False) if was_miswired else None
            return Heard(("cable_verified", {"link": planned.name}), let_go)
        if switch == planned.edge:
            other_end = (planned.core, planned.core_port)
        else:
            other_end = (planned.edge, planned.edge_port)
        if self.miswired.get(planned.name) == came:
            return Heard(None)
        self.miswired[planned.name] = came
        self.verified.discard(planned.name)
        return Heard(("cable_miswired", {"link": planned.name, "switch": switch, "port": port, "heard": came,
                                         "planned": f"{other_end[0]} port {other_end[1]}"}),
                     (planned.name, True))

    @staticmethod
    def _matches(link: Link, switch: str, from_switch: str | None, from_port: int) -> bool:
        if switch == link.edge:
            return (from_switch, from_port) == (link.core, link.core_port)
        return (from_switch, from_port) == (link.edge, link.edge_port)

    def status(self, down: set[str]) -> dict[str, dict[str, Any]]:
        """/status's `cables`: each planned cable, whether it is up and what LLDP found."""
        return {lk.name: {"up": lk.name not in down, "verified": lk.name in self.verified,
                          "miswired": self.miswired.get(lk.name)} for lk in self.fabric.links}
