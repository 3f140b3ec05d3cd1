"""GTID positions, parsed and compared without a database (services/gtid.py)."""

import pytest

from services.gtid import caught_up, format_gtid, gtid_positions, parse_gtid


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0-1-100,2-2-57", {0: (1, 100), 2: (2, 57)}),
        ("1-1-4", {1: (1, 4)}),
        (" 1-1-4 , 2-2-9 ", {1: (1, 4), 2: (2, 9)}),  # MariaDB may put spaces or newlines in
        ("1-1-4,\n2-2-9", {1: (1, 4), 2: (2, 9)}),
        ("", {}),  # a fresh server
        ("1-1-4,", {1: (1, 4)}),
    ],
)
def test_parse_gtid_reads_server_and_sequence_per_domain(text, expected):
    assert parse_gtid(text) == expected


@pytest.mark.parametrize("text", ["1-1", "a-b-c", "1-1-4-5"])
def test_parse_gtid_refuses_what_is_no_position(text):
    with pytest.raises(ValueError):
        parse_gtid(text)


@pytest.mark.parametrize("text", ["", "1-1-4", "0-1-100,2-2-57", "1-3-7,2-2-9,5-5-1"])
def test_format_gtid_gives_back_what_was_parsed(text):
    assert format_gtid(parse_gtid(text)) == text


def test_format_gtid_sorts_the_domains():
    assert format_gtid({2: (2, 9), 1: (1, 4)}) == "1-1-4,2-2-9"


@pytest.mark.parametrize(
    "text, expected",
    [("0-1-100,2-2-57", {0: 100, 2: 57}), ("", {}), (None, None)],
)
def test_gtid_positions_are_sequence_numbers_per_domain(text, expected):
    assert gtid_positions(text) == expected


@pytest.mark.parametrize(
    "candidate, reference, expected",
    [
        ("1-1-10", "1-1-10", True),
        ("1-1-11", "1-1-10", True),
        ("1-1-9", "1-1-10", False),
        ("1-1-10,2-2-5", "1-1-10,2-2-6", False),
        ("1-1-10,2-2-6", "2-2-6", True),
        ("1-1-10", "1-1-10,2-2-1", False),  # a domain the candidate never saw
        ("1-2-10", "1-1-10", True),  # the sequence number counts, not which server wrote it
        ("", "", True),  # two empty databases
        (None, "1-1-1", False),  # unknown: never trusted
        ("1-1-1", None, False),
    ],
)
def test_caught_up_compares_gtid_positions_per_domain(candidate, reference, expected):
    assert caught_up(candidate, reference) is expected
