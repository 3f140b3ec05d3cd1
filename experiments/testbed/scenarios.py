"""The fault catalogue: each scenario is a named recipe that does one thing to the testbed.

A scenario's `inject` runs at `load.fault_at_s` into the load, on a running `Testbed`; its
docstring says what it shows and what a correct testbed does. `python -m experiments list`
prints them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from experiments.testbed.testbed import Testbed
from topology.config import MECHANISMS
from topology.fabric import TOPOLOGIES


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Callable[[Testbed], None] | None  # None: no fault
    expect_failover: bool
    # Config values the scenario needs (dotted keys, as on the command line), e.g. a policy.
    overrides: dict[str, Any] = field(default_factory=dict)
    # The failover mechanisms it applies to (controller-restart: only where there is a controller).
    mechanisms: tuple[str, ...] = MECHANISMS
    # The network topologies it applies to (a cut between switches needs more than one).
    topologies: tuple[str, ...] = TOPOLOGIES

    @property
    def summary(self) -> str:
        doc = (self.inject.__doc__ if self.inject else BASELINE_DOC) or ""
        return doc.strip().splitlines()[0]


BASELINE_DOC = """No fault: the primary serves every request; the reference for throughput and latency."""


def primary_crash(testbed: Testbed) -> None:
    """The whole primary dies (web server and database killed, link down): the VIP must move.

    The controller sees the switch port go down and moves the virtual IP to the secondary at
    once; requests in flight on the primary are lost, later ones are served by the secondary.
    """
    testbed.faults.crash(testbed.config.servers[0].name)


def web_crash(testbed: Testbed) -> None:
    """Only the primary's web server dies: the health probes notice and the VIP moves.

    The link stays up, so no port event helps: detection takes `fall` failed probes.
    """
    testbed.faults.kill_web(testbed.config.servers[0].name)


def db_crash(testbed: Testbed) -> None:
    """Only the primary's database dies: the web server still answers, /health does not.

    Only a health probe that queries the database notices; a plain TCP or HTTP check would
    keep sending users to a server that can only answer errors.
    """
    testbed.faults.kill_database(testbed.config.servers[0].name)


def link_down(testbed: Testbed) -> None:
    """The primary's link goes down: the switch reports the port down and the VIP moves at once."""
    testbed.faults.link_down(testbed.config.servers[0].name)


def controller_restart(testbed: Testbed) -> None:
    """The controller crashes and restarts: no failover and no lost request.

    The switch runs in fail-mode secure, so it keeps forwarding on the flows it has while the
    controller is away (2 s here). The new controller reads which server holds the VIP from
    the switch's flow table (the flow's cookie) and changes nothing.
    """
    testbed.faults.kill_controller()
    time.sleep(2.0)  # the outage of the controller itself, not a wait for a condition
    testbed.faults.restart_controller()


HANG_S = 3.0  # how long primary-hang keeps the primary frozen
FLAPS = 5  # link-down/up cycles of the flap scenario
FABRICS = tuple(t for t in TOPOLOGIES if t != "single")
FLAP_DOWN_S = 0.1
FLAP_UP_S = 0.2
FAILBACK_AFTER_S = 2.0  # how long the failback scenario's primary stays down
PARTITION_S = 3.0  # how long db-partition cuts replication
PARTITION_BEFORE_CRASH_S = 1.0  # partition-crash: how long replication is cut before the crash


def primary_hang(testbed: Testbed) -> None:
    """The primary freezes (SIGSTOP) for 3 s, then resumes: it must get no client traffic after.

    A frozen server accepts connections but answers nothing, so only probe time-outs tell
    (`probe.timeout_fall` of them in a row). Its frozen database cannot be set read-only, so
    with `failover.power_fence` the controller has the testbed's power switch kill it (and its
    web server) before the secondary is made writable; without, the secondary is promoted
    unfenced and the old database is set read-only the moment it wakes. Either way the flows
    keep the clients off it: the VIP stays on the secondary.
    """
    primary = testbed.config.servers[0].name
    testbed.faults.hang(primary)
    time.sleep(HANG_S)  # the length of the fault itself
    testbed.faults.resume(primary)


def flap(testbed: Testbed) -> None:
    """The primary's link goes down and up five times, faster than `rise`: one failover, no ping-pong.

    The first port-down moves the VIP; each time the link comes back the primary would need
    `rise` probes in a row to count as up again, and with failback "never" the VIP stays.
    """
    primary = testbed.config.servers[0].name
    for _ in range(FLAPS):
        testbed.faults.link_down(primary)
        time.sleep(FLAP_DOWN_S)
        testbed.faults.link_up(primary)
        time.sleep(FLAP_UP_S)


def failback(testbed: Testbed) -> None:
    """The primary's web server dies and comes back 2 s later; with failback "auto" the VIP returns.

    It returns only after `rise` passed probes, the hold-down time, and once the primary's
    database has applied every transaction the secondary took meanwhile (GTID positions).
    """
    primary = testbed.config.servers[0].name
    testbed.faults.kill_web(primary)
    time.sleep(FAILBACK_AFTER_S)
    testbed.faults.recover(primary)


def db_partition(testbed: Testbed) -> None:
    """Replication between the databases is cut for 3 s: no failover; the lag grows, then catches up.

    Clients and probes still reach both servers, so nothing fails over: the only witness is
    the replication lag, which grows for as long as the cut lasts and falls back once the
    replica catches up. A failover in that window would lose what the replica has not got.
    """
    testbed.faults.cut_replication()
    time.sleep(PARTITION_S)
    testbed.faults.restore_replication()


def partition_crash(testbed: Testbed) -> None:
    """Replication is cut, then 1 s later the primary crashes: what the replica never got is lost.

    With asynchronous replication every write the primary acknowledged during that second is
    gone from the secondary. Semi-synchronous replication waits for the replica's
    acknowledgement, but only for `database.semi_sync_timeout_ms`: then it falls back to
    asynchronous (the summary says so) and loses writes too. No acknowledged write is lost
    only if a commit waits for the replica as long as it takes.
    """
    testbed.faults.cut_replication()
    time.sleep(PARTITION_BEFORE_CRASH_S)
    primary_crash(testbed)
    testbed.faults.restore_replication()  # the cut was between the databases: the crash replaces it


def core_link_down(testbed: Testbed) -> None:
    """The cable between the primary's edge switch and the first core goes down: no failover.

    Both switches at its ends see their port go down and their fast-failover groups send the
    traffic by the other core at once (the first core bounces what was already on its way);
    the controller records the cut and plans the paths again without it. The primary still
    serves every request: the VIP must not move.
    """
    fabric = testbed.config.fabric
    testbed.faults.cable_down(fabric.link(testbed.config.server_plans[0].switch, fabric.cores[0]).name)


def core_switch_down(testbed: Testbed) -> None:
    """The first core switch dies (every cable of it goes dark at once): no failover.

    Every edge sees its cable to that core go down and sends by the others; the primary,
    still reached by them, keeps the VIP.
    """
    fabric = testbed.config.fabric
    for link in fabric.links:
        if link.core == fabric.cores[0]:
            testbed.faults.cable_down(link.name)


def edge_link_flap(testbed: Testbed) -> None:
    """The clients' edge cable to the first core goes down and up five times: no failover.

    Each cut moves the clients' traffic to the other core and each repair offers the first
    again; the servers never become unreachable, so the VIP stays on the primary.
    """
    fabric = testbed.config.fabric
    name = fabric.link(fabric.clients_edge, fabric.cores[0]).name
    for _ in range(FLAPS):
        testbed.faults.cable_down(name)
        time.sleep(FLAP_DOWN_S)
        testbed.faults.cable_up(name)
        time.sleep(FLAP_UP_S)


def both_down(testbed: Testbed) -> None:
    """Both web servers die: no server is left; the controller says so and does not ping-pong.

    Every request fails from then on; the events show one `no_healthy_server`, not a VIP
    moving back and forth between two dead servers.
    """
    for server in testbed.config.servers:
        testbed.faults.kill_web(server.name)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("baseline", None, expect_failover=False),
        Scenario("primary-crash", primary_crash, expect_failover=True),
        Scenario("web-crash", web_crash, expect_failover=True),
        Scenario("db-crash", db_crash, expect_failover=True),
        Scenario("link-down", link_down, expect_failover=True),
        Scenario("controller-restart", controller_restart, expect_failover=False, mechanisms=("sdn",)),
        Scenario("primary-hang", primary_hang, expect_failover=True),
        Scenario("flap", flap, expect_failover=True),
        Scenario("failback", failback, expect_failover=True,
                 overrides={"failover.failback": "auto", "failover.hold_down_s": 1.0}),
        Scenario("db-partition", db_partition, expect_failover=False),
        Scenario("partition-crash", partition_crash, expect_failover=True),
        Scenario("both-down", both_down, expect_failover=False),
        Scenario("core-link-down", core_link_down, expect_failover=False, mechanisms=("sdn",),
                 topologies=FABRICS),
        Scenario("core-switch-down", core_switch_down, expect_failover=False, mechanisms=("sdn",),
                 topologies=FABRICS),
        Scenario("edge-link-flap", edge_link_flap, expect_failover=False, mechanisms=("sdn",),
                 topologies=FABRICS),
    )
}
