"""After a trial: did any acknowledged write get lost, and are the databases the same?

The check, in the manner of Jepsen's set checks, once the load has stopped:
1. Fence the data: the database holding the VIP stops taking transactions from the others,
   so that what a fenced server wrote on its own (after it lost the VIP, or acknowledged but
   never replicated) cannot slip in now and hide a loss.
2. Bring back whatever the scenario stopped (a link, a frozen or a killed database): each
   returning database rejoins as a replica of the active one, through GTID, in strict mode.
3. Wait, with a bound, until every other database has applied everything the active one has.
4. A replication error anywhere fails the trial with the database's own message (conflicts
   are never skipped). A transaction that only a returning server has (its own GTID domain
   ahead of the active's) is reported as diverged.
5. Compare: every write of the load against the active database's rows (lost, unexpected,
   recovered, duplicated: see metrics.write_ledger); and every app table's row count and
   CHECKSUM TABLE across the databases (`db_consistent`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from controller.failover import gtid_positions
from experiments import metrics
from experiments.testbed import Testbed

CATCH_UP_S = 15.0
WAIT_STEP_S = 0.5


class ReplicationConflict(RuntimeError):
    """A database stopped replicating on an error; the message is the database's own."""


def check_consistency(
    testbed: Testbed, active: str, records: Sequence[metrics.RequestRecord]
) -> dict[str, Any]:
    databases = testbed.databases
    active_db = databases[active]
    active_db.stop_replica()
    for line in testbed.bring_back():
        testbed.record("brought_back", detail=line)
    active_binlog = active_db.gtid_binlog_pos()
    active_position = gtid_positions(active_binlog) or {}

    diverged: dict[str, int] = {}
    caught_up: dict[str, bool] = {}
    for name, db in databases.items():
        if name == active:
            continue
        # A replica waits only for what others originated: its own domain (its server id) is
        # not in its replica position.
        position = ",".join(
            gtid for gtid in active_binlog.split(",") if gtid and int(gtid.split("-")[0]) != db.server_id
        )
        caught_up[name] = _catch_up(name, db, position)
        own = (gtid_positions(db.gtid_binlog_pos()) or {}).get(db.server_id, 0)
        diverged[name] = max(0, own - active_position.get(db.server_id, 0))

    checksums = {name: db.table_checksums() for name, db in databases.items()}
    reference = checksums[active]
    return {
        **metrics.write_ledger(records, active_db.write_id_counts()),
        "db_consistent": all(sums == reference for sums in checksums.values()) and all(caught_up.values()),
        "caught_up": caught_up,
        "diverged_transactions": diverged,
        "table_checksums": {name: {t: list(v) for t, v in sums.items()} for name, sums in checksums.items()},
    }


def _catch_up(name: str, db: Any, position: str) -> bool:
    """Wait until `db` applied `position`; a replication error ends the wait and the trial."""
    deadline = time.monotonic() + CATCH_UP_S
    while True:
        error = db.replication_error()
        if error:
            raise ReplicationConflict(f"replication on {name} stopped with {error}")
        if not position or db.wait_gtid(position, WAIT_STEP_S):
            return True
        if time.monotonic() > deadline:
            return False
