"""No acknowledged write lost, and conflicts never hidden: the after-trial check on real databases."""

import json
import threading

import pymysql
import pytest

from experiments.runs.consistency import ReplicationConflict, check_consistency
from experiments.testbed.testbed import Testbed
from tests.integration.conftest import leftovers, read_results, run_cli
from topology.config import load_config

CONFIG = load_config()


def test_semi_sync_primary_crash_loses_no_acknowledged_write(tmp_path):
    _, run_dir = run_cli("primary-crash", tmp_path, "--replication", "semi-sync", "--rate", "300",
                         "--duration", "8", "--fault-at", "4")
    summary, _, events = read_results(run_dir)
    assert summary["replication"] == {"mode": "semi-sync", "wait_point": "AFTER_SYNC", "timeout_ms": 250}
    assert summary["acked_writes"] > 300
    assert summary["acked_writes_lost"] == 0
    assert summary["unexpected_writes"] == 0
    assert summary["failed_but_present_writes"] == 0
    assert any(e["kind"] == "brought_back" and "mariadb-primary restarted" in e["detail"] for e in events)
    assert summary["caught_up"] == {"primary": True}
    assert summary["db_consistent"] is True, summary["table_checksums"]
    # The secondary's only replica died with the primary: its first writes wait out the time-out,
    # and then it goes on asynchronously. That fallback is counted like any other.
    assert summary["semi_sync_fell_back"] >= 1
    assert any(e["kind"] == "semi_sync_fell_back" and e["server"] == "secondary" for e in events), events
    assert leftovers() == []


@pytest.fixture
def testbed(tmp_path):
    with Testbed(CONFIG, tmp_path) as running:
        yield running
    assert leftovers() == []


def test_a_change_behind_replications_back_makes_the_databases_inconsistent(testbed):
    primary, secondary = testbed.databases["primary"], testbed.databases["secondary"]
    primary.execute("INSERT INTO app.items (write_id, served_by) VALUES ('same', 'primary')")
    assert secondary.wait_gtid(primary.gtid_binlog_pos(), 5)
    assert check_consistency(testbed, "primary", [])["db_consistent"] is True
    secondary.execute("SET sql_log_bin = 0",
                      "UPDATE app.items SET payload = 'changed' WHERE write_id = 'same'")
    result = check_consistency(testbed, "primary", [])
    assert result["db_consistent"] is False
    assert result["table_checksums"]["primary"]["items"] != result["table_checksums"]["secondary"]["items"]


def test_a_duplicate_key_fails_the_check_with_the_databases_own_message(testbed):
    primary, secondary = testbed.databases["primary"], testbed.databases["secondary"]
    # The same write id on both sides: the replica cannot apply the primary's row.
    secondary.execute("SET sql_log_bin = 0",
                      "INSERT INTO app.items (write_id, served_by) VALUES ('twice', 'secondary')")
    primary.execute("INSERT INTO app.items (write_id, served_by) VALUES ('twice', 'primary')")
    with pytest.raises(ReplicationConflict, match="Duplicate entry 'twice'"):
        check_consistency(testbed, "primary", [])


def test_a_transaction_only_the_fenced_primary_has_is_reported(testbed):
    testbed.faults.link_down("primary")
    testbed.runner.wait_for("the VIP moves", lambda: testbed.control.active_server() == "secondary",
                            timeout=10)
    # Written on the cut-off primary after it lost the VIP (root is not held back by read_only).
    cut_off = testbed.databases["primary"]
    cut_off.execute("INSERT INTO app.items (write_id, served_by) VALUES ('orphan', 'p')")
    result = check_consistency(testbed, "secondary", [])
    assert result["diverged_transactions"] == {"primary": 1}
    assert result["db_consistent"] is False
    assert "orphan" not in testbed.databases["secondary"].write_id_counts()


def semi_sync_waiting(db) -> int:
    """How many commits on `db` wait for a replica's acknowledgement right now."""
    return int(db.query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_wait_sessions'")[0][1])


@pytest.mark.parametrize("replica_got_it", [False, True], ids=["replica-never-got-it", "ack-lost"])
def test_a_crashed_semi_sync_primary_comes_back_with_what_the_active_server_has(tmp_path, replica_got_it):
    """AFTER_SYNC: a commit is in the primary's binary log before a replica acknowledges it. If
    the primary dies then, the client was never told "saved". Its crash recovery rolls the
    commit back (the replica role) rather than commit it: if the new active server never got
    it, the two databases agree at once; if it did (only the acknowledgement was lost), the
    restarted primary must get its own transaction back from it."""
    config = load_config(overrides={"database.replication": "semi-sync",
                                    "database.semi_sync_timeout_ms": 10000})
    with Testbed(config, tmp_path) as testbed:
        primary, secondary = testbed.databases["primary"], testbed.databases["secondary"]
        if replica_got_it:  # it replicates, but as a plain replica: it never acknowledges
            secondary.execute("STOP SLAVE IO_THREAD", "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
                              "START SLAVE IO_THREAD")
        else:  # as if its link had dropped: nothing of the primary reaches it
            secondary.stop_replica()
        logged_before = primary.gtid_binlog_pos()
        outcome: list[str] = []

        def write() -> None:
            try:
                with primary.connect(timeout=10) as connection:
                    connection.cursor().execute(
                        "INSERT INTO app.items (write_id, served_by) VALUES ('unacked', 'primary')")
                    connection.commit()
                outcome.append("acknowledged")
            except pymysql.MySQLError as exc:
                outcome.append(f"failed: {exc}")

        writer = threading.Thread(target=write)
        writer.start()
        testbed.runner.wait_for("the commit waits for a replica's acknowledgement",
                                lambda: semi_sync_waiting(primary) == 1, timeout=10)
        assert primary.gtid_binlog_pos() != logged_before  # in the binary log, not committed
        if replica_got_it:
            testbed.runner.wait_for("the secondary has the write",
                                    lambda: "unacked" in secondary.write_id_counts(), timeout=10)
        testbed.faults.kill_database("primary")
        writer.join(15)
        assert outcome and outcome[0].startswith("failed"), outcome  # the client was never told
        testbed.runner.wait_for("the VIP moves to the secondary",
                                lambda: testbed.control.active_server() == "secondary", timeout=10)

        result = check_consistency(testbed, "secondary", [])  # restarts the primary's database
        # Its error log is its stderr, kept by the process runner (both starts, one file).
        assert "Successfully truncated binlog" in testbed.runner.processes[primary.name].log_path.read_text()
        assert ("unacked" in primary.write_id_counts()) is replica_got_it
        assert result["caught_up"] == {"primary": True}
        assert result["diverged_transactions"] == {"primary": 0}
        assert result["db_consistent"] is True, result["table_checksums"]
    assert leftovers() == []


def test_compare_replication_writes_a_table_and_a_picture(tmp_path):
    result, folder = run_cli("compare-replication", tmp_path, "--trials", "1", "--duration", "6",
                             "--fault-at", "3")
    assert "acknowledged writes lost" in result.stdout
    results = json.loads((folder / "compare-replication.json").read_text())
    assert set(results["modes"]) == {"async", "semi-sync"}
    assert results["modes"]["semi-sync"]["acked_writes_lost_total"] == 0
    assert (folder / "compare-replication.png").stat().st_size > 10_000
    assert "| acknowledged writes lost, total |" in (folder / "compare-replication.md").read_text()
    assert leftovers() == []


def test_compare_replication_under_partition_crash_shows_what_async_loses(tmp_path):
    result, folder = run_cli("compare-replication", tmp_path, "--under", "partition-crash",
                             "--trials", "1", "--duration", "6", "--fault-at", "3")
    assert "\npartition-crash, 1 trial(s) per mode at 200 req/s\n" in result.stdout
    results = json.loads((folder / "compare-replication.json").read_text())
    assert results["scenario"] == "partition-crash"
    # Replication is cut for 1 s before the crash: the writes of that second are acknowledged
    # by the primary alone, and die with it.
    assert results["modes"]["async"]["acked_writes_lost_total"] > 0
    assert results["modes"]["async"]["semi_sync_fell_back_trials"] is None
    assert results["modes"]["semi-sync"]["semi_sync_fell_back_trials"] == 1
    assert leftovers() == []


# Asynchronous replication under partition-crash (a second of writes acknowledged by the primary
# alone, all lost, all diverged) is checked in the lab guide's exercise 9, which runs it.
