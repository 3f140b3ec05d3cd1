"""After a trial: did any acknowledged write get lost, and are the databases the same?

The check, in the manner of Jepsen's set checks, once the load has stopped:
1. Fence the data: the database holding the VIP stops taking transactions from the others,
   so that what a fenced server wrote on its own (after it lost the VIP, or acknowledged but
   never replicated) cannot slip in now and hide a loss.
2. Bring back whatever the scenario stopped (a link, a frozen or a killed database): each
   returning database rejoins as a replica of the active one, through GTID, in strict mode.
   Then wait until the active database's position stands still for QUIET_S: a server that fell
   behind (the weaker secondary at a high rate) still works through requests its clients gave
   up on, and a write of one landing after the position was read would look like a
   difference between the databases. (Stopping the web servers instead would be seen by the
   controller, which would move the VIP during the check.)
3. Wait, with a bound, until every other database has applied everything the active one has.
4. A replication error anywhere fails the trial with the database's own message (conflicts
   are never skipped). A transaction that only a returning server has (its own GTID domain
   ahead of the active's) is reported as diverged.
5. Compare: every write of the load against the active database's rows (lost, unexpected,
   recovered: see metrics.write_ledger); and every app table's row count and
   CHECKSUM TABLE across the databases (`db_consistent`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from experiments.analysis import metrics
from experiments.runs.failures import TrialFailed
from experiments.testbed.testbed import Testbed
from services.gtid import gtid_positions

CATCH_UP_S = 15.0
WAIT_STEP_S = 0.5
OWN_STEP_S = 0.05


QUIET_S = 0.5  # the active database's position unchanged this long: no request is still writing
QUIET_FOR_S = 15.0  # at most this long to wait for it


def _quiet_position(db: Any) -> str:
    """The active database's binlog position once it has stood still for QUIET_S (or after
    QUIET_FOR_S: then the check goes on with what it has, and a late write shows as a difference)."""
    position, still_since = db.gtid_binlog_pos(), time.monotonic()
    deadline = still_since + QUIET_FOR_S
    while time.monotonic() < deadline:
        time.sleep(WAIT_STEP_S / 5)
        now = db.gtid_binlog_pos()
        if now != position:
            position, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= QUIET_S:
            break
    return position


class ReplicationConflict(TrialFailed):
    """A database stopped replicating on an error; the message is the database's own."""


def check_consistency(
    testbed: Testbed, active: str, records: Sequence[metrics.RequestRecord]
) -> dict[str, Any]:
    databases = testbed.databases
    active_db = databases[active]
    active_db.stop_replica()
    for line in testbed.faults.bring_back():
        testbed.record("brought_back", detail=line)
    active_binlog = _quiet_position(active_db)
    active_position = gtid_positions(active_binlog) or {}

    # A semi-sync server that re-applies a transaction of its own (see below) waits for its
    # acknowledgement first, and the active server, fenced, never sends one: allow the time-out.
    settings = testbed.config.database
    semi_sync = settings.replication == "semi-sync"
    allowance = CATCH_UP_S + (settings.semi_sync_timeout_ms / 1000 if semi_sync else 0)
    diverged: dict[str, int] = {}
    caught_up: dict[str, bool] = {}
    for name, db in databases.items():
        if name == active:
            continue
        # A replica's position holds only what others originated; its own domain (its server
        # id) is in its binary log. Usually the active server has nothing of that domain that
        # the replica lacks, but after a semi-sync crash recovery rolled back a transaction the
        # active server had received, the replica gets it back from the active one.
        position = ",".join(
            gtid for gtid in active_binlog.split(",") if gtid and int(gtid.split("-")[0]) != db.server_id
        )
        caught_up[name] = _catch_up(name, db, position, active_position.get(db.server_id, 0), allowance)
        own = _own_position(db)
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


def _own_position(db: Any) -> int:
    """The sequence number of the last transaction of `db`'s own domain in its binary log."""
    return (gtid_positions(db.gtid_binlog_pos()) or {}).get(db.server_id, 0)


def _catch_up(name: str, db: Any, position: str, own_needed: int, timeout: float) -> bool:
    """Wait until `db` applied `position`, has its own domain up to `own_needed`, and applied
    all it received; a replication error ends the wait and the trial.

    The last condition is for its own domain: a transaction of it coming back is in its binary
    log before it is committed (AFTER_SYNC), and the commit is what counts.
    """
    deadline = time.monotonic() + timeout
    while True:
        error = db.replication_error()
        if error:
            raise ReplicationConflict(f"replication on {name} stopped with {error}")
        others_applied = not position or db.wait_gtid(position, WAIT_STEP_S)
        if others_applied and _own_position(db) >= own_needed:
            received = str(db.replica_status().get("Gtid_IO_Pos") or "")
            if not received or db.wait_gtid(received, WAIT_STEP_S):
                return True
        elif others_applied:
            time.sleep(OWN_STEP_S)
        if time.monotonic() > deadline:
            return False
