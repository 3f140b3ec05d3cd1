"""Which OpenFlow connections the controller serves: the testbed's own switches, by name.

Anyone on the machine can connect to the OpenFlow port. Were any switch served, a foreign one
would take the place of the testbed's (the VIP flow sent to it, probe results and port events
ignored until it answered) and its port events or flow stats would move the VIP. So only the
switches of the plan (topology/fabric.py: their datapath ids) are served, and a dpid is only a
claim: a second connection with a served switch's dpid, while that one is alive, is refused
too. When a served connection is gone (os-ken's state change to DEAD), the next one with its
dpid is served again.
"""

from __future__ import annotations

from typing import Any

from os_ken.controller.handler import DEAD_DISPATCHER

from topology.fabric import Fabric

FOREIGN = "foreign_switch_refused"
DUPLICATE = "duplicate_switch_refused"


def alive(dp: Any) -> bool:
    """Whether os-ken still serves the connection `dp` (closed ones end in DEAD_DISPATCHER)."""
    return getattr(dp, "is_active", True) and getattr(dp, "state", None) != DEAD_DISPATCHER


class ServedSwitches:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.by_name: dict[str, Any] = {}

    @property
    def vip_switch(self) -> Any:
        """The switch that holds the VIP flow (the clients' edge), or None while it is away."""
        return self.by_name.get(self.fabric.clients_edge)

    def name_of(self, dp: Any) -> str | None:
        """The name of the served switch `dp` is, or None for any other connection."""
        return next((name for name, served in self.by_name.items() if served is dp), None)

    def admit(self, dp: Any, dpid: int) -> tuple[str | None, str | None]:
        """A connection said it is datapath `dpid` (the features message's own: os-ken sets
        `dp.id` only later): (its name, None) once served, or (None, why it is refused)."""
        name = self.fabric.switch_of_dpid(dpid)
        if name is None:
            return None, FOREIGN
        served = self.by_name.get(name)
        if served is not None and served is not dp and alive(served):
            return None, DUPLICATE  # the first one stays served
        self.by_name[name] = dp
        return name, None

    def gone(self, dp: Any) -> str | None:
        """`dp`'s connection ended: the name it was served as, or None if it was not."""
        name = self.name_of(dp)
        if name is not None:
            del self.by_name[name]
        return name
