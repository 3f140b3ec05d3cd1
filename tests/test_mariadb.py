"""A MariaDB server's config (what keeps two servers on one machine apart) and its local
connections."""

from __future__ import annotations

import pwd
import socket
import statistics
import time
from pathlib import Path

import pymysql
import pytest

from services.mariadb import DATABASE_USER, MariaDB, connect_local, replica_start_position
from topology.config import DatabaseConfig, TestbedConfig


def servers(tmp_path: Path) -> list[MariaDB]:
    config = TestbedConfig()
    plans = config.server_plans
    return [
        MariaDB(plan, i + 1, len(plans), tmp_path, tmp_path / "sockets")
        for i, plan in enumerate(plans)
    ]


def settings(db: MariaDB) -> dict[str, str]:
    pairs = [line.split(" = ", 1) for line in db.render_config().splitlines() if " = " in line]
    return {key: value for key, value in pairs}


def test_each_server_has_its_own_tmpdir(tmp_path: Path) -> None:
    """mariadbd deletes every `#sql*` file in its tmpdir when it starts: a shared /tmp let one
    server's start delete the temporary tables of the other's mariadb-install-db."""
    dirs = [settings(db)["tmpdir"] for db in servers(tmp_path)]
    assert len(set(dirs)) == len(dirs)
    for db, tmpdir in zip(servers(tmp_path), dirs, strict=True):
        assert Path(tmpdir).parent == db.dir


@pytest.mark.machine  # its folders are chowned to mysql: root
def test_write_config_creates_the_tmpdir(tmp_path: Path) -> None:
    """mariadbd refuses to start on a tmpdir that does not exist."""
    db = servers(tmp_path)[0]
    db.write_config()
    assert db.tmpdir.is_dir() and db.config_file.is_file()


@pytest.mark.machine  # its folders are chowned to mysql: root
def test_the_server_runs_as_mysql_in_a_folder_of_its_own(tmp_path: Path) -> None:
    """mariadbd drops to `mysql` before it opens a file: what it writes is in a folder `mysql`
    owns (0711: the web account reaches the socket by name, and lists nothing), outside the run
    folder; its config stays in the run folder, and its errors go to stderr (the runner's log)."""
    db = servers(tmp_path)[0]
    db.write_config()
    account = pwd.getpwnam(DATABASE_USER)
    assert settings(db)["user"] == DATABASE_USER
    assert f"--user={DATABASE_USER}" in db.install_command()
    for path, mode in ((db.dir, 0o711), (db.tmpdir, 0o700)):
        assert path.stat().st_mode & 0o777 == mode, path
        assert (path.stat().st_uid, path.stat().st_gid) == (account.pw_uid, account.pw_gid), path
    for key in ("datadir", "socket", "pid-file", "log-bin", "tmpdir"):
        assert Path(settings(db)[key]).parent == db.dir, key
    assert db.dir.parent == tmp_path / "sockets"
    assert db.config_file.parent == tmp_path / "primary" / "mariadb"
    assert "log-error" not in settings(db)


def test_no_two_servers_share_a_file(tmp_path: Path) -> None:
    keys = ["datadir", "socket", "pid-file", "log-bin", "tmpdir"]
    rendered = [settings(db) for db in servers(tmp_path)]
    for key in keys:
        values = [r[key] for r in rendered]
        assert len(set(values)) == len(values), key


def test_semi_sync_servers_start_as_replicas_so_recovery_drops_unacknowledged_writes(tmp_path: Path) -> None:
    """With the replica role, crash recovery rolls back what no replica acknowledged instead of
    committing it (tests/integration/test_consistency.py shows it on real servers)."""
    plan = TestbedConfig().server_plans[0]
    semi = MariaDB(plan, 1, 2, tmp_path, tmp_path / "s", DatabaseConfig(replication="semi-sync"))
    asynchronous = MariaDB(plan, 1, 2, tmp_path, tmp_path / "s", DatabaseConfig(replication="async"))
    assert settings(semi)["init-rpl-role"] == "SLAVE"
    assert settings(semi)["rpl-semi-sync-master-wait-point"] == "AFTER_SYNC"
    assert "init-rpl-role" not in settings(asynchronous)


def test_a_refused_local_connect_costs_almost_no_cpu(tmp_path: Path) -> None:
    """Without `ssl_disabled`, PyMySQL builds an SSL context for every connect (about 35 ms of
    CPU): a web service whose database had died then answered its health probe too late."""
    path = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()  # the file stays, nobody listens: the connect is refused at once
    costs = []
    for _ in range(7):
        start = time.process_time()
        with pytest.raises(pymysql.OperationalError):
            connect_local(path, connect_timeout=1)
        costs.append(time.process_time() - start)
    assert statistics.median(costs) < 0.005


@pytest.mark.parametrize("replica_pos, binlog_pos, expected", [
    # Recovery rolled back its last own transaction, which had come back around the ring: ask
    # for it again.
    ("1-1-4,2-2-10", "1-1-3,2-2-10", "1-1-3,2-2-10"),
    ("1-1-4", "1-1-3", "1-1-3"),
    # Its binary log is ahead (async: writes the others never got): asking for those would fail.
    ("1-1-3,2-2-10", "1-1-9,2-2-10", "1-1-3,2-2-10"),
    ("1-1-5,2-2-10", "1-1-5,2-2-10", "1-1-5,2-2-10"),
    # Its own transactions never came back around: nothing to ask for.
    ("2-2-10", "1-1-3,2-2-10", "2-2-10"),
    # Everything of its own was rolled back.
    ("1-1-2,2-2-10", "2-2-10", "2-2-10"),
    # Another domain is never touched, nor is a fresh server.
    ("1-1-3,2-2-7", "1-1-3,2-2-10", "1-1-3,2-2-7"),
    ("", "", ""),
])
def test_a_restarted_database_resumes_its_own_domain_from_its_binary_log_when_behind(
        replica_pos: str, binlog_pos: str, expected: str) -> None:
    assert replica_start_position(replica_pos, binlog_pos, own_domain=1) == expected


@pytest.mark.parametrize(("status", "health"), [
    (None, ("none", "")),
    ({"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Last_SQL_Errno": 0, "Last_IO_Errno": 0},
     ("running", "")),
    # the source is down or cut off: the IO thread retries, and that is no error of the data
    ({"Slave_IO_Running": "Connecting", "Slave_SQL_Running": "Yes", "Last_IO_Errno": 2003,
      "Last_IO_Error": "error connecting to master"}, ("connecting", "")),
    ({"Slave_IO_Running": "Yes", "Slave_SQL_Running": "No", "Last_SQL_Errno": 1062,
      "Last_SQL_Error": "Duplicate entry 'w1'"}, ("broken", "SQL thread: error 1062: Duplicate entry 'w1'")),
    ({"Slave_IO_Running": "No", "Slave_SQL_Running": "Yes", "Last_IO_Errno": 1236,
      "Last_IO_Error": "binlog purged"}, ("broken", "IO thread: error 1236: binlog purged")),
    ({"Slave_IO_Running": "No", "Slave_SQL_Running": "No", "Last_SQL_Errno": 0, "Last_IO_Errno": 0},
     ("stopped", "")),
])
def test_replication_health_from_the_replica_status(status, health):
    from services.mariadb import replication_health

    assert replication_health(status) == health
