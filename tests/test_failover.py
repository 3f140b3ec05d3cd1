"""The failover state machine, tested with tables: input history -> expected decisions.

Each case is a list of steps at increasing times. A step is
    ("probe", server, ok)  or  ("probe", server, ok, gtid)  or  ("port", server, up)
(ok is True, False for a definite failure such as a refused connection, or "timeout")
(a passed probe without a GTID position reports "1-1-10": every database caught up), or one
of the switch's, for the start-up placement of the VIP:
    ("connect",)  the switch (re)connects      ("flows", holder)  it answers: its VIP flow
                                               names `holder` (None: it has no VIP flow)
    ("command", name)  a person's command
and the case lists the decisions expected over the whole history, as
    (time, kind, server)
Unless a case says `placed=False`, the switch has answered "no VIP flow" before its first
step (that decision is not listed).
"""

import pytest

from controller.failover import (
    COMMAND_REFUSED,
    NO_HEALTHY_SERVER,
    SERVER_DOWN,
    SERVER_UP,
    VIP_ADOPTED,
    VIP_INSTALLED,
    VIP_MOVED,
    Decision,
    FailoverMachine,
)

P, S, T = "primary", "secondary", "third"


def placed_machine(servers=(P, S), **params):
    """A machine whose switch answered that it had no VIP flow: the VIP is on the first server."""
    machine = FailoverMachine(servers, **params)
    assert [d.kind for d in machine.vip_flows([], now=0.0)] == [VIP_INSTALLED]
    return machine


def step(machine, now, what, *args):
    if what == "probe":
        server, value, *gtid = args
        return machine.probe(server, value is True, now, gtid=(gtid or ["1-1-10"])[0],
                             timed_out=value == "timeout")
    if what == "port":
        return machine.port(*args, now)
    if what == "connect":
        return machine.switch_connected(now)
    if what == "flows":
        return machine.vip_flows(list(args), now)
    return machine.command(*args, now)


def run(steps, servers=(P, S), fall=3, rise=2, failback="never", hold_down_s=0.0, timeout_fall=6,
        placed=True):
    params = dict(fall=fall, rise=rise, failback=failback, hold_down_s=hold_down_s, timeout_fall=timeout_fall)
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
