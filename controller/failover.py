"""Where the virtual IP should be: the controller's decisions, as a small pure state machine.

`FailoverMachine` takes what the controller learns (a health probe's result, a switch port
going down or up) together with the time `now`, and answers with `Decision`s: a server
marked down or up, the virtual IP moved. It performs no I/O and reads no clock, so every
rule below is tested with tables of input histories (tests/test_failover.py); the os-ken
app (`controller/app.py`) turns the decisions into OpenFlow messages.

The rules:
- A server is marked down after `fall` failed probes in a row, or at once when its switch
  port goes down, or when a probe out of schedule, asked for by a suspicion (the switch saw
  the server reset a client's connection; the web service said it lost its database), fails
  for certain: a suspicion alone decides nothing, and a confirming probe that times out counts
  as any time-out. A probe that timed out is weaker evidence than one the server answered
  with a refusal or an error: a busy server answers late, a dead one refuses at once. So
  time-outs alone mark a server down only after `timeout_fall` of them in a row (a hung
  server), and they break no run of definite failures. The answer that comes late to a probe
  that timed out shows the server busy, not dead: it forgives the time-outs of its run (not
  its refusals) and counts nothing towards `rise`. With `hang_fall`, that many time-outs in a
  row suffice for a server silent HANG_FACTOR times longer than its slowest answer of the last
  second: frozen, for a busy server's answers slow down first. A server is marked up again after
  `rise` successful probes in a row (a port coming back up is not enough: the service on it
  must answer).
- When the server holding the VIP goes down, the VIP moves at once to the first server, in
  priority order, that is up. If none is, the VIP stays and a `no_healthy_server` decision
  says so; it moves to the first server that comes back up.
- Start-up: until the VIP is placed on the switch, nothing is acted on (probe results, port
  events and commands change nothing), for the VIP may already be elsewhere. When the switch
  (re)connects (`switch_connected`) the placement is unknown again; its answer about its VIP
  flows (`vip_flows`) places it: the server a VIP flow names is adopted (a restarted
  controller neither moves the VIP nor interrupts traffic), and only a switch with no VIP
  flow gets one, for the active (at first the preferred) server.
- Failback: with policy `never` (like keepalived's nopreempt) the VIP stays where it is when
  a preferred server comes back. With `auto` it returns to the most preferred server that is
  up, but only once `hold_down_s` has passed since the VIP last moved (so a flapping server
  cannot pull the VIP back and forth) and only once that server's database has applied every
  transaction the active one had `REPLICATION_ALLOWANCE_S` (100 ms) before (GTID positions,
  reported by each probe): never to a lagging server.
- Commands (from the status endpoint): `failover` moves the VIP to the first other server
  that is up; `failback` moves it to the most preferred server that is up and caught up. They
  ignore the hold-down (a person asked) but never pick a server that is down or lagging.
- Silence (`tick`, called as time passes): a server whose probe results stop arriving for
  longer than `silence_budget_s`, while the other servers' still arrive, is marked down ("no
  probe result for X s"): a state nobody has checked is not "up". When no server's result
  arrived within the budget, the prober itself is silent (`prober_silent`, once): no server is
  marked down for that (nothing is known of any, and the VIP stays), every one shows stale,
  and `prober_back` says when results come again.
  A server marked down for silence comes back up only through `rise` passed probes, as any
  other; a run of passed probes does not go on across a silence. Silence is judged only once
  the VIP is placed and once a first probe result arrived: the testbed starts the prober
  after the network and the databases, and a prober not started yet is not a failed server.
  A server never heard from counts from that first result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.gtid import caught_up, missing
from services.mariadb import BROKEN, STOPPED
from topology.config import TestbedConfig


@dataclass(frozen=True)
class Decision:
    """Something the controller decided; `kind` is one of the constants below."""

    kind: str
    server: str | None
    reason: str
    previous: str | None = None  # for VIP_MOVED: the server that held the VIP

    def event_fields(self) -> dict[str, str | None]:
        """The fields the event log writes with the decision's kind. A `vip_installed` line
        names only its server, as it always has: runs already recorded have that shape."""
        if self.kind == VIP_INSTALLED:
            return {"server": self.server}
        return {"server": self.server, "reason": self.reason, "previous": self.previous}


SERVER_DOWN = "server_down"
SERVER_UP = "server_up"
VIP_MOVED = "vip_moved"
VIP_ADOPTED = "vip_adopted"
VIP_INSTALLED = "vip_installed"  # the switch had no VIP flow: one is sent for `server`
NO_HEALTHY_SERVER = "no_healthy_server"
COMMAND_REFUSED = "command_refused"
PROBER_SILENT = "prober_silent"  # no server's probe result arrived within the budget
PROBER_BACK = "prober_back"  # a probe result arrived after the prober was silent
# The VIP went to a server whose database lacked what the failed one had, or whose replication
# had stopped: the reason says how far behind, or the error. `previous` is the failed server.
PROMOTED_LAGGING = "promoted_lagging"
COMMANDS = ("failover", "failback")
# A server counts as caught up when it has what the active one had this long before: far
# more than the replication lag here (p99 a few ms), far less than a lagging server's delay.
REPLICATION_ALLOWANCE_S = 0.1
GTID_HISTORY = 32  # passed probes remembered per server: over a second at the default interval
ANSWER_HISTORY = 25  # answers' latencies remembered per server, for the hang rule: 1 s
# A run of time-outs is a hang once the server has been silent this many times longer than its
# slowest answer of the last second (late answers included): a busy server's answers slow
# down before they stop coming in time; a frozen one's stop from one probe to the next. (The
# factor TCP puts on the variation of its round trips for its retransmission time-out.)
HANG_FACTOR = 4
# On top of the probe rules' own time (see `silence_budget_s`): the pauses of a loaded 2-core
# machine, where the prober's and the controller's threads can both be scheduled late. Several
# probe intervals at the default, and short enough that a dead prober is seen within ~1 s.
SILENCE_MARGIN_S = 0.25


def silence_budget_s(interval_s: float, timeout_s: float, timeout_fall: int) -> float:
    """How long a server's probe results may stop arriving before it is marked down.

    A hung server is marked down by `timeout_fall` timed-out probes in a row, which takes
    timeout_fall x interval_s plus the last probe's timeout_s. A silence is weaker evidence
    against the server than those time-outs (the prober, or the way to the controller, may
    be what failed), so it must never decide sooner; SILENCE_MARGIN_S on top absorbs late
    scheduling. With the defaults: 20 x 0.04 + 0.035 + 0.25 = 1.085 s.
    """
    return timeout_fall * interval_s + timeout_s + SILENCE_MARGIN_S


@dataclass
class ServerState:
    name: str
    up: bool = True
    port_up: bool = True
    failures: int = 0  # consecutive failed probes, time-outs included
    definite_failures: int = 0  # consecutive failed probes that were not time-outs
    successes: int = 0  # consecutive successful probes
    heard_at: float | None = None  # when its last probe result arrived, passed or not
    silent: bool = False  # its results stopped for longer than the budget; cleared by a result
    # (time, GTID position) of the recent passed probes, oldest first, for `_caught_up`
    gtid_seen: list[tuple[float, str]] = field(default_factory=list)
    # How long its recent passed probes took to answer (ms), oldest first, for `_hung`
    answered_ms: list[float] = field(default_factory=list)
    # How its database replicated at the last passed probe that said (services/mariadb.py),
    # and the error of a broken replication.
    replication: str | None = None
    replication_error: str = ""

    @property
    def gtid(self) -> str | None:
        """The database's GTID position at the last passed probe."""
        return self.gtid_seen[-1][1] if self.gtid_seen else None


@dataclass(frozen=True)
class ProbeRules:
    """When one server counts as down or up from its own probe results (the module docstring's
    first rule); each method updates the server's counts and says what it decided, if anything."""

    fall: int
    rise: int
    timeout_fall: int
    # A hang seen sooner (0: off): `hang_fall` time-outs in a row suffice for a server silent
    # for HANG_FACTOR times its slowest recent answer (see `hung`); `interval_ms` is how far
    # apart the probes are, so a run of n time-outs is about n x interval_ms of silence.
    hang_fall: int = 0
    interval_ms: float | None = None

    def passed(self, state: ServerState, now: float, gtid: str | None, replication: str | None,
               replication_error: str, latency_ms: float | None) -> Decision | None:
        if gtid is not None:
            state.gtid_seen = [*state.gtid_seen[-(GTID_HISTORY - 1):], (now, gtid)]
        if replication is not None:
            state.replication, state.replication_error = replication, replication_error
        if latency_ms is not None:
            state.answered_ms = [*state.answered_ms[-(ANSWER_HISTORY - 1):], latency_ms]
        state.failures = state.definite_failures = 0
        state.successes += 1
        if not state.up and state.successes >= self.rise:
            state.up = True
            return Decision(SERVER_UP, state.name, f"{self.rise} probes in a row passed")
        return None

    def failed(self, state: ServerState, detail: str, timed_out: bool, confirming: str) -> Decision | None:
        state.successes = 0
        state.failures += 1
        if not timed_out:
            state.definite_failures += 1
        if not state.up:
            return None
        why = f" ({detail})" if detail else ""
        if confirming and not timed_out:
            # A suspicion (a reset seen by the switch, the server's own word) confirmed by a
            # probe that failed for certain: one round trip, not `fall` probe intervals.
            reason = f"a probe confirmed {confirming}{why}"
        elif state.definite_failures >= self.fall:
            reason = f"{self.fall} probes in a row failed{why}"
        elif state.failures >= self.timeout_fall:
            reason = f"{self.timeout_fall} probes in a row failed or timed out"
        elif self.hung(state):
            reason = (f"{state.failures} probes in a row timed out, {HANG_FACTOR} times longer than "
                      f"its slowest answer of the last second ({max(state.answered_ms):g} ms): hung")
        else:
            return None
        state.up = False
        return Decision(SERVER_DOWN, state.name, reason)

    def answered_late(self, state: ServerState, latency_ms: float | None) -> None:
        """A probe that had timed out was answered after all: the server is busy, not dead, so
        the time-outs in its run of failures are forgiven (those that failed for certain are
        not). A late answer is no pass: it counts nothing towards `rise`; its latency joins the
        recent answers, so a server this slow is not taken for a fast one that froze (`hung`)."""
        state.failures = state.definite_failures
        if latency_ms is not None:
            state.answered_ms = [*state.answered_ms[-(ANSWER_HISTORY - 1):], latency_ms]

    def hung(self, state: ServerState) -> bool:
        """A server that answered every probe of the last second, and then answers nothing
        `hang_fall` times in a row, for HANG_FACTOR times longer than the slowest of those
        answers, is frozen, not busy: a busy one slows down (its late answers count) before it
        stops answering in time."""
        if not (self.hang_fall > 0 and self.interval_ms and state.failures >= self.hang_fall
                and state.definite_failures == 0 and len(state.answered_ms) == ANSWER_HISTORY):
            return False
        return max(state.answered_ms) * HANG_FACTOR <= state.failures * self.interval_ms


class FailoverMachine:
    """Decides which server holds the virtual IP."""

    def __init__(
        self,
        servers: Sequence[str],
        fall: int,
        rise: int,
        failback: str = "never",
        hold_down_s: float = 0.0,
        active: str | None = None,
        timeout_fall: int | None = None,
        silence_budget_s: float | None = None,
        hang_fall: int = 0,
        interval_ms: float | None = None,
    ) -> None:
        if len(servers) < 1:
            raise ValueError("at least one server is needed")
        self.order = list(servers)
        self.servers = {name: ServerState(name) for name in servers}
        self.rules = ProbeRules(fall, rise, timeout_fall or fall, hang_fall, interval_ms)
        self.failback = failback
        self.hold_down_s = hold_down_s
        self.active = active or self.order[0]
        self.last_move: float | None = None
        self.reported_no_server = False  # say "no healthy server" once, not at every probe
        self.vip_placed = False  # True once the switch's VIP flow is known or installed
        self.silence_budget_s = silence_budget_s  # None: silence is never judged
        self.first_heard: float | None = None  # when the prober's first result arrived
        self.prober_silent = False
        self.back_at: float | None = None  # when results came again after the prober was silent

    @property
    def holder(self) -> str | None:
        """The server that holds the VIP on the switch; None until the VIP is placed."""
        return self.active if self.vip_placed else None

    # -- inputs -------------------------------------------------------------------------

    def switch_connected(self, now: float) -> list[Decision]:
        """The switch (re)connected: which server its VIP flow names is unknown again, and
        nothing is acted on until it says (`vip_flows`). A switch that restarted may have
        lost the flow; one that kept it may name a server other than `active`."""
        self.vip_placed = False
        return []

    def vip_flows(self, holders: Sequence[str | None], now: float) -> list[Decision]:
        """The switch answered with the servers its VIP flows name (None: a cookie naming
        no server). Adopt the first known one; with none, install the VIP for the active
        server. Only the first answer after a connect places the VIP."""
        if self.vip_placed:
            return []
        if known := [server for server in holders if server in self.servers]:
            return self.adopt(known[0], now)
        self.vip_placed = True
        return [Decision(VIP_INSTALLED, self.active, "the switch has no VIP flow")]

    def probe(
        self, server: str, ok: bool, now: float, detail: str = "", gtid: str | None = None,
        timed_out: bool = False, replication: str | None = None, replication_error: str = "",
        confirming: str = "", latency_ms: float | None = None, late: bool = False,
    ) -> list[Decision]:
        """A health probe of `server` passed (`ok`) or failed (`timed_out`, or answered with an
        error) at `now`; `gtid` is the database's GTID position reported by a passed probe,
        `replication` how it replicates (None: it did not say); `confirming` the suspicion a
        probe out of schedule was asked to confirm ("" for a scheduled probe); `late`: a probe
        reported as timed out answered after all."""
        state = self.servers[server]
        # That a result arrived is recorded even before the VIP is placed: it decides nothing.
        state.heard_at, state.silent = now, False
        self.first_heard = now if self.first_heard is None else self.first_heard
        if not self.vip_placed:
            return []
        decisions: list[Decision] = []
        if self.prober_silent:
            self.prober_silent = False
            self.back_at = now  # the others' silence counts from here, as at the first result
            decisions.append(Decision(PROBER_BACK, None, "probe results arrive again"))
        if late:  # only one that passed is sent (controller/probe_intake.py)
            decided = self.rules.answered_late(state, latency_ms)
        elif ok and state.port_up:
            decided = self.rules.passed(state, now, gtid, replication, replication_error, latency_ms)
        elif not ok:
            decided = self.rules.failed(state, detail, timed_out, confirming)
        else:
            decided = None  # a probe that passed through a port the switch says is down
        if decided is not None:
            decisions.append(decided)
        return decisions + self._place_vip(now)

    def tick(self, now: float) -> list[Decision]:
        """Time passed: mark down each server whose probe results stopped for longer than the
        budget, and say when the prober itself is silent (see the module docstring)."""
        first, budget = self.first_heard, self.silence_budget_s
        if not self.vip_placed or budget is None or first is None:
            return []
        # A server never heard from counts from the prober's first result, and every server
        # from the prober's return after a silence: its results come back one after another.
        since = max(first, self.back_at or first)
        heard = {name: max(since, s.heard_at or since) for name, s in self.servers.items()}
        decisions: list[Decision] = []
        newest = max(heard.values())
        if now - newest > budget and not self.prober_silent:
            self.prober_silent = True
            reason = f"no probe result from any server for {now - newest:.1f} s"
            decisions.append(Decision(PROBER_SILENT, None, reason))
        went_down = False
        for name in self.order:
            state, age = self.servers[name], now - heard[name]
            # Only while the prober is heard from for other servers: if it is silent for all
            # (it died), nothing is known of any server, which is not the same as every one
            # down; marking them down would hand the VIP to whichever passed `rise` first once
            # the prober is back. (A dead prober's last results are within one interval of
            # each other; a server whose own results stopped falls behind by the budget.)
            if age <= budget or state.silent or newest - heard[name] <= budget / 2:
                continue
            state.silent = True
            state.successes = 0  # passed probes on either side of a silence are not "in a row"
            if state.up:
                state.up, went_down = False, True
                decisions.append(Decision(SERVER_DOWN, name, f"no probe result for {age:.1f} s"))
        # Only a server gone down can move the VIP here: a tick never starts a failback.
        return decisions + (self._place_vip(now) if went_down else [])

    def probe_age_s(self, server: str, now: float) -> float | None:
        """How long ago `server`'s last probe result arrived; None if none ever did."""
        heard = self.servers[server].heard_at
        return None if heard is None else now - heard

    def probe_stale(self, server: str, now: float) -> bool:
        """Whether what is known of `server` is older than the budget (or was never probed)."""
        age = self.probe_age_s(server, now)
        return age is None or (self.silence_budget_s is not None and age > self.silence_budget_s)

    def last_result_age_s(self, now: float) -> float | None:
        """How long ago any server's probe result arrived; None if none ever did."""
        ages = [age for name in self.order if (age := self.probe_age_s(name, now)) is not None]
        return min(ages) if ages else None

    def adopt(self, server: str, now: float) -> list[Decision]:
        """The switch says `server` holds the VIP (a restarted controller reads it from the
        flow table): take that as the truth, without moving anything. The hold-down starts
        now, so a restart can never pull the VIP straight back to the preferred server."""
        if server not in self.servers:
            raise ValueError(f"unknown server {server!r}")
        self.active = server
        self.last_move = now
        self.vip_placed = True
        return [Decision(VIP_ADOPTED, server, "the switch's flow table says it holds the VIP")]

    def port(self, server: str, up: bool, now: float) -> list[Decision]:
        """The switch port of `server` went down or came back up."""
        if not self.vip_placed:
            return []
        state = self.servers[server]
        decisions: list[Decision] = []
        state.port_up = up
        if not up:
            state.successes = 0
            if state.up:
                state.up = False
                state.failures = max(state.failures, self.rules.timeout_fall)
                state.definite_failures = max(state.definite_failures, self.rules.fall)
                decisions.append(Decision(SERVER_DOWN, server, "switch port went down"))
        return decisions + self._place_vip(now)

    def command(self, name: str, now: float) -> list[Decision]:
        """A person asked for a `failover` or a `failback` (see the module docstring)."""
        if not self.vip_placed:
            return []
        if name not in COMMANDS:
            return [Decision(COMMAND_REFUSED, None, f"unknown command {name!r}; use {' or '.join(COMMANDS)}")]
        up = [s for s in self.order if self.servers[s].up and s != self.active]
        if name == "failover":
            if not up:
                return [Decision(COMMAND_REFUSED, self.active, "no other server is up")]
            return [self._move(up[0], now, f"failover requested, to {up[0]}")]
        preferred = [s for s in up if self.order.index(s) < self.order.index(self.active)]
        if not preferred:
            return [Decision(COMMAND_REFUSED, self.active, "no preferred server is up")]
        if not self._caught_up(preferred[0]):
            return [Decision(COMMAND_REFUSED, preferred[0], f"{preferred[0]}'s database is behind")]
        return [self._move(preferred[0], now, f"failback requested, to {preferred[0]}")]

    # -- the decision -------------------------------------------------------------------

    def _caught_up(self, server: str) -> bool:
        """Has `server` applied what the active server had committed REPLICATION_ALLOWANCE_S
        before `server`'s last probe? Not the active's last probe: under a steady stream of
        writes that one may be newer than the candidate's by a probe's length, and a server
        a few milliseconds behind would never count as caught up."""
        return caught_up(self.servers[server].gtid, self._reference_gtid(server))

    def _reference_gtid(self, server: str) -> str | None:
        """What the active server had committed REPLICATION_ALLOWANCE_S before `server`'s last
        passed probe; None when either was never seen."""
        candidate = self.servers[server].gtid_seen
        if not candidate:
            return None
        seen_at = candidate[-1][0]
        earlier = [gtid for at, gtid in self.servers[self.active].gtid_seen
                   if at <= seen_at - REPLICATION_ALLOWANCE_S]
        return earlier[-1] if earlier else None

    def _place_vip(self, now: float) -> list[Decision]:
        up = [name for name in self.order if self.servers[name].up]
        if self.servers[self.active].up:
            if self.failback != "auto" or not up or up[0] == self.active:
                return []
            if self.last_move is not None and now - self.last_move < self.hold_down_s:
                return []
            if not self._caught_up(up[0]):
                return []
            return [self._move(up[0], now, f"failback to preferred server {up[0]}")]
        if not up:
            if self.reported_no_server:
                return []
            self.reported_no_server = True
            return [Decision(NO_HEALTHY_SERVER, self.active, "no server is up; the VIP stays")]
        return self._fail_over(up, now, f"{self.active} is down")

    def _fail_over(self, up: list[str], now: float, reason: str) -> list[Decision]:
        """Move the VIP from the active server to one of `up`: the first whose database has
        what the active one had and replicates without an error, else the first of them,
        saying so (`promoted_lagging`): a service that is up on a lagging database beats none."""
        lag = {name: self._lag(name) for name in up}
        fit = [name for name in up if lag[name] is None]
        target, failed = (fit[0] if fit else up[0]), self.active
        decisions = [self._move(target, now, reason)]
        return decisions + ([Decision(PROMOTED_LAGGING, target, lag[target], failed)] if lag[target] else [])

    def _lag(self, server: str) -> str | None:
        """Why `server`'s database is not fit to take over from the active one (its replication
        stopped, or it lacks what the active one had), or None."""
        state = self.servers[server]
        if state.replication in (BROKEN, STOPPED):
            error = f": {state.replication_error}" if state.replication_error else ""
            return f"{server}'s replication is {state.replication}{error}"
        # Unknown positions (no passed probe yet) are no evidence either way.
        behind = missing(state.gtid, self._reference_gtid(server))
        if not behind:
            return None
        return (f"{server} had not applied {behind} transaction(s) that {self.active} had committed "
                f"{REPLICATION_ALLOWANCE_S * 1000:g} ms before {server}'s last probe")

    def _move(self, target: str, now: float, reason: str) -> Decision:
        previous, self.active = self.active, target
        self.last_move = now
        self.reported_no_server = False
        return Decision(VIP_MOVED, target, reason, previous)


def machine_for(config: TestbedConfig) -> FailoverMachine:
    """The machine of a testbed's config: its servers in priority order, its probe rules and
    failback policy, and the silence budget those rules imply."""
    probe, failover = config.probe, config.failover
    return FailoverMachine(
        [plan.name for plan in config.server_plans],
        fall=probe.fall,
        timeout_fall=probe.timeout_fall,
        rise=probe.rise,
        failback=failover.failback,
        hold_down_s=failover.hold_down_s,
        silence_budget_s=silence_budget_s(probe.interval_s, probe.timeout_s, probe.timeout_fall),
        hang_fall=probe.hang_fall,
        interval_ms=probe.interval_s * 1000,
    )
