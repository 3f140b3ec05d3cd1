"""The nemesis's pure parts, without a testbed: its seeded draw of faults, and each invariant
check as a table of recorded histories -> violations."""

from __future__ import annotations

from itertools import islice

import pytest

from experiments.analysis.chaos import (
    HOLD_S,
    KINDS,
    SERVER_FAULTS,
    check_one_writer,
    check_probe_age,
    check_vip_placement,
    check_writes,
    draw_faults,
    judge,
)

P, S = "primary", "secondary"


def test_the_same_seed_draws_the_same_faults_and_every_kind_comes():
    first, again, other = (list(islice(draw_faults(seed), 200)) for seed in (7, 7, 8))
    assert first == again and first != other
    assert {f.kind for f in first} == set(KINDS)
    for fault in first:
        low, high = HOLD_S[fault.kind]
        assert low <= fault.hold_s <= high
        assert not fault.on_active or fault.kind in SERVER_FAULTS
    assert any(f.on_active for f in first) and any(f.kind in SERVER_FAULTS and not f.on_active for f in first)


def ro(time, server, answer):
    return {"time": time, "server": server, "read_only": answer}


def test_two_writable_databases_are_a_violation_each_time():
    rows = [ro(0.0, P, "0"), ro(0.0, S, "1"), ro(1.0, S, "0"), ro(1.004, P, "1"), ro(2.0, P, "0"),
            ro(2.0, S, "0"), ro(2.01, S, "1"), ro(3.0, P, "0"), ro(3.0, S, "1")]
    found, checked = check_one_writer(rows)
    assert [v["time"] for v in found] == [1.0, 2.0]
    assert found[0]["detail"] == "two databases seen writable for 4.0 ms"
    assert checked == len(rows)


def crash(server=P, at=10.0, recovered_at=13.0, kind="server-crash", on_active=True):
    return {"kind": kind, "server": server, "on_active": on_active, "at": at, "recovered_at": recovered_at,
            "healthy_at": recovered_at + 1}


def sample(time, active, up=(P, S), ages=None, stale=()):
    ages = ages or {}
    return {"time": time, "active": active,
            "servers": {name: {"up": name in up, "last_probe_age_s": ages.get(name, 0.05),
                               "probe_stale": name in stale} for name in (P, S)}}


@pytest.mark.parametrize(("faults", "samples", "found", "checked"), [
    # before the bound the VIP may still be on the crashed server; after it, never
    ([crash()], [sample(10.5, P), sample(11.2, P, up=(S,)), sample(11.4, S, up=(S,))], [11.2], 2),
    # the VIP moved, but to a server the controller counts down
    ([crash()], [sample(11.5, S, up=())], [11.5], 1),
    # after the recovery, nothing is judged; a fault of a standby asks nothing of the VIP
    ([crash(), crash(S, at=20.0, recovered_at=22.0, on_active=False)],
     [sample(13.5, P), sample(21.5, P)], [], 0),
    # a frozen server is found by time-outs: its bound is 2 s
    ([crash(kind="hang")], [sample(11.5, P), sample(12.2, P)], [12.2], 1),
    # a status the controller could not say (restarting) is no evidence
    ([crash()], [{"time": 11.5, "active": None, "servers": {}}], [], 0),
])
def test_the_vip_is_on_a_server_that_is_up_within_the_faults_bound(faults, samples, found, checked):
    violations, count = check_vip_placement(faults, samples)
    assert [v["time"] for v in violations] == found
    assert count == checked


@pytest.mark.parametrize(("samples", "prober_down", "found"), [
    # over the budget but within the sampler's margin, and shown stale: fine
    ([sample(1.0, P, ages={P: 1.2}, stale=(P,))], [], []),
    # over the budget while the prober runs
    ([sample(1.0, P, ages={P: 2.0}, stale=(P,))], [], ["bounded probe age"]),
    # over the budget and shown as current: never
    ([sample(1.0, P, ages={P: 1.2})], [], ["stale shown as stale"]),
    # the prober was killed: old results are expected, but they must be shown stale
    ([sample(5.0, P, ages={P: 4.0, S: 4.0}, stale=(P, S))], [(2.0, 5.5)], []),
    ([sample(5.0, P, ages={P: 4.0, S: 4.0}, stale=(P,))], [(2.0, 5.5)], ["stale shown as stale"]),
])
def test_probe_ages_are_bounded_and_old_ones_shown_stale(samples, prober_down, found):
    violations, count = check_probe_age(samples, 1.0, prober_down)
    assert [v["invariant"] for v in violations] == found
    assert count == 2 * len(samples)


@pytest.mark.parametrize(("summary", "violated"), [
    ({"acked_writes_lost": 0}, False),
    ({"acked_writes_lost": 2, "semi_sync_fell_back": None}, True),
    ({"acked_writes_lost": 2, "semi_sync_fell_back": 1}, False),  # asynchronous by then: allowed
])
def test_no_acknowledged_write_lost_unless_semi_sync_fell_back(summary, violated):
    violations, count = check_writes(summary)
    assert bool(violations) is violated and count == 1


def test_judge_puts_every_violation_in_time_order_and_counts_the_checks():
    verdict = judge([crash()], [sample(11.2, P), sample(12.0, P, ages={S: 1.2})],
                    [ro(0.0, P, "0"), ro(0.0, S, "0"), ro(0.5, S, "1")], {"acked_writes_lost": 0}, 1.0)
    assert [(v["invariant"], v["time"]) for v in verdict["violations"]] == [
        ("one writer", 0.0), ("VIP on a server that is up", 11.2), ("VIP on a server that is up", 12.0),
        ("stale shown as stale", 12.0)]
    assert verdict["checked"] == {"one writer": 3, "VIP on a server that is up": 2, "bounded probe age": 4,
                                  "no acknowledged write lost": 1}
    assert verdict["invariants_checked"] == 10


def test_the_chaos_page_lists_the_schedule_and_every_violation(tmp_path):
    from experiments.results.chaos_report import write_chaos_report

    fault = {**crash(), "number": 1, "at_s": 3.0, "hold_s": 2.5, "whole_again": True, "active_after": S}
    summary = {"seed": 5, "duration_s": 60.0, "rate": 200.0, "post_ratio": 0.3, "faults_injected": 1,
               "invariants_checked": 9, "checked": {"one writer": 9}, "faults": [fault], "passed": False,
               "violations": [{"invariant": "one writer", "time": 12.5,
                               "detail": "two databases writable for 4.0 ms"}]}
    page = write_chaos_report(tmp_path, summary).read_text()
    assert "**Verdict: FAILED**" in page
    assert "| 1 | 3 | server-crash | primary | 2.5 | 4.0 | secondary |" in page
    assert "- one writer at 12.500: two databases writable for 4.0 ms" in page
