"""The scale benchmark's pure parts: sizes read and turned into configs, its two targets, its
table and picture (experiments/analysis/scale.py, experiments/results/scale_report.py)."""

from __future__ import annotations

import pytest

from experiments.analysis.scale import (
    DEFAULT_SIZES,
    Size,
    SizeError,
    flows_without_clients_growth,
    gap_ratios,
    gap_within_tolerance,
    parse_size,
    size_config,
)
from experiments.cli.bench import check_sizes
from experiments.cli.common import UsageError
from experiments.results.scale_report import draw_scale, scale_table
from topology.config import TestbedConfig


@pytest.mark.parametrize(
    "text, size",
    [
        ("single/2/1", Size("single", 2, 1)),
        ("two-tier/8/64", Size("two-tier", 8, 64)),
        ("leaf-spine-4x2/8/64", Size("leaf-spine", 8, 64, 4, 2)),
    ],
)
def test_a_size_is_read_and_written_back_the_same(text: str, size: Size) -> None:
    assert parse_size(text) == size
    assert size.label == text


@pytest.mark.parametrize(
    "text, says",
    [
        ("single", "write TOPOLOGY/SERVERS/CLIENTS"),
        ("leaf-spine/2/1", "leaf-spine-LxS"),
        ("ring/2/1", "write TOPOLOGY/SERVERS/CLIENTS"),
        ("single/1/1", "the servers must be 2 to 8"),
        ("single/9/1", "the servers must be 2 to 8"),
    ],
)
def test_a_size_that_cannot_be_read_says_how_to_write_one(text: str, says: str) -> None:
    with pytest.raises(SizeError, match=says):
        parse_size(text)


def test_every_default_size_makes_a_valid_config_of_its_size() -> None:
    for size in DEFAULT_SIZES:
        config = size_config(TestbedConfig(), size, 500.0)
        assert len(config.servers) == size.servers
        assert 1 + len(config.extra_clients) == size.clients
        assert config.network.topology == size.topology
        assert config.load.rate == 500.0 and config.load.fault_at_s < config.load.duration_s
    assert [s.name for s in size_config(TestbedConfig(), parse_size("single/4/1"), 500).servers] == [
        "primary", "secondary", "server3", "server4"]


@pytest.mark.parametrize(
    "sizes, error",
    [
        (("single/2/1", "leaf-spine-4x2/8/64"), None),
        (("leaf-spine-9x2/2/1",), "size leaf-spine-9x2/2/1: network.leaves"),
        (("single/2/100",), "size single/2/100: network.clients"),
    ],
)
def test_bench_scale_checks_every_size_against_the_config_before_it_starts(sizes, error) -> None:
    check = check_sizes(tuple(parse_size(s) for s in sizes), 500.0)
    if error is None:
        check(TestbedConfig())
    else:
        with pytest.raises(UsageError, match=error):
            check(TestbedConfig())


def sized(shape: str, clients: int, switches: dict[str, int], gap: float | None = 20.0) -> dict:
    return {"shape": shape, "clients": clients, "clients_edge": next(iter(switches)),
            "switches": {s: {"flows": n, "groups": 0} for s, n in switches.items()},
            "failover_gap_ms": {"median": gap, "p95": gap and gap * 1.5, "n": 5},
            "requests_failed": {"median": 4.0}, "setup_s": 6.1, "controller_rss_mb": 60.2,
            "latency_p50_before_ms": 1.5, "vip_moves_before_fault": {"max": 0}}


@pytest.mark.parametrize(
    "sizes, expected",
    [
        ({"a": sized("single/2", 1, {"s1": 11})}, None),  # nothing to compare
        ({"a": sized("single/2", 1, {"s1": 11}), "b": sized("single/2", 64, {"s1": 11})}, True),
        ({"a": sized("single/2", 1, {"s1": 11}), "b": sized("single/2", 64, {"s1": 12})}, False),
        # on a fabric the clients' edge has one rule per client's port: only the others count
        ({"a": sized("two-tier/2", 1, {"edge1": 20, "core1": 9}),
          "b": sized("two-tier/2", 64, {"edge1": 83, "core1": 9})}, True),
        ({"a": sized("two-tier/2", 1, {"edge1": 20, "core1": 9}),
          "b": sized("two-tier/2", 64, {"edge1": 83, "core1": 72})}, False),
        ({"a": sized("single/2", 1, {"s1": 11}), "b": sized("single/4", 1, {"s1": 19})}, None),
    ],
)
def test_flows_must_not_grow_with_clients(sizes: dict, expected: bool | None) -> None:
    assert flows_without_clients_growth(sizes) is expected


@pytest.mark.parametrize(
    "gaps, ratios, within",
    [
        ({"ref": 20.0, "b": 24.0}, {"ref": 1.0, "b": 1.2}, True),
        ({"ref": 20.0, "b": 24.2}, {"ref": 1.0, "b": 1.21}, False),
        ({"ref": 20.0, "b": 10.0}, {"ref": 1.0, "b": 0.5}, True),  # faster is within
        ({"ref": 20.0, "b": None}, {"ref": 1.0, "b": None}, False),  # a size that did not fail over
        ({"ref": None, "b": 10.0}, {"ref": None, "b": None}, None),
    ],
)
def test_the_gap_is_compared_with_the_reference_size(gaps: dict, ratios: dict, within: bool | None) -> None:
    sizes = {label: sized("x", 1, {"s1": 1}, gap) for label, gap in gaps.items()}
    assert gap_ratios(sizes, "ref") == ratios
    assert gap_within_tolerance(ratios) is within


def test_the_table_and_the_picture_show_every_size(tmp_path) -> None:
    results = {"scenario": "primary-crash", "trials": 5, "rate": 500.0, "reference": "single/2/1",
               "sizes": {"single/2/1": {**sized("single/2", 1, {"s1": 11}), "gap_vs_reference": 1.0},
                         "two-tier/2/64": {**sized("two-tier/2", 64, {"edge1": 83, "core1": 9}, None),
                                           "gap_vs_reference": None}},
               "targets": {"flows": True, "gap": None}}
    table = scale_table(results)
    assert "| single/2/1 | 1 | 6.1 | 11 / - | 0 | 60.2 | 20 / 30 | 1 | 4 | 1.5 | 0 |" in table
    assert "| two-tier/2/64 | 2 | 6.1 | 83 / 9 | 0 | 60.2 | no failover | - | 4 | 1.5 | 0 |" in table
    assert "target: flows: met" in table and "target: gap: not measured" in table
    draw_scale(results, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 10_000
