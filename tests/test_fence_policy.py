"""The fencing policy, tested with tables: input history -> expected actions and events.

Each case is a list of (time, step). A step is
    ("moved", server, previous)     the VIP moved from `previous` to `server`
    ("adopted", server)             the VIP landed on `server` (a restarted controller adopted
                                    it; under keepalived, its instance became MASTER)
    ("released", server)            `server` gave the VIP up (keepalived left MASTER)
    ("probe", server, read_only, holder)   a probe saw `server`'s database read-only or not,
                                    while `holder` held the VIP
    ("tick",)                       time passed
    ("ok", server, read_only)  or  ("fail", server, read_only)
                                    the latest attempt to set `server` so ended (an older one:
                                    a fourth element, -2 for the one before the latest)
and the case lists what the policy answered over the whole history, in order, as
    (time, "read_only" or "writable", server, timeout_s, delay_s)   an attempt to start
    (time, event kind, server)                                      an event to log
"""

import pytest

from controller.failover import SERVER_DOWN, VIP_ADOPTED, VIP_INSTALLED, VIP_MOVED, Decision
from controller.fence_policy import (
    CORRECT_TIMEOUT_S,
    FENCE_FOR_S,
    FENCE_TIMEOUT_S,
    POWER_TIMEOUT_S,
    PROMOTE_TIMEOUT_S,
    PROMOTE_WAIT_S,
    RETRY_AFTER_S,
    FencePolicy,
)

P, S = "primary", "secondary"


def run(steps, power=False):
    policy, started, seen = FencePolicy(power=power), [], []
    for now, (what, *args) in steps:
        if what == "moved":
            plan = policy.vip_moved(args[0], args[1], now)
        elif what == "adopted":
            plan = policy.vip_adopted(args[0], now)
        elif what == "released":
            plan = policy.vip_released(args[0], now)
        elif what == "probe":
            plan = policy.probe(*args, now)
        elif what == "tick":
            plan = policy.tick(now)
        elif what in ("powered", "unpowered"):
            action = [a for a in started if a.power and a.server == args[0]][-1]
            plan = policy.result(action, what == "powered", "no power switch", now)
        else:
            server, read_only, *which = args
            matching = [a for a in started if (a.server, a.read_only, a.power) == (server, read_only, False)]
            action = matching[which[0] if which else -1]
            plan = policy.result(action, what == "ok", "no answer", now)
        started += plan.actions
        seen += [(now, kind, fields["server"]) for kind, fields in plan.events]
        seen += [(now, "power_off", a.server, a.timeout_s) if a.power else
                 (now, "read_only" if a.read_only else "writable", a.server, a.timeout_s, round(a.delay_s, 6))
                 for a in plan.actions]
    return seen


def power_off(now, server=P):
    return (now, "power_off", server, POWER_TIMEOUT_S)


def fence(now, server=P, delay=0.0):
    return (now, "read_only", server, FENCE_TIMEOUT_S, delay)


def promote(now, server=S):
    return (now, "writable", server, PROMOTE_TIMEOUT_S, 0.0)


def correct(now, server, read_only):
    return (now, "read_only" if read_only else "writable", server, CORRECT_TIMEOUT_S, 0.0)


WAITED = PROMOTE_WAIT_S  # when a promotion goes ahead without its fence's answer
TIMEOUTS = [(float(t), ("fail", P, True)) for t in range(1, 61)]  # every attempt waits its 1 s

CASES = {
    "a move fences the old server first and promotes the new one once the fence answered": (
        [(0.0, ("moved", S, P)), (0.005, ("ok", P, True)), (0.01, ("ok", S, False))],
        [fence(0.0), (0.005, "db_read_only", P), promote(0.005), (0.01, "db_writable", S)],
    ),
    "a dead database fails its fence at once: the promotion goes ahead, the fence again a second on": (
        [(0.0, ("moved", S, P)), (0.002, ("fail", P, True)), (1.0, ("fail", P, True))],
        [fence(0.0), (0.002, "fence_failed", P), fence(0.002, delay=0.998), promote(0.002),
         fence(1.0, delay=1.0)],
    ),
    "a frozen server: the promotion waits 0.2 s, the fence is retried back to back until it wakes": (
        [(0.0, ("moved", S, P)), (0.1, ("tick",)), (WAITED, ("tick",)), (0.3, ("tick",)),
         (1.0, ("fail", P, True)), (2.0, ("fail", P, True)), (2.5, ("ok", P, True))],
        [fence(0.0), (WAITED, "promoted_unfenced", S), promote(WAITED),
         (1.0, "fence_failed", P), fence(1.0), fence(2.0), (2.5, "db_read_only", P)],
    ),
    "a fence that never succeeds gives up after 60 s, and says so": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), *TIMEOUTS],
        [fence(0.0), (WAITED, "promoted_unfenced", S), promote(WAITED), (1.0, "fence_failed", P),
         *[fence(float(t)) for t in range(1, 60)], (60.0, "fence_gave_up", P)],
    ),
    "flap and failback: a fence still retrying stops once its server is wanted writable again": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), (1.0, ("fail", P, True)), (1.5, ("moved", P, S)),
         (1.505, ("ok", S, True)), (2.0, ("fail", P, True))],
        [fence(0.0), (WAITED, "promoted_unfenced", S), promote(WAITED), (1.0, "fence_failed", P),
         fence(1.0), fence(1.5, S), (1.505, "db_read_only", S), promote(1.505, P),
         (2.0, "fence_superseded", P)],
    ),
    "a fence that lands after its server was promoted again is undone at once": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), (0.5, ("moved", P, S)), (0.51, ("ok", S, True)),
         (0.6, ("ok", P, True, 0))],
        [fence(0.0), (WAITED, "promoted_unfenced", S), promote(WAITED), fence(0.5, S),
         (0.51, "db_read_only", S), promote(0.51, P),
         (0.6, "db_read_only", P), (0.6, "fence_stale_corrected", P), promote(0.6, P)],
    ),
    "a promotion that lands after a newer fence of its server is undone at once": (
        [(0.0, ("moved", S, P)), (0.005, ("ok", P, True)), (0.1, ("moved", P, S)), (0.105, ("ok", S, True)),
         (0.2, ("ok", S, False))],
        [fence(0.0), (0.005, "db_read_only", P), promote(0.005), fence(0.1, S), (0.105, "db_read_only", S),
         promote(0.105, P), (0.2, "db_writable", S), (0.2, "fence_stale_corrected", S), fence(0.2, S)],
    ),
    "a restarted controller adopts the VIP: it is made writable at once, a writable standby fixed": (
        [(0.0, ("adopted", S)), (0.05, ("probe", P, False, S)), (0.1, ("ok", P, True))],
        [promote(0.0), correct(0.05, P, True), (0.1, "db_read_only", P)],
    ),
    "keepalived: a MASTER while another server is wanted writable is a move from it": (
        [(0.0, ("adopted", P)), (1.0, ("adopted", S)), (1.003, ("ok", P, True))],
        [promote(0.0, P), fence(1.0), (1.003, "db_read_only", P), promote(1.003)],
    ),
    "keepalived: a server that gives the VIP up while its fence runs is not fenced twice": (
        [(0.0, ("adopted", P)), (1.0, ("adopted", S)), (1.001, ("released", P)), (2.0, ("released", S))],
        [promote(0.0, P), fence(1.0), fence(2.0, S)],
    ),
    "a promotion that fails is said, not retried: the probes correct it": (
        [(0.0, ("adopted", S)), (2.0, ("fail", S, False)), (2.05, ("probe", S, True, S)),
         (2.1, ("ok", S, False))],
        [promote(0.0), (2.0, "fence_failed", S), correct(2.05, S, False), (2.1, "db_writable", S)],
    ),
    "a probe shows the active read-only: it is made writable": (
        [(0.0, ("probe", P, True, P))], [correct(0.0, P, False)],
    ),
    "a database in the wanted mode is left alone": (
        [(0.0, ("probe", P, False, P)), (0.1, ("probe", S, True, P))], [],
    ),
    "a probe that does not say the mode, or comes before the VIP is placed, does nothing": (
        [(0.0, ("probe", P, None, P)), (0.1, ("probe", S, False, None))], [],
    ),
    "a correction is made at most once a second per server and wanted mode": (
        [(0.0, ("probe", S, False, P)), (0.5, ("probe", S, False, P)), (0.7, ("probe", P, True, P)),
         (0.99, ("probe", S, False, P)), (1.0, ("probe", S, False, P))],
        [correct(0.0, S, True), correct(0.7, P, False), correct(1.0, S, True)],
    ),
    "no probe doubles a fence that retries or a promotion that waits for one": (
        [(0.0, ("moved", S, P)), (1.1, ("probe", S, True, S)), (1.2, ("probe", P, False, S))],
        [fence(0.0)],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_fence_history(name):
    steps, expected = CASES[name]
    assert run(steps) == expected


# With a power switch (failover.power_fence): an old server that does not answer its fence is
# powered off before the new one is promoted, so it cannot wake up writable beside it.
POWER_CASES = {
    "a frozen server is powered off after 0.2 s, and the promotion waits for that": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), (0.21, ("powered", P)), (1.0, ("fail", P, True))],
        [fence(0.0), power_off(WAITED), (0.21, "power_fenced", P), promote(0.21),
         (1.0, "fence_failed", P), fence(1.0)],
    ),
    "a dead database fails its fence at once: no power-off is needed": (
        [(0.0, ("moved", S, P)), (0.002, ("fail", P, True)), (WAITED, ("tick",))],
        [fence(0.0), (0.002, "fence_failed", P), fence(0.002, delay=0.998), promote(0.002)],
    ),
    "a fence that answers while the power-off runs promotes at once; the power result then does nothing": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), (0.22, ("ok", P, True)), (0.23, ("powered", P))],
        [fence(0.0), power_off(WAITED), (0.22, "db_read_only", P), promote(0.22), (0.23, "power_fenced", P)],
    ),
    "a fence that fails while the power-off runs does not promote: only a power-off or a fence that landed": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), (0.25, ("fail", P, True)), (0.26, ("powered", P))],
        [fence(0.0), power_off(WAITED), (0.25, "fence_failed", P), fence(0.25, delay=0.75),
         (0.26, "power_fenced", P), promote(0.26)],
    ),
    "a power switch that fails: promoted unfenced, and said so": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), (0.21, ("unpowered", P))],
        [fence(0.0), power_off(WAITED), (0.21, "power_fence_failed", P), (0.21, "promoted_unfenced", S),
         promote(0.21)],
    ),
    "a power switch that does not answer: promoted unfenced after its time-out": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), (0.5, ("tick",)),
         (WAITED + POWER_TIMEOUT_S, ("tick",))],
        [fence(0.0), power_off(WAITED), (WAITED + POWER_TIMEOUT_S, "promoted_unfenced", S),
         promote(WAITED + POWER_TIMEOUT_S)],
    ),
    "a newer move while the power-off runs: the old promotion never happens": (
        [(0.0, ("moved", S, P)), (WAITED, ("tick",)), (0.21, ("moved", P, S)), (0.215, ("ok", S, True)),
         (0.22, ("powered", P))],
        [fence(0.0), power_off(WAITED), fence(0.21, S), (0.215, "db_read_only", S), promote(0.215, P),
         (0.22, "power_fenced", P)],
    ),
}


@pytest.mark.parametrize("name", POWER_CASES)
def test_fence_history_with_a_power_switch(name):
    steps, expected = POWER_CASES[name]
    assert run(steps, power=True) == expected


def test_the_reason_a_promotion_went_ahead_unfenced_is_in_its_event():
    policy = FencePolicy(power=True)
    policy.vip_moved(S, P, 0.0)
    (power,) = policy.tick(WAITED).actions
    plan = policy.result(power, False, "connection refused", 0.21)
    assert plan.events[1] == ("promoted_unfenced", {"server": S, "unfenced": P, "waited_ms": 210.0,
                                                    "reason": "power fence failed: connection refused"})


def test_a_failed_attempt_is_logged_with_its_mode_generation_and_error():
    policy = FencePolicy()
    (promotion,) = policy.vip_adopted(S, 0.0).actions
    plan = policy.result(promotion, False, "Can't connect to local server", 2.0)
    assert plan.events == [("fence_failed", {"server": S, "read_only": False, "generation": 1,
                                             "detail": "Can't connect to local server"})]
    assert plan.actions == []


def test_a_fence_retries_until_the_deadline_set_when_the_vip_left():
    policy = FencePolicy()
    (fence,) = policy.vip_moved(S, P, 100.0).actions
    assert fence.retry_until == 100.0 + FENCE_FOR_S
    again, promotion = policy.result(fence, False, "", 101.0).actions
    assert (again.retry_until, again.attempt, again.delay_s) == (fence.retry_until, 2, 0.0)
    assert (promotion.server, promotion.read_only, promotion.generation) == (S, False, fence.generation)


def test_every_placement_is_a_new_generation_and_its_attempts_carry_it():
    policy = FencePolicy()
    first = policy.vip_adopted(P, 0.0).actions
    second = policy.vip_moved(S, P, 1.0).actions
    third = policy.vip_released(S, 2.0).actions
    assert [a.generation for a in first + second + third] == [1, 2, 3]
    assert RETRY_AFTER_S == 1.0  # the tables above count on it


@pytest.mark.parametrize(
    "decision, expected",
    [
        # The promotion waits for the old server's fence.
        (Decision(VIP_MOVED, S, "primary is down", P), [(P, True)]),
        (Decision(VIP_MOVED, S, "no one held it", None), [(S, False)]),
        (Decision(VIP_ADOPTED, S, "on the switch"), [(S, False)]),
        # The first placement: every database starts read-only and the probes correct the active.
        (Decision(VIP_INSTALLED, P, "the switch has no VIP flow"), []),
        (Decision(SERVER_DOWN, P, "port down"), []),
    ],
)
def test_the_machines_decisions_that_fence(decision, expected):
    plan = FencePolicy().decided(decision, 0.0)
    assert [(a.server, a.read_only) for a in plan.actions] == expected
