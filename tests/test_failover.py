"""The failover state machine, tested with tables: input history -> expected decisions.

Each case is a list of steps at increasing times. A step is
    ("probe", server, ok)  or  ("probe", server, ok, gtid[, replication])  or  ("port", server, up)
    ("confirm", server, ok)  a probe out of schedule, confirming a suspicion
(ok is True, False for a definite failure such as a refused connection, or "timeout")
(a passed probe without a GTID position reports "1-1-10": every database caught up), or one
of the switch's, for the start-up placement of the VIP:
    ("connect",)  the switch (re)connects      ("flows", holder)  it answers: its VIP flow
                                               names `holder` (None: it has no VIP flow)
    ("command", name)  a person's command      ("tick",)  time passes: probe silence is judged
and the case lists the decisions expected over the whole history, as
    (time, kind, server)
Unless a case says `placed=False`, the switch has answered "no VIP flow" before its first
step (that decision is not listed).
"""

import pytest

from controller.failover import (
    ANSWER_HISTORY,
    COMMAND_REFUSED,
    NO_HEALTHY_SERVER,
    PROBER_BACK,
    PROBER_SILENT,
    PROMOTED_LAGGING,
    SERVER_DOWN,
    SERVER_UP,
    VIP_ADOPTED,
    VIP_INSTALLED,
    VIP_MOVED,
    Decision,
    FailoverMachine,
    silence_budget_s,
)

P, S, T = "primary", "secondary", "third"


def placed_machine(servers=(P, S), **params):
    """A machine whose switch answered that it had no VIP flow: the VIP is on the first server."""
    machine = FailoverMachine(servers, **params)
    assert [d.kind for d in machine.vip_flows([], now=0.0)] == [VIP_INSTALLED]
    return machine


def step(machine, now, what, *args):
    if what == "probe":
        server, value, *more = args
        gtid = more[0] if more else "1-1-10"
        replication = more[1] if len(more) > 1 else None
        return machine.probe(server, value is True, now, gtid=gtid, timed_out=value == "timeout",
                             replication=replication, replication_error="error 1062: Duplicate entry"
                             if replication == "broken" else "")
    if what == "answered":  # a passed probe that took `latency_ms` to answer
        server, latency_ms = args
        return machine.probe(server, True, now, gtid="1-1-10", latency_ms=latency_ms)
    if what == "late":  # the passed answer, `latency_ms` after it was sent, of a timed-out probe
        server, latency_ms = args
        return machine.probe(server, True, now, "late", latency_ms=latency_ms, late=True)
    if what == "confirm":  # a probe out of schedule, asked for by a suspicion
        server, value = args
        return machine.probe(server, value is True, now, gtid="1-1-10", timed_out=value == "timeout",
                             confirming="a reset from its web port")
    if what == "port":
        return machine.port(*args, now)
    if what == "connect":
        return machine.switch_connected(now)
    if what == "flows":
        return machine.vip_flows(list(args), now)
    if what == "tick":
        return machine.tick(now)
    return machine.command(*args, now)


def run(steps, servers=(P, S), fall=3, rise=2, failback="never", hold_down_s=0.0, timeout_fall=6,
        placed=True, silence_budget_s=None, hang_fall=0, interval_ms=50.0):
    params = dict(fall=fall, rise=rise, failback=failback, hold_down_s=hold_down_s, timeout_fall=timeout_fall,
                  silence_budget_s=silence_budget_s, hang_fall=hang_fall, interval_ms=interval_ms)
    machine = placed_machine(servers, **params) if placed else FailoverMachine(servers, **params)
    seen = []
    for now, (what, *args) in steps:
        seen += [(now, d.kind, d.server) for d in step(machine, now, what, *args)]
    return machine, seen


def timed(*steps, dt=0.05):
    return [(round(i * dt, 3), step) for i, step in enumerate(steps)]


def fails(server, n):
    return [("probe", server, False)] * n


def passes(server, n):
    return [("probe", server, True)] * n


HUNG_AT = round((ANSWER_HISTORY + 3) * 0.05, 3)  # the fourth time-out after a second of fast answers

CASES = {
    "healthy servers: nothing happens": (
        dict(), timed(*passes(P, 5), *passes(S, 5)), [], P,
    ),
    "fall-1 failures are not enough": (
        dict(fall=3), timed(*fails(P, 2), *passes(P, 1), *fails(P, 2)), [], P,
    ),
    "fall failures in a row fail over": (
        dict(fall=3), timed(*fails(P, 3)),
        [(0.1, SERVER_DOWN, P), (0.1, VIP_MOVED, S)], S,
    ),
    "a slow primary: fewer than timeout_fall time-outs in a row are tolerated": (
        dict(fall=3, timeout_fall=6), timed(*[("probe", P, "timeout")] * 5, *passes(P, 1),
                                            *[("probe", P, "timeout")] * 5), [], P,
    ),
    "a hung primary: timeout_fall time-outs in a row fail over": (
        dict(fall=3, timeout_fall=6), timed(*[("probe", P, "timeout")] * 6),
        [(0.25, SERVER_DOWN, P), (0.25, VIP_MOVED, S)], S,
    ),
    "time-outs do not break a run of definite failures, nor count in it": (
        dict(fall=3, timeout_fall=6),
        timed(*fails(P, 2), ("probe", P, "timeout"), *fails(P, 1)),
        [(0.15, SERVER_DOWN, P), (0.15, VIP_MOVED, S)], S,
    ),
    "port down fails over at once, without probes": (
        dict(fall=3), timed(("port", P, False)),
        [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S)], S,
    ),
    "port down of the standby marks it down but moves nothing": (
        dict(), timed(("port", S, False)), [(0.0, SERVER_DOWN, S)], P,
    ),
    "probes passing while the port is down do not bring a server up": (
        dict(rise=2), timed(("port", P, False), *passes(P, 3)),
        [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S)], S,
    ),
    "failback never: a recovered primary stays standby": (
        dict(fall=2, rise=2, failback="never"), timed(*fails(P, 2), *passes(P, 5)),
        [(0.05, SERVER_DOWN, P), (0.05, VIP_MOVED, S), (0.15, SERVER_UP, P)], S,
    ),
    "failback auto: back after rise probes once the hold-down passed": (
        dict(fall=2, rise=2, failback="auto", hold_down_s=0.0),
        timed(*fails(P, 2), *passes(S, 1), *passes(P, 2)),
        [(0.05, SERVER_DOWN, P), (0.05, VIP_MOVED, S), (0.2, SERVER_UP, P), (0.2, VIP_MOVED, P)], P,
    ),
    "failback auto waits for the hold-down": (
        dict(fall=1, rise=1, failback="auto", hold_down_s=0.2),
        timed(*fails(P, 1), *passes(S, 1), *passes(P, 6)),
        [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S), (0.1, SERVER_UP, P), (0.2, VIP_MOVED, P)], P,
    ),
    "a flapping primary with failback auto moves the VIP at most once per hold-down": (
        dict(fall=1, rise=1, failback="auto", hold_down_s=1.0),
        timed(*[step for _ in range(6) for step in (("probe", P, False), ("probe", P, True))]),
        [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S)]
        + [(round(t, 3), kind, P) for i in range(1, 6)
           for t, kind in ((0.1 * i - 0.05, SERVER_UP), (0.1 * i, SERVER_DOWN))]
        + [(0.55, SERVER_UP, P)],
        S,
    ),
    "failback auto never goes to a lagging database; it waits until it caught up": (
        dict(fall=1, rise=1, failback="auto"),
        timed(("probe", P, False), ("probe", S, True, "1-1-10,2-2-40"), ("probe", P, True, "1-1-10,2-2-30"),
              ("probe", P, True, "1-1-10,2-2-39"), ("probe", P, True, "1-1-10,2-2-40")),
        [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S), (0.1, SERVER_UP, P), (0.2, VIP_MOVED, P)], P,
    ),
    "failback auto under steady writes: a server that trails the active's newest probe by "
    "a few ms counts as caught up against the active's position 100 ms before": (
        dict(fall=1, rise=1, failback="auto"),
        timed(("probe", P, False), ("probe", S, True, "1-1-10,2-2-40"), ("probe", P, True, "1-1-10,2-2-38"),
              ("probe", S, True, "1-1-10,2-2-44"), ("probe", P, True, "1-1-10,2-2-42")),
        [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S), (0.1, SERVER_UP, P), (0.2, VIP_MOVED, P)], P,
    ),
    "a failover to a database that lacks what the failed one had says so, and how far behind": (
        dict(), timed(*[("probe", P, True, "1-1-20")] * 3, ("probe", S, True, "1-1-12"), ("port", P, False)),
        [(0.2, SERVER_DOWN, P), (0.2, VIP_MOVED, S), (0.2, PROMOTED_LAGGING, S)], S,
    ),
    "a failover prefers a database that has what the failed one had": (
        dict(servers=(P, S, T)),
        timed(*[("probe", P, True, "1-1-20")] * 3, ("probe", S, True, "1-1-12"), ("probe", T, True, "1-1-20"),
              ("port", P, False)),
        [(0.25, SERVER_DOWN, P), (0.25, VIP_MOVED, T)], T,
    ),
    "a failover to a database whose replication broke says so, even when nothing seems behind": (
        dict(), timed(("probe", S, True, "1-1-10", "broken"), ("port", P, False)),
        [(0.05, SERVER_DOWN, P), (0.05, VIP_MOVED, S), (0.05, PROMOTED_LAGGING, S)], S,
    ),
    "a replica still connecting to the failed server is fit: that is no error of its data": (
        dict(), timed(("probe", S, True, "1-1-10", "connecting"), ("port", P, False)),
        [(0.05, SERVER_DOWN, P), (0.05, VIP_MOVED, S)], S,
    ),
    "a fast server that stops answering is hung after hang_fall time-outs, not timeout_fall": (
        dict(timeout_fall=20, hang_fall=4),
        timed(*[("answered", P, 3.0)] * ANSWER_HISTORY, *[("probe", P, "timeout")] * 4),
        [(HUNG_AT, SERVER_DOWN, P), (HUNG_AT, VIP_MOVED, S)], S,
    ),
    "the silence must outlast HANG_FACTOR times the slowest answer: 4 x 55 ms, more than 4 time-outs": (
        dict(timeout_fall=20, hang_fall=4),
        timed(*[("answered", P, 3.0)] * (ANSWER_HISTORY - 1), ("answered", P, 55.0),
              *[("probe", P, "timeout")] * 4),
        [], P,
    ),
    "... and after one more time-out (250 ms of silence) it is a hang": (
        dict(timeout_fall=20, hang_fall=4),
        timed(*[("answered", P, 3.0)] * (ANSWER_HISTORY - 1), ("answered", P, 55.0),
              *[("probe", P, "timeout")] * 5),
        [(round(HUNG_AT + 0.05, 3), SERVER_DOWN, P), (round(HUNG_AT + 0.05, 3), VIP_MOVED, S)], S,
    ),
    "a server that was slowing down gets the whole timeout_fall: busy, not hung": (
        dict(timeout_fall=20, hang_fall=4),
        timed(*[("answered", P, 3.0)] * (ANSWER_HISTORY - 1), ("answered", P, 300.0),
              *[("probe", P, "timeout")] * 19),
        [], P,
    ),
    "a server not yet probed for a second is not judged hung": (
        dict(timeout_fall=20, hang_fall=4),
        timed(*[("answered", P, 3.0)] * (ANSWER_HISTORY - 1), *[("probe", P, "timeout")] * 19), [], P,
    ),
    "without hang_fall, time-outs count to timeout_fall only": (
        dict(timeout_fall=20, hang_fall=0),
        timed(*[("answered", P, 3.0)] * ANSWER_HISTORY, *[("probe", P, "timeout")] * 19), [], P,
    ),
    "a busy server's late answers forgive its time-outs: no timeout_fall run, no failover": (
        dict(fall=3, timeout_fall=6),
        timed(*[("probe", P, "timeout")] * 5, ("late", P, 60.0), *[("probe", P, "timeout")] * 5,
              ("late", P, 70.0), *[("probe", P, "timeout")] * 5),
        [], P,
    ),
    "a late answer forgives only time-outs: refusals still count to fall": (
        dict(fall=3, timeout_fall=6),
        timed(*fails(P, 2), ("late", P, 60.0), *fails(P, 1)),
        [(0.15, SERVER_DOWN, P), (0.15, VIP_MOVED, S)], S,
    ),
    "a late answer is no pass: a down server does not rise on late answers": (
        dict(fall=1, rise=2), timed(*fails(P, 1), ("late", P, 60.0), ("late", P, 60.0)),
        [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S)], S,
    ),
    "a late answer counts as the server's slowest: a saturated server is not hung": (
        dict(timeout_fall=20, hang_fall=4),
        timed(*[("answered", P, 3.0)] * ANSWER_HISTORY, ("probe", P, "timeout"), ("late", P, 400.0),
              *[("probe", P, "timeout")] * 19),
        [], P,
    ),
    "a confirming probe that fails for certain marks the server down at once": (
        dict(fall=3), timed(("confirm", P, False)), [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S)], S,
    ),
    "a confirming probe that times out, or passes, confirms nothing": (
        dict(fall=3), timed(("confirm", P, "timeout"), ("confirm", P, True), ("confirm", P, "timeout")),
        [], P,
    ),
    "a confirmed standby is marked down, and the VIP stays": (
        dict(fall=3), timed(("confirm", S, False)), [(0.0, SERVER_DOWN, S)], P,
    ),
    "both down: the VIP stays, said once; it moves to the first server back": (
        dict(fall=1, rise=2),
        timed(*fails(P, 1), *fails(S, 1), *fails(S, 1), *fails(P, 1), *passes(P, 2)),
        [(0.0, SERVER_DOWN, P), (0.0, VIP_MOVED, S), (0.05, SERVER_DOWN, S),
         (0.05, NO_HEALTHY_SERVER, S), (0.25, SERVER_UP, P), (0.25, VIP_MOVED, P)], P,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_failover_history(name):
    params, steps, expected, active_at_end = CASES[name]
    machine, seen = run(steps, **params)
    assert seen == expected
    assert machine.active == active_at_end


# The start-up gate: (steps, decisions expected, who holds the VIP at the end; None: not placed).
START_UP = {
    "a switch with no VIP flow gets one for the preferred server": (
        timed(("flows", None)), [(0.0, VIP_INSTALLED, P)], P,
    ),
    "a VIP flow on the switch is adopted, nothing installed": (
        timed(("flows", S)), [(0.0, VIP_ADOPTED, S)], S,
    ),
    "the first VIP flow that names a server is the one adopted": (
        timed(("flows", None, "ghost", S, P)), [(0.0, VIP_ADOPTED, S)], S,
    ),
    "a cookie that names no configured server is not adopted": (
        timed(("flows", "ghost")), [(0.0, VIP_INSTALLED, P)], P,
    ),
    "probes before the switch answered are not acted on": (
        timed(*fails(P, 3), ("flows", None), *fails(P, 2)), [(0.15, VIP_INSTALLED, P)], P,
    ),
    "a port down before the switch answered is not acted on": (
        timed(("port", P, False), ("flows", None)), [(0.05, VIP_INSTALLED, P)], P,
    ),
    "commands before the switch answered change nothing": (
        timed(("command", "failover"), ("command", "reboot")), [], None,
    ),
    "a second answer from the switch changes nothing": (
        timed(("flows", None), ("flows", S)), [(0.0, VIP_INSTALLED, P)], P,
    ),
    "a switch that reconnects is asked again; until it answers nothing is acted on": (
        timed(("flows", None), ("connect",), *fails(P, 3), ("flows", P), *fails(P, 3)),
        [(0.0, VIP_INSTALLED, P), (0.25, VIP_ADOPTED, P), (0.4, SERVER_DOWN, P), (0.4, VIP_MOVED, S)], S,
    ),
    "a switch that restarted without its VIP flow gets it again for the active server": (
        timed(("flows", None), ("port", P, False), ("connect",), ("flows", None)),
        [(0.0, VIP_INSTALLED, P), (0.05, SERVER_DOWN, P), (0.05, VIP_MOVED, S), (0.15, VIP_INSTALLED, S)], S,
    ),
}


@pytest.mark.parametrize("name", START_UP)
def test_start_up_placement(name):
    steps, expected, holder_at_end = START_UP[name]
    machine, seen = run(steps, placed=False)
    assert seen == expected
    assert machine.holder == holder_at_end


@pytest.mark.parametrize(
    "decision, fields",
    [
        (Decision(VIP_INSTALLED, P, "the switch has no VIP flow"), {"server": P}),
        (Decision(VIP_MOVED, S, "P is down", P), {"server": S, "reason": "P is down", "previous": P}),
        (Decision(VIP_ADOPTED, S, "a flow"), {"server": S, "reason": "a flow", "previous": None}),
    ],
)
def test_event_fields_keep_the_logs_shape(decision, fields):
    assert decision.event_fields() == fields


def test_three_servers_fail_over_in_priority_order():
    machine, seen = run(
        timed(("port", T, False), ("port", P, False), ("port", T, True), *passes(T, 2), ("port", S, False)),
        servers=(P, S, T),
        rise=2,
    )
    moves = [(kind, server) for _, kind, server in seen if kind == VIP_MOVED]
    assert moves == [(VIP_MOVED, S), (VIP_MOVED, T)]
    assert machine.active == T


def test_move_records_the_previous_server_and_a_reason():
    machine = placed_machine([P, S], fall=1, rise=1)
    decisions = machine.probe(P, False, 1.0, detail="HTTP 503")
    assert decisions[0].reason == "1 probes in a row failed (HTTP 503)"
    assert (decisions[1].previous, decisions[1].server) == (P, S)


def test_adopting_the_switch_state_starts_the_hold_down():
    machine = FailoverMachine([P, S], fall=1, rise=1, failback="auto", hold_down_s=2.0)
    (decision,) = machine.adopt(S, now=10.0)
    assert (decision.kind, decision.server, machine.active) == ("vip_adopted", S, S)
    machine.probe(S, True, 10.5, gtid="1-1-10")
    assert machine.probe(P, True, 11.0, gtid="1-1-10") == []  # healthy, but inside the hold-down
    assert [d.kind for d in machine.probe(P, True, 12.5, gtid="1-1-10")] == [VIP_MOVED]


@pytest.mark.parametrize(
    "steps, command, expected_kind, expected_server",
    [
        ([], "failover", VIP_MOVED, S),
        ([("port", S, False)], "failover", COMMAND_REFUSED, P),  # nowhere to go
        ([], "failback", COMMAND_REFUSED, P),  # already on the preferred server
        ([("port", P, False), ("port", P, True), ("probe", S, True), ("probe", P, True), ("probe", P, True)],
         "failback", VIP_MOVED, P),
        ([("port", P, False), ("port", P, True), ("probe", P, True, "1-1-1"), ("probe", S, True, "1-1-10"),
          ("probe", P, True, "1-1-1")], "failback", COMMAND_REFUSED, P),  # lagging
        ([], "reboot", COMMAND_REFUSED, None),
    ],
)
def test_commands(steps, command, expected_kind, expected_server):
    machine, _ = run(timed(*steps), rise=2, failback="never", hold_down_s=100.0)
    (decision,) = machine.command(command, now=50.0)
    assert (decision.kind, decision.server) == (expected_kind, expected_server)


# Probe silence, with a budget of 0.5 s: (steps at explicit times, decisions expected, who
# holds the VIP at the end). A server's results stop; or all of them do (the prober died).
TICK = ("tick",)
SILENCE = {
    "ticks within the budget decide nothing": (
        [(0.0, ("probe", P, True)), (0.0, ("probe", S, True)), (0.5, TICK),
         (0.9, ("probe", P, True)), (0.9, ("probe", S, True)), (1.4, TICK)],
        [], P,
    ),
    "one server's probes stop: it is marked down and the VIP moves": (
        [(0.0, ("probe", P, True)), (0.0, ("probe", S, True)), (0.4, ("probe", S, True)),
         (0.5, TICK), (0.6, TICK), (0.8, ("probe", S, True)), (0.9, TICK)],
        [(0.6, SERVER_DOWN, P), (0.6, VIP_MOVED, S)], S,
    ),
    "the standby's probes stop: it is marked down, the VIP stays": (
        [(0.0, ("probe", P, True)), (0.0, ("probe", S, True)), (0.4, ("probe", P, True)), (0.6, TICK)],
        [(0.6, SERVER_DOWN, S)], P,
    ),
    "the prober dies: said once; no server is marked down for it, the VIP stays": (
        [(0.0, ("probe", P, True)), (0.0, ("probe", S, True)), (0.6, TICK), (0.7, TICK), (5.0, TICK)],
        [(0.6, PROBER_SILENT, None)], P,
    ),
    "the prober dies with its last results a moment apart: still no server down": (
        [(0.0, ("probe", P, True)), (0.03, ("probe", S, True)), (0.52, TICK), (0.56, TICK)],
        [(0.56, PROBER_SILENT, None)], P,
    ),
    "the prober comes back: said at its first result, nothing moves": (
        [(0.0, ("probe", P, True)), (0.0, ("probe", S, True)), (0.6, TICK),
         (1.0, ("probe", S, True)), (1.04, ("probe", S, True)), (1.05, TICK),
         (1.08, ("probe", P, True))],
        [(0.6, PROBER_SILENT, None), (1.0, PROBER_BACK, None)], P,
    ),
    "the prober comes back for one server only: the other's silence counts from the return": (
        [(0.0, ("probe", P, True)), (0.0, ("probe", S, True)), (0.6, TICK),
         (1.0, ("probe", S, True)), (1.3, ("probe", S, True)), (1.31, TICK),
         (1.55, ("probe", S, True)), (1.6, TICK)],
        [(0.6, PROBER_SILENT, None), (1.0, PROBER_BACK, None), (1.6, SERVER_DOWN, P),
         (1.6, VIP_MOVED, S)], S,
    ),
    "silence of a server already down: no second server_down; rise passes bring it back": (
        [*[(t, ("probe", P, False)) for t in (0.0, 0.05, 0.1)], (0.1, ("probe", S, True)),
         (0.15, ("probe", P, True)), (0.5, ("probe", S, True)), (0.7, TICK),
         (0.8, ("probe", P, True)), (0.85, ("probe", P, True))],
        # fall=3: down at 0.1. The pass at 0.15 and the one at 0.8 are not in a row: up at 0.85.
        [(0.1, SERVER_DOWN, P), (0.1, VIP_MOVED, S), (0.85, SERVER_UP, P)], S,
    ),
    "a server never heard from counts from the prober's first result": (
        [(0.0, ("probe", S, True)), (0.4, ("probe", S, True)), (0.45, TICK), (0.55, TICK)],
        [(0.55, SERVER_DOWN, P), (0.55, VIP_MOVED, S)], S,
    ),
    "no probe result ever: the prober has not started, nothing is judged": (
        [(0.0, TICK), (10.0, TICK)], [], P,
    ),
}


@pytest.mark.parametrize("name", SILENCE)
def test_probe_silence(name):
    steps, expected, holder_at_end = SILENCE[name]
    machine, seen = run(steps, silence_budget_s=0.5)
    assert seen == expected
    assert machine.holder == holder_at_end


def test_silence_before_the_vip_is_placed_decides_nothing():
    steps = [(0.0, ("probe", P, True)), (0.0, ("probe", S, True)), (5.0, TICK),
             (5.1, ("flows", None)), (5.1, ("probe", S, True)), (5.2, TICK)]
    machine, seen = run(steps, placed=False, silence_budget_s=0.5)
    # Not before the switch answered; once it has, the primary's old silence counts.
    assert seen == [(5.1, VIP_INSTALLED, P), (5.2, SERVER_DOWN, P), (5.2, VIP_MOVED, S)]


def test_without_a_budget_silence_is_never_judged():
    machine, seen = run([(0.0, ("probe", P, True)), (100.0, TICK)])
    assert seen == [] and machine.servers[P].up


def test_a_tick_never_starts_a_failback():
    # failback auto, hold-down over: only a probe result moves the VIP back, as before.
    steps = [(0.0, ("port", P, False)), (0.1, ("port", P, True)), (0.2, ("probe", S, True)),
             (0.3, ("probe", P, True)), (0.3, ("probe", P, True))]
    machine, seen = run(steps, failback="auto", hold_down_s=1.0, silence_budget_s=5.0)
    assert machine.active == S
    assert machine.tick(2.0) == []
    assert machine.active == S


def test_the_silence_reason_says_how_long():
    machine = placed_machine([P, S], fall=1, rise=1, silence_budget_s=0.5)
    machine.probe(P, True, 10.0)
    machine.probe(S, True, 10.6)
    down, moved = machine.tick(10.75)
    assert (down.kind, down.server, down.reason) == (SERVER_DOWN, P, "no probe result for 0.8 s")
    assert (moved.kind, moved.previous, moved.server) == (VIP_MOVED, P, S)
    silent = machine.tick(11.2)[0]
    assert (silent.kind, silent.server, silent.reason) == (PROBER_SILENT, None,
                                                           "no probe result from any server for 0.6 s")


@pytest.mark.parametrize(
    "heard, now, age, stale",
    [(None, 5.0, None, True),  # never probed: nothing current to show
     (4.8, 5.0, 0.2, False), (4.5, 5.0, 0.5, False), (4.4, 5.0, 0.6, True)],
)
def test_probe_age_and_staleness(heard, now, age, stale):
    machine = placed_machine([P, S], fall=1, rise=1, silence_budget_s=0.5)
    if heard is not None:
        machine.probe(P, True, heard)
    assert machine.probe_age_s(P, now) == (None if age is None else pytest.approx(age))
    assert machine.probe_stale(P, now) is stale


def test_the_last_result_age_is_the_newest_servers():
    machine = placed_machine([P, S], fall=1, rise=1)
    assert machine.last_result_age_s(1.0) is None
    machine.probe(P, False, 1.0)
    machine.probe(S, True, 2.0)
    assert machine.last_result_age_s(3.0) == pytest.approx(1.0)


def test_the_budget_is_the_time_out_rule_plus_a_margin():
    # 20 timed-out probes 40 ms apart, the last one's 35 ms, and 250 ms of margin.
    assert silence_budget_s(0.04, 0.035, 20) == pytest.approx(1.085)
    assert silence_budget_s(1.0, 0.5, 3) == pytest.approx(3.75)


@pytest.mark.parametrize(("probes", "reason"), [
    ([(P, "1-1-20"), (P, "1-1-20"), (P, "1-1-20"), (S, "1-1-12", None)],
     "secondary had not applied 8 transaction(s) that primary had committed 100 ms before "
     "secondary's last probe"),
    ([(S, "1-1-10", "broken")], "secondary's replication is broken: error 1062: Duplicate entry"),
])
def test_promoted_lagging_says_why_and_names_the_failed_server(probes, reason):
    machine = placed_machine(fall=3, rise=2)
    for i, (server, *more) in enumerate(probes):
        step(machine, i * 0.05, "probe", server, True, *more)
    decisions = machine.port(P, False, 1.0)
    assert [(d.kind, d.server, d.reason, d.previous) for d in decisions[1:]] == [
        (VIP_MOVED, S, "primary is down", P), (PROMOTED_LAGGING, S, reason, P)]
