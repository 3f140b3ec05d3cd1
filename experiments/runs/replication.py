"""Replication lag, measured the way a user of the data would feel it: a heartbeat row.

Every 50 ms a heartbeat row is written on the database of the server holding the VIP (as
the controller's status endpoint says). For each other server, a waiter asks that server's
database to wait until it has applied that very transaction (`MASTER_GTID_WAIT` on the
heartbeat's GTID) and records how long after the write it was applied. Unlike
`Seconds_Behind_Master`, which counts whole seconds, this is exact to the millisecond; and
when replication is cut, the heartbeats pile up unapplied and the lag recorded for each grows,
until the replica catches up.

    <trial>/replication.csv: time (epoch s, when the heartbeat was written), source, target, lag_ms

The monitor runs in the experiment's own process, in threads, and reaches the databases over
their local sockets as root (it writes only its own `heartbeat` table; root is not held back
by `read_only`).
"""

from __future__ import annotations

import csv
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pymysql

from services.mariadb import MariaDB

HEARTBEAT_S = 0.05
WAIT_STEP_S = 1.0  # one MASTER_GTID_WAIT call waits at most this long, then tries again
COLUMNS = ["time", "source", "target", "lag_ms"]


class ReplicationMonitor:
    def __init__(
        self,
        databases: dict[str, MariaDB],
        active: Callable[[], str | None],
        out: Path,
        semi_sync: bool = False,
        cut_off: Callable[[], set[str]] = set,
    ) -> None:
        self.databases = databases
        # The servers whose link is down now. The monitor reaches a database through its local
        # socket, not the network: a heartbeat written on a cut-off server in the moment before
        # the VIP leaves it would be a write no client could make, and would never replicate.
        self.cut_off = cut_off
        self.semi_sync = semi_sync
        self.semi_sync_on: dict[str, bool] = {}  # per server: at the start, then while it holds the VIP
        self.fallbacks: list[tuple[float, str]] = []  # when a primary fell back to asynchronous
        self.active = active  # who holds the VIP now
        self.file = open(out, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(COLUMNS)
        self.file.flush()  # a run killed before the first row still leaves a readable file
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pending = {name: queue.Queue() for name in databases}  # heartbeats to wait for
        self.threads = [threading.Thread(target=self._beat, daemon=True)] + [
            threading.Thread(target=self._wait, args=(name,), daemon=True) for name in databases
        ]

    def start(self) -> None:
        if self.semi_sync:
            # Every server's state from the start, not only the active one's: the server that
            # takes the VIP after a crash falls back as soon as it writes (its replica is the
            # dead server), and that fallback counts as much as the old primary's.
            for name, db in self.databases.items():
                try:
                    rows = db.query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")
                except (pymysql.MySQLError, OSError):
                    continue
                self.semi_sync_on[name] = bool(rows) and rows[0][1] == "ON"
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(WAIT_STEP_S + 1)
        with self.lock:
            self.file.close()

    @staticmethod
    def _close(connections: list[pymysql.Connection | None]) -> None:
        """Say goodbye to each database (COM_QUIT): a connection merely dropped is logged by the
        server as aborted, at the end of every trial."""
        for conn in connections:
            if conn is not None:
                try:
                    conn.close()
                except (pymysql.MySQLError, OSError):
                    pass  # that database is gone already

    def _beat(self) -> None:
        """Write a heartbeat on the active database every HEARTBEAT_S; queue it for the others."""
        connections: dict[str, pymysql.Connection] = {}
        try:
            self._beat_until_stopped(connections)
        finally:
            self._close(list(connections.values()))

    def _beat_until_stopped(self, connections: dict[str, pymysql.Connection]) -> None:
        seq = 0
        while not self.stopping.wait(HEARTBEAT_S):
            source = self.active()
            if source is None or source in self.cut_off():
                continue
            seq += 1
            try:
                conn = connections.get(source) or self.databases[source].connect("app", timeout=0.5)
                connections[source] = conn
                written_at = time.time()
                with conn.cursor() as cur:
                    cur.execute("REPLACE INTO heartbeat (server, seq, written_at) VALUES (%s, %s, NOW(6))",
                                (source, seq))
                    cur.execute("SELECT @@last_gtid")
                    gtid = cur.fetchone()[0]
                    if self.semi_sync:
                        cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")
                        row = cur.fetchone()
                        self._semi_sync_seen(source, row is not None and row[1] == "ON")
            except (pymysql.MySQLError, OSError):
                connections.pop(source, None)  # the active database is gone: nothing to measure
                continue
            for name, pending in self.pending.items():
                if name != source:
                    pending.put((source, gtid, written_at))

    def _semi_sync_seen(self, source: str, on: bool) -> None:
        if self.semi_sync_on.get(source) and not on:
            self.fallbacks.append((time.time(), source))
        self.semi_sync_on[source] = on

    def _wait(self, target: str) -> None:
        """Wait, in order, until `target` applied each heartbeat; record how long it took."""
        holder: list[pymysql.Connection | None] = [None]
        try:
            self._wait_until_stopped(target, holder)
        finally:
            self._close(holder)

    def _wait_until_stopped(self, target: str, holder: list[pymysql.Connection | None]) -> None:
        conn = None
        while not self.stopping.is_set():
            try:
                source, gtid, written_at = self.pending[target].get(timeout=0.2)
            except queue.Empty:
                continue
            while not self.stopping.is_set():
                try:
                    conn = holder[0] = conn or self.databases[target].connect(timeout=0.5)
                    with conn.cursor() as cur:
                        cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (gtid, WAIT_STEP_S))
                        applied = cur.fetchone()[0] == 0
                except (pymysql.MySQLError, OSError):
                    conn = None
                    break  # the target is down: this heartbeat cannot be measured there
                if applied:
                    self._record(written_at, source, target, (time.time() - written_at) * 1000)
                    break

    def _record(self, written_at: float, source: str, target: str, lag_ms: float) -> None:
        with self.lock:
            if not self.file.closed:
                self.writer.writerow([f"{written_at:.6f}", source, target, f"{lag_ms:.3f}"])
                self.file.flush()
