"""A real MariaDB server on a server host, and master-master replication between two of them.

Each server host runs its own `mariadbd`, bound to the host's IP (so replication crosses the
emulated switch), with a distinct `server_id` and GTID domain, a binary log, and
`auto_increment_increment` / `auto_increment_offset` set so that rows inserted on either side
never collide on id.

It runs as the unprivileged `mysql` account (Debian's mariadb-server creates it): root starts
it, and it drops to `mysql` before it opens a file or a socket. So its datadir, binary logs,
pid file, tmpdir and socket are in a folder of its own, `<socket folder>/mariadb-<server>/`,
owned by `mysql`: the run folder may be under a folder `mysql` cannot enter (`/root`, pytest's
0700 temp folders). Its config stays in the run folder (`<host>/mariadb/my.cnf`, read while it
is still root), and its error log is its stderr, which the process runner writes to
`logs/mariadb-<server>.log`. At the end its binary logs are copied beside the config, and the
datadir goes with the socket folder.

Administration goes through the local UNIX socket as root (authenticated by the socket: root
has no password and cannot log in over the network). The web service uses an `app` user with
data rights on the app schema only, and only through the local socket (the web service is on
the same host; no host of the emulated network can log in as it); replication uses a `repl` user with only
`REPLICATION SLAVE`, accepted only from the peer's address. Both passwords are generated for
each run (services/secrets.py), never on a command line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pymysql

from services.files import LocalFiles, RemoteFiles
from services.gtid import format_gtid, parse_gtid
from services.secrets import RunSecrets
from topology.config import DatabaseConfig, HostPlan

# Semi-synchronous replication waits for a replica's acknowledgement after the transaction is
# in the binary log and before it is committed: a client is never told "done" about a write
# that no replica has.
SEMI_SYNC_WAIT_POINT = "AFTER_SYNC"

# The account mariadbd runs as: Debian's mariadb-server package creates it.
DATABASE_USER = "mysql"

APP_SCHEMA = "app"
APP_TABLES = {
    "items": """
        CREATE TABLE items (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            write_id VARCHAR(64) NOT NULL,
            payload VARCHAR(255) NOT NULL DEFAULT '',
            served_by VARCHAR(32) NOT NULL,
            created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            UNIQUE KEY write_id (write_id)
        ) ENGINE=InnoDB
    """,
    # One row per server, rewritten every 50 ms while it holds the VIP: replication lag.
    "heartbeat": """
        CREATE TABLE heartbeat (
            server VARCHAR(32) NOT NULL PRIMARY KEY,
            seq BIGINT UNSIGNED NOT NULL,
            written_at TIMESTAMP(6) NOT NULL
        ) ENGINE=InnoDB
    """,
}


def server_dir(socket_dir: Path, server: str) -> Path:
    """The folder of `server`'s database (datadir, binary logs, socket), owned by `mysql`."""
    return socket_dir / f"mariadb-{server}"


def socket_path(socket_dir: Path, server: str) -> Path:
    """Where the MariaDB server of `server` listens locally (short: socket paths max 107 bytes)."""
    return server_dir(socket_dir, server) / "mariadb.sock"


def connect_local(
    socket: Path | str, user: str = "root", password: str = "", database: str | None = None,
    connect_timeout: float = 2.0, io_timeout: float = 10.0,
) -> pymysql.Connection:
    """A connection to a server's database over its local UNIX socket, without TLS.

    PyMySQL 1.2 tries TLS by default, and for that builds a new SSL context from the system's
    CA store on every connect: 20 to 35 ms of CPU, even when the server is gone and the
    connect is refused at once. That made a web service whose database had died too busy to
    answer its health probe in time (detection took 250 ms instead of tens), and it delayed
    each promotion. A socket that never leaves the machine needs no TLS.
    """
    return pymysql.connect(
        unix_socket=str(socket), user=user, password=password, database=database,
        connect_timeout=connect_timeout, read_timeout=io_timeout, write_timeout=io_timeout,
        autocommit=True, ssl_disabled=True,
    )


def replica_start_position(replica_pos: str, binlog_pos: str, own_domain: int) -> str:
    """Where a database that crashed resumes replicating: its replica position, except that its
    own domain goes back to its binary log's position when that is behind.

    In a ring a server's own transactions come back to it and move its replica position. If a
    semi-sync crash recovery then rolled the last of them back (its replica had received it, but
    the acknowledgement was lost), the position is past a transaction the server no longer has,
    and it would never ask for it again; from its binary log's position it gets it back from the
    active server (with gtid-strict-mode, a semi-sync replica applies a transaction of its own
    when it comes: MariaDB, MDEV-27760). The other way round, a binary log ahead of the position
    holds transactions the other servers never got: asking for those would fail (error 1236).
    """
    position, logged = parse_gtid(replica_pos), parse_gtid(binlog_pos)
    if own_domain in position:
        logged_seq = logged[own_domain][1] if own_domain in logged else 0
        if logged_seq < position[own_domain][1]:
            if logged_seq:
                position[own_domain] = logged[own_domain]
            else:
                del position[own_domain]
    return format_gtid(position)


def set_read_only(socket: Path, read_only: bool, timeout: float) -> None:
    """Make a server's database read-only or writable, as root over its local socket.

    `read_only` stops every account without the READ ONLY ADMIN privilege (the app has none)
    from writing; replication still applies the peer's changes.
    """
    with connect_local(socket, connect_timeout=timeout, io_timeout=timeout) as conn, conn.cursor() as cur:
        cur.execute(f"SET GLOBAL read_only = {'ON' if read_only else 'OFF'}")


def semi_sync_config(settings: DatabaseConfig) -> str:
    """The [mariadbd] lines of semi-synchronous replication; none for asynchronous."""
    if settings.replication != "semi-sync":
        return ""
    # Both roles on every server: in master-master either may be the one taking writes.
    # `init-rpl-role = SLAVE`: every database starts as a replica (read-only, until the
    # controller promotes it), and a crashed one comes back as one. With this role, crash
    # recovery rolls back what was in the binary log but not yet acknowledged by a replica
    # (AFTER_SYNC: prepared, logged, never committed) and truncates the log there, instead
    # of committing it: no one was told it was saved, the new active server never got it,
    # and committing it would leave the restarted server with a transaction of its own
    # (MariaDB's semi-sync replica recovery, MDEV-21117; the role is required since
    # MDEV-33465). Without it, 1 trial of 20 of `compare-replication` ended inconsistent.
    return f"""init-rpl-role = SLAVE
rpl-semi-sync-master-enabled = ON
rpl-semi-sync-slave-enabled = ON
rpl-semi-sync-master-wait-point = {SEMI_SYNC_WAIT_POINT}
rpl-semi-sync-master-timeout = {settings.semi_sync_timeout_ms}
"""


# What a replica's `SHOW SLAVE STATUS` says of its replication, for /health and the controller:
REPLICATING = "running"  # both threads run
CONNECTING = "connecting"  # the IO thread cannot reach its source (down, or cut off): no error
STOPPED = "stopped"  # a thread was stopped, without an error (an administrator, a trial's end)
BROKEN = "broken"  # a thread stopped on an error: what came after it was never applied
NO_REPLICA = "none"  # not a replica at all
REPLICATION_STATES = (REPLICATING, CONNECTING, STOPPED, BROKEN, NO_REPLICA)


def replication_health(status: Mapping[str, object] | None) -> tuple[str, str]:
    """(state, error) of a replica from its `SHOW SLAVE STATUS` row (None: not a replica).

    An error stops the thread it happened in; the IO thread's connection errors (2003:
    cannot connect) leave it "Connecting" and are no error of the data."""
    if not status:
        return NO_REPLICA, ""
    sql_errno, io_errno = int(status.get("Last_SQL_Errno") or 0), int(status.get("Last_IO_Errno") or 0)
    sql, io = status.get("Slave_SQL_Running"), status.get("Slave_IO_Running")
    if sql != "Yes" and sql_errno:
        return BROKEN, f"SQL thread: error {sql_errno}: {status.get('Last_SQL_Error') or ''}".strip()
    if io == "No" and io_errno:
        return BROKEN, f"IO thread: error {io_errno}: {status.get('Last_IO_Error') or ''}".strip()
    if sql != "Yes" or io == "No":
        return STOPPED, ""
    if io == "Connecting":
        return CONNECTING, ""
    return REPLICATING, ""


class MariaDB:
    """One MariaDB server: renders its config, gives its commands, answers admin queries."""

    def __init__(
        self, plan: HostPlan, server_id: int, server_count: int, run_dir: Path, socket_dir: Path,
        settings: DatabaseConfig | None = None, files: LocalFiles | RemoteFiles | None = None,
    ) -> None:
        self.settings = settings or DatabaseConfig()
        self.plan = plan
        self.server_id = server_id
        self.server_count = server_count
        self.dir = server_dir(socket_dir, plan.name)
        self.datadir = self.dir / "data"
        self.socket = socket_path(socket_dir, plan.name)
        self.pid_file = self.dir / "mariadb.pid"
        self.tmpdir = self.dir / "tmp"
        self.files = files or LocalFiles()  # its folders and files are made on its machine
        self.machine = getattr(self.files, "machine", None)
        # The config as the run keeps it; on another machine, mariadbd reads its copy there.
        self.record_file = run_dir / plan.name / "mariadb" / "my.cnf"
        self.config_file = self.record_file if self.machine is None else self.dir / "my.cnf"

    @property
    def name(self) -> str:
        return f"mariadb-{self.plan.name}"

    def render_config(self) -> str:
        return render_my_cnf(self)

    def write_config(self) -> None:
        """The config in the run folder, and the folders the server writes, owned by `mysql`.

        Its own folder is 0711: the web service (another account) reaches the socket in it by
        name, and can list or read nothing there (the binary logs are 0660, the datadir 0700).
        """
        self.files.make_dir(self.dir, DATABASE_USER, 0o711)
        self.files.make_dir(self.tmpdir, DATABASE_USER, 0o700)
        text = self.render_config()
        self.record_file.parent.mkdir(parents=True, exist_ok=True)
        self.record_file.write_text(text)
        if self.config_file != self.record_file:
            self.files.write(self.config_file, text, "root", 0o644)

    def keep_binlogs(self) -> None:
        """Copy the binary logs into the run folder, beside the config (after the server has
        stopped): what each server wrote, for `mariadb-binlog`, once its folder is gone."""
        self.files.copy_out(self.dir, "binlog.*", self.record_file.parent)

    def install_command(self) -> list[str]:
        """Create an empty datadir whose root account logs in only through the socket."""
        return [
            "mariadb-install-db",
            f"--defaults-file={self.config_file}",
            f"--user={DATABASE_USER}",  # the owner of the datadir it creates
            "--auth-root-authentication-method=socket",
            "--skip-name-resolve",  # no DNS inside the emulated hosts: a look-up only waits
            "--skip-test-db",
        ]

    def start_command(self) -> list[str]:
        return ["mariadbd", f"--defaults-file={self.config_file}"]

    def restart_command(self) -> list[str]:
        """Start again after a crash, replication held until `resume_replication` says where from."""
        return [*self.start_command(), "--skip-slave-start"]

    def resume_replication(self) -> None:
        """After a crash: start replicating again, from `replica_start_position`."""
        current = str(self.query("SELECT @@gtid_slave_pos")[0][0])
        start = replica_start_position(current, self.gtid_binlog_pos(), self.server_id)
        statements = [] if start == current else [f"SET GLOBAL gtid_slave_pos = '{start}'"]
        self.execute(*statements, "START SLAVE")

    def connect(self, database: str | None = None, timeout: float = 2.0) -> pymysql.Connection:
        """An admin connection as root over the local socket."""
        return connect_local(self.socket, database=database, connect_timeout=timeout, io_timeout=timeout * 5)

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def execute(self, *statements: str) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)

    def is_ready(self) -> bool:
        return self.query("SELECT 1") == [(1,)]

    def create_users(self, secrets_: RunSecrets, peer_ips: list[str]) -> None:
        """Create the app and replication users on this server only (not replicated)."""
        statements = ["SET sql_log_bin = 0"]
        # mariadb-install-db --user=mysql makes an admin account for the OS account `mysql` as
        # well (through the socket); root's is the one administration needs.
        statements.append(f"DROP USER IF EXISTS '{DATABASE_USER}'@'localhost'")
        # 'localhost' is the local socket (skip-name-resolve): the web service's only way in.
        statements.append(f"CREATE USER 'app'@'localhost' IDENTIFIED BY '{secrets_.app_password}'")
        statements.append(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{APP_SCHEMA}`.* TO 'app'@'localhost'"
        )
        # /health says how replication runs (`SHOW SLAVE STATUS`): reading it is all this allows.
        statements.append("GRANT SLAVE MONITOR ON *.* TO 'app'@'localhost'")
        for ip in peer_ips:
            statements.append(f"CREATE USER 'repl'@'{ip}' IDENTIFIED BY '{secrets_.repl_password}'")
            statements.append(f"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'{ip}'")
        statements.append("SET sql_log_bin = 1")
        self.execute(*statements)

    def create_schema(self) -> None:
        """Create the app schema; run on one server only, the binlog carries it to the others."""
        self.execute(f"CREATE DATABASE `{APP_SCHEMA}`")
        with self.connect(APP_SCHEMA) as conn, conn.cursor() as cur:
            for ddl in APP_TABLES.values():
                cur.execute(ddl)

    def replicate_from(self, source: MariaDB, secrets_: RunSecrets) -> None:
        """Make this server a GTID replica of `source` and start replicating."""
        self.execute(
            f"CHANGE MASTER TO MASTER_HOST='{source.plan.ip}', MASTER_PORT=3306, "
            f"MASTER_USER='repl', MASTER_PASSWORD='{secrets_.repl_password}', "
            "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
            "START SLAVE",
        )

    def replica_status(self) -> dict[str, object]:
        with self.connect() as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone()
        return dict(row) if row else {}

    def replica_running(self) -> bool:
        status = self.replica_status()
        return status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes"

    def has_schema(self) -> bool:
        rows = self.query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (APP_SCHEMA,)
        )
        return rows[0][0] == len(APP_TABLES)

    def write_ids(self) -> set[str]:
        return {row[0] for row in self.query(f"SELECT write_id FROM `{APP_SCHEMA}`.items")}

    def wait_relay_applied(self, timeout: float) -> bool:
        """Wait until this replica has applied all it received from its source (bounded).

        Returns False when `timeout` passed first. A dead source sends nothing more, so what
        is then missing here was never received: that is what asynchronous replication loses.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.replica_status()
            if not status or (
                status.get("Relay_Master_Log_File") == status.get("Master_Log_File")
                and status.get("Exec_Master_Log_Pos") == status.get("Read_Master_Log_Pos")
            ):
                return True
            time.sleep(0.05)
        return False

    # -- after a trial: positions, conflicts and contents -----------------------------------

    def gtid_binlog_pos(self) -> str:
        return str(self.query("SELECT @@gtid_binlog_pos")[0][0])

    def wait_gtid(self, position: str, timeout: float) -> bool:
        """Wait until this replica has applied `position` (GTIDs it received from others)."""
        rows = self.query("SELECT MASTER_GTID_WAIT(%s, %s)", (position, timeout))
        return rows[0][0] == 0

    def drop_replica_sessions(self, replica_ip: str) -> int:
        """Close this server's binlog dump sessions to the replica at `replica_ip`; how many.

        A replica that crashed while its link went down leaves its dump session here blocked
        in a write to a peer that is gone, until TCP's retransmissions, seconds apart by then,
        get a reset. When the replica restarts, its new session waits behind the old one
        (MariaDB's own kill of a "zombie" dump thread does not close its socket), and the
        replica caught up only 6 s after it was back in one run of three. KILL CONNECTION
        closes the socket at once.
        """
        rows = self.query(
            "SELECT id FROM information_schema.processlist WHERE command = 'Binlog Dump' "
            "AND host LIKE %s", (f"{replica_ip}:%",),
        )
        for (session_id,) in rows:
            try:
                self.execute(f"KILL CONNECTION {int(session_id)}")
            except pymysql.MySQLError:
                pass  # it ended on its own in between (1094: unknown thread id)
        return len(rows)

    def stop_replica(self) -> None:
        self.execute("STOP SLAVE")

    def replication_error(self) -> str | None:
        """The replica's own words when it stopped on an error (a conflict), else None."""
        status = self.replica_status()
        if status.get("Last_SQL_Errno"):
            return f"error {status['Last_SQL_Errno']}: {status['Last_SQL_Error']}"
        if status.get("Last_IO_Errno") == 1236:  # the source cannot serve what the replica needs
            return f"error 1236: {status['Last_IO_Error']}"
        return None

    def write_id_counts(self) -> dict[str, int]:
        rows = self.query(f"SELECT write_id, COUNT(*) FROM `{APP_SCHEMA}`.items GROUP BY write_id")
        return {write_id: count for write_id, count in rows}

    def table_checksums(self) -> dict[str, tuple[int, int]]:
        """(row count, CHECKSUM TABLE) of every app table."""
        result = {}
        for table in APP_TABLES:
            count = self.query(f"SELECT COUNT(*) FROM `{APP_SCHEMA}`.`{table}`")[0][0]
            checksum = self.query(f"CHECKSUM TABLE `{APP_SCHEMA}`.`{table}`")[0][1]
            result[table] = (int(count), int(checksum or 0))
        return result


def render_my_cnf(db: MariaDB) -> str:
    """The server's my.cnf. No `log-error`: the error log goes to stderr, which the process
    runner keeps."""
    return f"""[mariadbd]
user = {DATABASE_USER}
datadir = {db.datadir}
socket = {db.socket}
pid-file = {db.pid_file}
bind-address = {db.plan.ip}
port = 3306
skip-name-resolve
# Every database starts read-only: the controller makes the one holding the VIP writable.
read-only = ON
server-id = {db.server_id}
gtid-domain-id = {db.server_id}
log-bin = {db.dir / "binlog"}
log-slave-updates
binlog-format = ROW
gtid-strict-mode = ON
auto-increment-increment = {db.server_count}
auto-increment-offset = {db.server_id}
# A replica notices a dead primary within seconds, not the default minute.
slave-net-timeout = 5
# The testbed crashes processes, never the machine: what a killed mariadbd wrote is safe in
# the OS page cache, so a commit need not wait for the disk. Waiting for it (the default)
# ties every write to the fsync latency of a shared virtual disk, which stalls for hundreds of
# milliseconds at times and then looks like a dead server.
innodb-flush-log-at-trx-commit = 2
sync-binlog = 0
innodb-buffer-pool-size = 64M
innodb-log-file-size = 16M
max-connections = 300
# A private tmpdir: mariadbd deletes every `#sql*` file in its tmpdir when it starts, so with a
# shared /tmp one server starting removes the temporary tables of another one's bootstrap, and
# mariadb-install-db then fails ("Unknown table 'mysql.tmp_user_sys'": 4 of 120 installs run three
# at a time, 0 of 120 with private tmpdirs).
tmpdir = {db.tmpdir}
""" + semi_sync_config(db.settings)
