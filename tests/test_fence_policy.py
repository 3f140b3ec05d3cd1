"""The fencing policy, tested with tables: input history -> expected actions and events.

Each case is a list of (time, step). A step is
    ("moved", server, previous)     the VIP moved from `previous` to `server`
    ("adopted", server)             a restarted controller adopted `server` from the switch
    ("probe", server, read_only, holder)   a probe saw `server`'s database read-only or not,
                                    while `holder` held the VIP
    ("ok", server, read_only)  or  ("fail", server, read_only)
                                    the latest attempt to set `server` so ended
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
    PROMOTE_TIMEOUT_S,
    RETRY_AFTER_S,
    FencePolicy,
)

P, S = "primary", "secondary"


def run(steps):
    policy, started, seen = FencePolicy(), [], []
    for now, (what, *args) in steps:
        if what == "moved":
            plan = policy.vip_moved(args[0], args[1], now)
        elif what == "adopted":
            plan = policy.vip_adopted(args[0], now)
        elif what == "probe":
            plan = policy.probe(*args, now)
        else:
            server, read_only = args
            action = [a for a in started if (a.server, a.read_only) == (server, read_only)][-1]
            plan = policy.result(action, what == "ok", "no answer", now)
        started += plan.actions
        seen += [(now, kind, fields["server"]) for kind, fields in plan.events]
        seen += [(now, "read_only" if a.read_only else "writable", a.server, a.timeout_s, a.delay_s)
                 for a in plan.actions]
    return seen


PROMOTE_S = (0.0, "writable", S, PROMOTE_TIMEOUT_S, 0.0)
FENCE_P = (0.0, "read_only", P, FENCE_TIMEOUT_S, 0.0)


def retry(now):
    return (now, "read_only", P, FENCE_TIMEOUT_S, RETRY_AFTER_S)


def failing_fence(until):
    """A fence of the primary whose every attempt fails: each takes its 1 s time-out, and the
    next starts 1 s after, so the failures come at 1, 3, 5, ... s."""
    return [(t, ("fail", P, True)) for t in range(1, until + 1, 2)]


CASES = {
    "a move promotes the new active and fences the old one, each logged once done": (
        [(0.0, ("moved", S, P)), (0.01, ("ok", S, False)), (0.02, ("ok", P, True))],
        [PROMOTE_S, FENCE_P, (0.01, "db_writable", S), (0.02, "db_read_only", P)],
    ),
    "a fence that fails is said once, tried again every second, and its success logged": (
        [(0.0, ("moved", S, P)), (1.0, ("fail", P, True)), (3.0, ("fail", P, True)), (4.5, ("ok", P, True))],
        [PROMOTE_S, FENCE_P, (1.0, "fence_failed", P), retry(1.0), retry(3.0), (4.5, "db_read_only", P)],
    ),
    "a fence that never succeeds gives up after 60 s, and says so": (
        [(0.0, ("moved", S, P)), *failing_fence(59)],
        [PROMOTE_S, FENCE_P, (1, "fence_failed", P), *[retry(t) for t in range(1, 58, 2)],
         (59, "fence_gave_up", P)],
    ),
    "a promotion that fails is said, not retried: the probes correct it": (
        [(0.0, ("moved", S, P)), (2.0, ("fail", S, False)), (2.05, ("probe", S, True, S)),
         (2.1, ("ok", S, False))],
        [PROMOTE_S, FENCE_P, (2.0, "fence_failed", S), (2.05, "writable", S, CORRECT_TIMEOUT_S, 0.0),
         (2.1, "db_writable", S)],
    ),
    "after a restart a probe shows the standby writable: it is set read-only": (
        [(0.0, ("adopted", S)), (0.05, ("probe", P, False, S)), (0.1, ("ok", P, True))],
        [PROMOTE_S, (0.05, "read_only", P, CORRECT_TIMEOUT_S, 0.0), (0.1, "db_read_only", P)],
    ),
    "a probe shows the active read-only: it is made writable": (
        [(0.0, ("probe", P, True, P))], [(0.0, "writable", P, CORRECT_TIMEOUT_S, 0.0)],
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
        [(0.0, "read_only", S, CORRECT_TIMEOUT_S, 0.0), (0.7, "writable", P, CORRECT_TIMEOUT_S, 0.0),
         (1.0, "read_only", S, CORRECT_TIMEOUT_S, 0.0)],
    ),
    "a promotion under way is not doubled by a probe that still sees it read-only": (
        [(0.0, ("moved", S, P)), (0.5, ("probe", S, True, S)), (0.6, ("probe", P, False, S)),
         (1.2, ("probe", S, True, S))],
        [PROMOTE_S, FENCE_P, (1.2, "writable", S, CORRECT_TIMEOUT_S, 0.0)],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_fence_history(name):
    steps, expected = CASES[name]
    assert run(steps) == expected


def test_a_failed_attempt_is_logged_with_its_mode_and_error():
    policy = FencePolicy()
    (promote,) = policy.vip_adopted(S, 0.0).actions
    plan = policy.result(promote, False, "Can't connect to local server", 2.0)
    assert plan.events == [("fence_failed", {"server": S, "read_only": False,
                                             "detail": "Can't connect to local server"})]
    assert plan.actions == []


def test_a_fence_retries_until_the_deadline_set_when_the_vip_left():
    policy = FencePolicy()
    (_, fence) = policy.vip_moved(S, P, 100.0).actions
    assert fence.retry_until == 100.0 + FENCE_FOR_S
    (again,) = policy.result(fence, False, "", 101.0).actions
    assert (again.retry_until, again.attempt, again.delay_s) == (fence.retry_until, 2, RETRY_AFTER_S)


@pytest.mark.parametrize(
    "decision, expected",
    [
        (Decision(VIP_MOVED, S, "primary is down", P), [(S, False), (P, True)]),
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

