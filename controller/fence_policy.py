"""When to set a database read-only or writable: the fencing policy, pure.

Flows are the first fence (an old primary gets no client traffic). The databases are the
second: every database starts read-only, and only the server that holds the VIP is made
writable. `FencePolicy` decides what to do and when; controller/fencing.py does it. Like
`FailoverMachine`, the policy takes events with the time `now` and answers with a
`FencePlan`: the attempts to start (`FenceAction`) and the events to log. It reads no clock
and touches no database, so tests/test_fence_policy.py tests it with tables.

Every placement of the VIP (moved, adopted, released) is a new **generation**, and every
attempt carries the generation that asked for it, so nothing from an older decision undoes a
newer one: a fence that is still retrying stops once its server is wanted writable again,
and an attempt that lands after a newer decision wanted the opposite is corrected at once.

The rules:
- The VIP moves from `old` to `new`: fence `old` first, and make `new` writable once that
  fence has answered (succeeded or failed), or after PROMOTE_WAIT_S without an answer
  (`promoted_unfenced`: the old server is frozen or cut off; the flows keep the clients
  away from it, and its fence goes on). This order, rather than both at once, is what keeps
  two databases from being writable together when the old one still answers (a link cut, a
  dead web server): its fence takes milliseconds over the local socket, and the new one is
  promoted after it. A dead database fails its fence at once, so it costs nothing there.
- The VIP lands on a server no one else was wanted on (the first placement, a restarted
  controller's adoption): make it writable at once, within PROMOTE_TIMEOUT_S.
- A fence is tried until it succeeds or FENCE_FOR_S have passed since the VIP left, at most
  one attempt per RETRY_AFTER_S, back to back when each waits its whole FENCE_TIMEOUT_S (a
  frozen server is fenced the moment it wakes). Its first failure is logged
  (`fence_failed`), not every retry; its success is (`db_read_only`), and so is giving up
  (`fence_gave_up`) or stopping because a newer decision wants the server writable
  (`fence_superseded`).
- With a power fence (`failover.power_fence`, `FencePolicy(power=True)`), a promotion whose
  old server's fence has not answered within PROMOTE_WAIT_S does not go ahead unfenced: the
  old server is powered off first (STONITH: the testbed's power switch kills its database and
  web server, controller/fencing.py), and the new one is promoted once that is confirmed
  (`power_fenced`). A frozen database then never wakes up writable beside the new one. Only
  if the power switch fails or does not answer within POWER_TIMEOUT_S is it
  `promoted_unfenced`, with the reason.
- A probe shows a database writable that should be read-only, or the reverse (a server
  restarted, a promotion that failed): correct it. At most once per RETRY_AFTER_S per
  (server, wanted state), counting the promotions and fences above, and never while a fence
  of that server is retrying or its promotion waits for a fence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from controller.failover import VIP_ADOPTED, VIP_MOVED, Decision

PROMOTE_TIMEOUT_S = 2.0  # a CPU-limited server can take tens of milliseconds to answer
CORRECT_TIMEOUT_S = 2.0
FENCE_TIMEOUT_S = 1.0  # a fenced server that does not answer within this is tried again
RETRY_AFTER_S = 1.0  # at most one fence attempt (or correction) per server this often
FENCE_FOR_S = 60.0  # how long a server that lost the VIP is fenced before giving up
# How long a promotion waits for the old server's fence to answer. A database that answers
# at all answers its local socket in milliseconds; one that does not is frozen or gone.
PROMOTE_WAIT_S = 0.2
POWER_TIMEOUT_S = 1.0  # the power switch kills two process groups: milliseconds, when it answers

# An event for the event log: its kind and fields, as EventLog.write takes them.
Event = tuple[str, dict[str, object]]


@dataclass(frozen=True)
class FenceAction:
    """Set `server`'s database read-only (or writable) in `delay_s`, within `timeout_s`."""

    server: str
    read_only: bool
    timeout_s: float
    generation: int = 0  # the placement of the VIP that asked for it
    starts_at: float = 0.0  # when the attempt starts (the policy's clock): `now` + `delay_s`
    delay_s: float = 0.0
    attempt: int = 1  # the first failure is logged, not the retries' ones
    retry_until: float | None = None  # a failure is tried again until then; None: never
    power: bool = False  # power `server` off instead (its database and web server killed)


@dataclass
class FencePlan:
    """What the policy decided: the attempts to start and the events to log, in order."""

    actions: list[FenceAction] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def add(self, other: FencePlan) -> FencePlan:
        self.actions += other.actions
        self.events += other.events
        return self


@dataclass(frozen=True)
class Wanted:
    """What a server's database should be, and the generation that said so."""

    read_only: bool
    generation: int


@dataclass(frozen=True)
class PendingPromotion:
    """`server` is made writable once `fencing`'s fence of `generation` answers, or at `deadline`."""

    server: str
    fencing: str
    generation: int
    since: float
    deadline: float
    powering: bool = False  # the old server's power-off is under way


class FencePolicy:
    """Decides which database to make read-only or writable, and when to try again."""

    def __init__(self, power: bool = False) -> None:
        self.power = power  # a power switch can power an unresponsive old server off
        self.generation = 0
        self.wanted: dict[str, Wanted] = {}
        self.holder: str | None = None  # the server wanted writable, if any
        self.pending: PendingPromotion | None = None
        self.fencing: dict[str, int] = {}  # server -> the generation of its fence still retrying
        # When each (server, read_only) was last asked for, for the corrections' limit.
        self.last_attempt: dict[tuple[str, bool], float] = {}

    # -- the placements of the VIP --------------------------------------------------------------

    def decided(self, decision: Decision, now: float) -> FencePlan:
        """The failover machine decided `decision`: the VIP moved or was adopted."""
        if decision.kind == VIP_MOVED and decision.server is not None:
            return self.vip_moved(decision.server, decision.previous, now)
        if decision.kind == VIP_ADOPTED and decision.server is not None:
            return self.vip_adopted(decision.server, now)
        return FencePlan()

    def vip_moved(self, server: str, previous: str | None, now: float) -> FencePlan:
        """The VIP moved from `previous` to `server`: fence the one, then promote the other."""
        old = previous if previous not in (None, server) else self._other_holder(server)
        if old is None:
            return self.vip_adopted(server, now)
        generation = self._next(server, now)
        plan = self._fence(old, generation, now)
        self.pending = PendingPromotion(server, old, generation, now, now + PROMOTE_WAIT_S)
        return plan

    def vip_adopted(self, server: str, now: float) -> FencePlan:
        """`server` holds the VIP (under keepalived: its instance became MASTER). If another
        server was wanted writable, this is a move from it; else `server` is made writable."""
        if self._other_holder(server) is not None:
            return self.vip_moved(server, self.holder, now)
        generation = self._next(server, now)
        self.pending = None
        return FencePlan([self._promote(server, generation, now)])

    def vip_released(self, server: str, now: float) -> FencePlan:
        """`server` gave the VIP up (its keepalived instance left MASTER; HAProxy has no server
        up): fence it, unless it is being fenced already."""
        if server in self.fencing:
            return FencePlan()
        self.generation += 1
        if self.holder == server:
            self.holder = None
        if self.pending is not None and self.pending.server == server:
            self.pending = None
        return self._fence(server, self.generation, now)

    # -- what comes back ----------------------------------------------------------------------

    def result(self, action: FenceAction, ok: bool, detail: str, now: float) -> FencePlan:
        """An attempt ended at `now`: it succeeded (`ok`) or failed with `detail`."""
        if action.power:
            return self._powered(action, ok, detail, now)
        server, wanted = action.server, self.wanted.get(action.server)
        current = wanted == Wanted(action.read_only, action.generation)
        plan = FencePlan()
        if ok:
            plan.events.append(("db_read_only" if action.read_only else "db_writable",
                                {"server": server, "generation": action.generation}))
            if self.fencing.get(server) == action.generation and action.read_only:
                del self.fencing[server]
            if wanted is not None and wanted.read_only != action.read_only:
                # An older decision's attempt landed after a newer one wanted the opposite.
                plan.events.append(("fence_stale_corrected", {"server": server,
                                                              "generation": action.generation,
                                                              "wanted_generation": wanted.generation}))
                plan.add(self._correct_stale(server, wanted, now))
        else:
            if action.attempt == 1:  # once is enough; the success, if it comes, is logged too
                plan.events.append(("fence_failed", {"server": server, "read_only": action.read_only,
                                                     "generation": action.generation, "detail": detail}))
            if action.retry_until is not None:
                plan.add(self._retry(action, current, now))
        if action.read_only and self.pending is not None and (server, action.generation) == (
                self.pending.fencing, self.pending.generation) and (ok or not self.pending.powering):
            # (While the old server is being powered off, only a fence that landed will do.)
            plan.add(self._promote_pending(now, answered=True))
        return plan

    def tick(self, now: float) -> FencePlan:
        """Time passed: a promotion whose fence has not answered within PROMOTE_WAIT_S goes ahead,
        or, with a power switch, first powers the old server off."""
        pending = self.pending
        if pending is None or now < pending.deadline:
            return FencePlan()
        if self.power and not pending.powering:
            self.pending = replace(pending, powering=True, deadline=now + POWER_TIMEOUT_S)
            return FencePlan([FenceAction(pending.fencing, True, POWER_TIMEOUT_S, pending.generation,
                                          starts_at=now, power=True)])
        why = "the power switch did not answer" if pending.powering else ""
        return self._promote_pending(now, answered=False, why=why)

    def _powered(self, action: FenceAction, ok: bool, detail: str, now: float) -> FencePlan:
        """The power switch answered: promote the server that waited for it."""
        pending = self.pending
        plan = FencePlan(events=[("power_fenced" if ok else "power_fence_failed",
                           {"server": action.server, "generation": action.generation,
                            **({} if ok else {"detail": detail})})])
        if pending is None or not pending.powering or (pending.fencing, pending.generation) != (
                action.server, action.generation):
            return plan  # the fence answered first, or a newer decision came
        why = "" if ok else f"power fence failed: {detail}"
        return plan.add(self._promote_pending(now, answered=ok, why=why))

    def probe(self, server: str, read_only: bool | None, holder: str | None, now: float) -> FencePlan:
        """A probe saw `server`'s database `read_only` (None: it did not say) while `holder`
        held the VIP (None: not placed yet, so no one's database is known to be wrong)."""
        if read_only is None or holder is None:
            return FencePlan()
        wanted = server != holder
        if read_only == wanted or not self._may_try(server, wanted, now):
            return FencePlan()
        if server in self.fencing or (self.pending is not None and self.pending.server == server):
            return FencePlan()  # an attempt of its own is on it
        self._note(server, wanted, now)
        generation = self.wanted[server].generation if server in self.wanted else self.generation
        return FencePlan([self._action(server, wanted, CORRECT_TIMEOUT_S, generation, now)])

    # -- helpers ------------------------------------------------------------------------------

    def _other_holder(self, server: str) -> str | None:
        return self.holder if self.holder not in (None, server) else None

    def _next(self, holder: str, now: float) -> int:
        """A new generation, in which `holder` is wanted writable."""
        self.generation += 1
        self.holder = holder
        self.wanted[holder] = Wanted(False, self.generation)
        self.fencing.pop(holder, None)  # a fence of it still retrying stops at its next answer
        return self.generation

    def _fence(self, server: str, generation: int, now: float) -> FencePlan:
        self.wanted[server] = Wanted(True, generation)
        self.fencing[server] = generation
        self._note(server, True, now)
        return FencePlan([self._action(server, True, FENCE_TIMEOUT_S, generation, now,
                                       retry_until=now + FENCE_FOR_S)])

    def _promote(self, server: str, generation: int, now: float) -> FenceAction:
        self._note(server, False, now)
        return self._action(server, False, PROMOTE_TIMEOUT_S, generation, now)

    def _promote_pending(self, now: float, answered: bool, why: str = "") -> FencePlan:
        pending, self.pending = self.pending, None
        assert pending is not None
        plan = FencePlan()
        if self.wanted.get(pending.server) != Wanted(False, pending.generation):
            return plan  # a newer decision came meanwhile
        if not answered:
            plan.events.append(("promoted_unfenced", {"server": pending.server, "unfenced": pending.fencing,
                                                      "waited_ms": round((now - pending.since) * 1000, 1),
                                                      **({"reason": why} if why else {})}))
        plan.actions.append(self._promote(pending.server, pending.generation, now))
        return plan

    def _correct_stale(self, server: str, wanted: Wanted, now: float) -> FencePlan:
        """Set `server` back to what `wanted` says, unless an attempt of its own is on it: a
        fence still retrying, or a promotion waiting for the old server's fence."""
        if wanted.read_only:
            return FencePlan() if server in self.fencing else self._fence(server, wanted.generation, now)
        if self.pending is not None and self.pending.server == server:
            return FencePlan()
        return FencePlan([self._promote(server, wanted.generation, now)])

    def _retry(self, action: FenceAction, current: bool, now: float) -> FencePlan:
        server = action.server
        if not current:
            if self.fencing.get(server) == action.generation:
                del self.fencing[server]
            return FencePlan(events=[("fence_superseded",
                                      {"server": server, "generation": action.generation})])
        delay = max(0.0, action.starts_at + RETRY_AFTER_S - now)
        if now + delay >= action.retry_until:
            del self.fencing[server]
            return FencePlan(events=[("fence_gave_up", {"server": server, "generation": action.generation})])
        self._note(server, True, now + delay)
        return FencePlan([replace(action, delay_s=delay, starts_at=now + delay, attempt=action.attempt + 1)])

    def _action(self, server: str, read_only: bool, timeout_s: float, generation: int, now: float,
                retry_until: float | None = None) -> FenceAction:
        return FenceAction(server, read_only, timeout_s, generation, starts_at=now, retry_until=retry_until)

    def _may_try(self, server: str, read_only: bool, now: float) -> bool:
        last = self.last_attempt.get((server, read_only))
        return last is None or now - last >= RETRY_AFTER_S

    def _note(self, server: str, read_only: bool, now: float) -> None:
        self.last_attempt[(server, read_only)] = now
