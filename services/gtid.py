"""MariaDB GTID positions: parsing and comparing them, without a database.

A GTID position is what `@@gtid_binlog_pos` or `@@gtid_slave_pos` returns: one
`domain-server-sequence` triple per replication domain, comma-separated ("0-1-100,2-2-57";
empty for a fresh server). Each server of the testbed writes in its own domain, so positions
are compared domain by domain, by sequence number.

Pure functions only: the controller (failback's caught-up check), the database service
(where a restarted server resumes replicating) and the experiments (the after-trial check)
all read positions the same way.
"""

from __future__ import annotations

from collections.abc import Mapping


def parse_gtid(text: str) -> dict[int, tuple[int, int]]:
    """A GTID position as {domain: (server id, sequence number)}."""
    parsed: dict[int, tuple[int, int]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        domain, server, seq = (int(n) for n in part.split("-"))
        parsed[domain] = (server, seq)
    return parsed


def format_gtid(position: Mapping[int, tuple[int, int]]) -> str:
    """The text MariaDB takes for a position ({domain: (server id, seq)}), domains in order."""
    return ",".join(f"{domain}-{server}-{seq}" for domain, (server, seq) in sorted(position.items()))


def gtid_positions(text: str | None) -> dict[int, int] | None:
    """A GTID position ("0-1-100,2-2-57") as {domain: sequence number}; None stays None."""
    if text is None:
        return None
    return {domain: seq for domain, (_server, seq) in parse_gtid(text).items()}


def caught_up(candidate: str | None, reference: str | None) -> bool:
    """Has a server at GTID position `candidate` applied everything in `reference`?

    Unknown positions count as not caught up: the VIP never goes to a server whose state
    nobody has seen. Sequence numbers are compared per replication domain.
    """
    have, need = gtid_positions(candidate), gtid_positions(reference)
    if have is None or need is None:
        return False
    return all(have.get(domain, 0) >= seq for domain, seq in need.items())


def missing(candidate: str | None, reference: str | None) -> int | None:
    """How many transactions of `reference` a server at `candidate` has not applied (summed
    over the replication domains); None when either position is unknown."""
    have, need = gtid_positions(candidate), gtid_positions(reference)
    if have is None or need is None:
        return None
    return sum(max(0, seq - have.get(domain, 0)) for domain, seq in need.items())
