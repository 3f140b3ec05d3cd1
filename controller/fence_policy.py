"""When to set a database read-only or writable: the fencing policy, pure.

Flows are the first fence (an old primary gets no client traffic). The databases are the
second: every database starts read-only, and only the server that holds the VIP is made
writable. `FencePolicy` decides what to do and when; controller/fencing.py does it. Like
`FailoverMachine`, the policy takes events with the time `now` and answers with a
`FencePlan`: the attempts to start (`FenceAction`) and the events to log. It reads no clock
and touches no database, so tests/test_fence_policy.py tests it with tables.

The rules:
- The VIP lands on a server (moved or adopted): make its database writable, giving it
  PROMOTE_TIMEOUT_S to answer.
- The VIP leaves a server: set its database read-only, giving it FENCE_TIMEOUT_S, and on a
  failure try again RETRY_AFTER_S later, until it answers or FENCE_FOR_S have passed since
  the VIP left: a frozen server may wake up. Its first failure is logged (`fence_failed`),
  not every retry; its success is (`db_read_only`), and so is giving up (`fence_gave_up`).
- A probe shows a database writable that should be read-only, or the reverse (a server
  restarted, a promotion that failed): correct it. At most once per RETRY_AFTER_S per
  (server, wanted state), counting the promotions and fences above: a correction must not
  pile onto an attempt still under way.

Each action carries what the policy needs to judge its result (its attempt number and its
deadline), and a result comes back with its action: the policy keeps no state for retries,
only when each correction was last asked for. The action is also where a generation number
would go, so that a late result of an older move could be told from one of a newer move.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from controller.failover import VIP_ADOPTED, VIP_MOVED, Decision

PROMOTE_TIMEOUT_S = 2.0  # a CPU-limited server can take tens of milliseconds to answer
CORRECT_TIMEOUT_S = 2.0
FENCE_TIMEOUT_S = 1.0  # a fenced server that does not answer within this is tried again
RETRY_AFTER_S = 1.0  # a failed fence, or a repeated correction, waits this long
FENCE_FOR_S = 60.0  # how long a server that lost the VIP is fenced before giving up

# An event for the event log: its kind and fields, as EventLog.write takes them.
Event = tuple[str, dict[str, object]]


@dataclass(frozen=True)
class FenceAction:
    """Set `server`'s database read-only (or writable) in `delay_s`, within `timeout_s`."""

    server: str
    read_only: bool
    timeout_s: float
    delay_s: float = 0.0
    attempt: int = 1  # the first failure is logged, not the retries' ones
    retry_until: float | None = None  # a failure is tried again until then; None: never


@dataclass
class FencePlan:
    """What the policy decided: the attempts to start and the events to log, in order."""

    actions: list[FenceAction] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class FencePolicy:
    """Decides which database to make read-only or writable, and when to try again."""

    def __init__(self) -> None:
        # When each (server, read_only) was last asked for, for the corrections' limit.
        self.last_attempt: dict[tuple[str, bool], float] = {}

    def decided(self, decision: Decision, now: float) -> FencePlan:
        """The failover machine decided `decision`: the VIP moved or was adopted."""
        if decision.kind == VIP_MOVED and decision.server is not None:
            return self.vip_moved(decision.server, decision.previous, now)
        if decision.kind == VIP_ADOPTED and decision.server is not None:
            return self.vip_adopted(decision.server, now)
        return FencePlan()

    def vip_moved(self, server: str, previous: str | None, now: float) -> FencePlan:
        """The VIP moved from `previous` to `server`: promote the one, fence the other."""
        plan = self.vip_adopted(server, now)
        if previous is not None:
            plan.actions += self.vip_released(previous, now).actions
        return plan

    def vip_released(self, server: str, now: float) -> FencePlan:
        """`server` gave the VIP up (under keepalived, its own instance left MASTER): fence it,
        and keep trying while it does not answer."""
        self._note(server, True, now)
        return FencePlan([FenceAction(server, True, FENCE_TIMEOUT_S, retry_until=now + FENCE_FOR_S)])

    def vip_adopted(self, server: str, now: float) -> FencePlan:
        """`server` holds the VIP: make its database writable."""
        self._note(server, False, now)
        return FencePlan([FenceAction(server, False, PROMOTE_TIMEOUT_S)])

    def probe(self, server: str, read_only: bool | None, holder: str | None, now: float) -> FencePlan:
        """A probe saw `server`'s database `read_only` (None: it did not say) while `holder`
        held the VIP (None: not placed yet, so no one's database is known to be wrong)."""
        if read_only is None or holder is None:
            return FencePlan()
        wanted = server != holder
        if read_only == wanted or not self._may_try(server, wanted, now):
            return FencePlan()
        self._note(server, wanted, now)
        return FencePlan([FenceAction(server, wanted, CORRECT_TIMEOUT_S)])

    def result(self, action: FenceAction, ok: bool, detail: str, now: float) -> FencePlan:
        """An attempt ended at `now`: it succeeded (`ok`) or failed with `detail`."""
        if ok:
            return FencePlan(events=[("db_read_only" if action.read_only else "db_writable",
                                      {"server": action.server})])
        plan = FencePlan()
        if action.attempt == 1:  # once is enough; the success, if it comes, is logged too
            plan.events.append(("fence_failed", {"server": action.server, "read_only": action.read_only,
                                                 "detail": detail}))
        if action.retry_until is None:
            return plan
        if now + RETRY_AFTER_S < action.retry_until:
            plan.actions.append(replace(action, delay_s=RETRY_AFTER_S, attempt=action.attempt + 1))
        else:
            plan.events.append(("fence_gave_up", {"server": action.server}))
        return plan

    def _may_try(self, server: str, read_only: bool, now: float) -> bool:
        last = self.last_attempt.get((server, read_only))
        return last is None or now - last >= RETRY_AFTER_S

    def _note(self, server: str, read_only: bool, now: float) -> None:
        self.last_attempt[(server, read_only)] = now
