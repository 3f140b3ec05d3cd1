"""Where a failover's milliseconds go, from recorded histories: events, probes and requests ->
each stage's time after the fault (experiments/analysis/stages.py)."""

from __future__ import annotations

import pytest

from experiments.analysis.metrics import RequestRecord
from experiments.analysis.stages import STAGES, failover_stages_ms

T0 = 1000.0
P, S = "primary", "secondary"


def request(sent_ms: float, latency_ms: float | None, node: str = "", status: int = 200) -> RequestRecord:
    at = T0 + sent_ms / 1000
    return RequestRecord(request_id=int(sent_ms * 10), kind="GET", write_id="", scheduled_at=at,
                         sent_at=at, latency_ms=latency_ms, status=status if node else 0,
                         served_by=node, error="" if node else "timeout", item_id=None)


def event(ms: float, kind: str, **fields) -> dict:
    return {"time": T0 + ms / 1000, "kind": kind, **fields}


# A cut link: the switch reports it, the controller moves the VIP, the switch confirms.
LINK_DOWN = [event(-500, "vip_installed", server=P), event(-500, "flows_installed", active=P),
             event(0.1, "kernel_saw", server=P, detail="link down"),
             event(1.5, "port_status", server=P, up=False), event(1.8, "server_down", server=P),
             event(3.0, "vip_moved", server=S, previous=P), event(3.6, "flows_installed", active=S)]
# A dead web server: no port goes down; its processes exit, two probes fail, then the
# controller decides. (A kernel_saw of another server, or from before the fault, is not it.)
WEB_CRASH = [event(-100, "kernel_saw", server=P, detail="web-primary exited"),
             event(1.2, "kernel_saw", server=S, detail="web-secondary exited"),
             event(1.6, "kernel_saw", server=P, detail="web-primary exited"),
             event(38.0, "server_down", server=P), event(39.0, "vip_moved", server=S, previous=P),
             event(39.5, "flows_installed", active=S)]
PROBES = [{"time": T0 - 0.02, "server": P, "ok": 1}, {"time": T0 + 0.001, "server": S, "ok": 1},
          {"time": T0 + 0.002, "server": P, "ok": 0, "confirming": "a reset from its web port"},
          {"time": T0 + 0.037, "server": P, "ok": 0}]
REQUESTS = [request(-2, 1.0, P), request(0.5, None), request(2.0, None), request(4.0, 3.0, S, 503),
            request(6.0, 1.5, S)]


@pytest.mark.parametrize(("events", "probes", "expected"), [
    (LINK_DOWN, [], {"kernel saw it": 0.1, "switch reported": 1.5, "suspected": None,
                     "first probe failed": None, "controller decided": 1.8, "flow sent": 3.0,
                     "switch confirmed": 3.6, "first request to new": 4.0, "first success": 7.5}),
    (WEB_CRASH, PROBES, {"kernel saw it": 1.6, "switch reported": None, "suspected": 2.0,
                         "first probe failed": 2.0, "controller decided": 38.0, "flow sent": 39.0,
                         "switch confirmed": 39.5, "first request to new": 4.0, "first success": 7.5}),
    # the VIP never moved: nothing after the decision happened
    ([event(1.8, "server_down", server=P)], [], {**dict.fromkeys(STAGES), "controller decided": 1.8}),
])
def test_each_stage_after_the_fault(events, probes, expected):
    stages = failover_stages_ms(T0, P, events, probes, REQUESTS if len(events) > 1 else [])
    assert stages == pytest.approx(expected) and list(stages) == list(STAGES)


def test_no_fault_no_stages():
    assert failover_stages_ms(None, P, LINK_DOWN, PROBES, REQUESTS) is None


def test_each_stage_adds_its_time_after_the_latest_before_it():
    from experiments.results.report import stage_steps

    stages = {"switch reported": 1.5, "first probe failed": None, "controller decided": 1.8, "flow sent": 3.0,
              "switch confirmed": 3.6, "first request to new": 2.0, "first success": 7.5}
    steps = stage_steps(stages)
    assert [name for name, _ in steps] == ["switch reported", "controller decided", "flow sent",
                                           "switch confirmed", "first request to new", "first success"]
    assert [took for _, took in steps] == pytest.approx([1.5, 0.3, 1.2, 0.6, 0.0, 3.9])


def test_the_waterfall_is_drawn(tmp_path):
    from experiments.results.report import draw_stages

    draw_stages({**dict.fromkeys(STAGES), "controller decided": 38.0, "flow sent": 39.0}, tmp_path / "s.png",
                "web-crash")
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_stage_medians_over_trials_leave_out_the_trials_that_did_not_reach_a_stage():
    from experiments.analysis.metrics import stage_medians

    trials = [{"failover_stages_ms": {"switch reported": 1.0, "flow sent": 3.0}},
              {"failover_stages_ms": {"switch reported": None, "flow sent": 5.0}},
              {"failover_stages_ms": {"switch reported": 3.0, "flow sent": 4.0}},
              {"failover_stages_ms": None}]
    assert stage_medians(trials) == {"switch reported": 2.0, "flow sent": 4.0}
    assert stage_medians([{"failover_stages_ms": None}]) is None
