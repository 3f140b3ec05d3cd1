"""The benchmarks, run from the command line as the README shows, each shortened.

`bench failover` with one trial of db-crash (the scenario the benchmark gained last) and its
wrk rounds; `bench loadgen` at a rate the generator must keep up with on any machine; `bench
scale` at three small sizes, two of which differ only in their clients.
"""

import json

from tests.integration.conftest import leftovers, run_experiments


def test_bench_failover_measures_the_gap_and_the_throughput(tmp_path):
    result, folder = run_experiments(tmp_path, "bench", "failover", "--trials", "1", "--rate", "200",
                                     "--scenarios", "db-crash", "--wrk-rounds", "2")
    results = json.loads((folder / "bench.json").read_text())
    gap = results["scenarios"]["db-crash"]["failover_gap_ms"]
    # One trial: the VIP moved once (within the first issue's bound: a behaviour, not a benchmark).
    assert gap["n"] == 1 and 0 < gap["median"] <= 200
    throughput = results["throughput"]
    assert throughput["through_vip_rps"] > 200 and throughput["direct_rps"] > 200
    assert len(throughput["rounds"]["through_vip"]) == len(throughput["rounds"]["direct"]) == 2
    verdicts = {check["what"] for check in results["targets"]}
    assert verdicts == {"db-crash failover gap median", "db-crash failover gap p95",
                        "db-crash requests failed per failover, median",
                        "throughput through the VIP / straight to the primary"}
    assert "| db-crash | 1 |" in result.stdout
    assert (folder / "bench.md").read_text().strip() in result.stdout  # the table it printed
    assert leftovers() == []


def test_bench_loadgen_sends_every_request_on_schedule(tmp_path):
    result, folder = run_experiments(tmp_path, "bench", "loadgen", "--rate", "500")
    results = json.loads((folder / "bench-loadgen.json").read_text())
    assert results["scheduled"] == 2500
    assert results["recorded"] == 2500 and results["ok"] == 2500
    assert results["send_lag_ms"]["p50"] < 5
    assert results["wrk_rps"] > 500
    assert "requests recorded 2500, answered OK 2500" in result.stdout
    assert leftovers() == []


def test_bench_scale_measures_each_size_and_the_flows_do_not_grow_with_clients(tmp_path):
    sizes = ("leaf-spine-2x1/3/1", "leaf-spine-2x1/3/4")
    result, folder = run_experiments(tmp_path, "bench", "scale", "--trials", "1", "--rate", "200",
                                     "--sizes", *sizes)
    results = json.loads((folder / "bench-scale.json").read_text())
    assert list(results["sizes"]) == list(sizes) and results["reference"] == "leaf-spine-2x1/3/1"
    for label, figures in results["sizes"].items():
        assert figures["setup_s"] > 0 and figures["controller_rss_mb"] > 10, label
        assert figures["failover_gap_ms"]["n"] == 1, label  # the VIP moved in the one trial
    one, four = results["sizes"]["leaf-spine-2x1/3/1"], results["sizes"]["leaf-spine-2x1/3/4"]
    assert set(four["switches"]) == {"leaf1", "leaf2", "spine1"}
    # As Open vSwitch lists them: three clients more are three rules more on their edge only.
    assert four["switches"]["leaf1"]["flows"] == one["switches"]["leaf1"]["flows"] + 3
    assert {s: v for s, v in four["switches"].items() if s != "leaf1"} == \
        {s: v for s, v in one["switches"].items() if s != "leaf1"}
    assert results["targets"]["no switch but the clients' edge has more flows with more clients"] is True
    assert (folder / "bench-scale.md").read_text().strip() in result.stdout
    assert (folder / "bench-scale.png").stat().st_size > 10_000
    assert leftovers() == []
