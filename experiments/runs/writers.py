"""Which databases are writable, sampled every few milliseconds: never two writers, measured.

Two writable databases at once is the failure a master-master pair exists to avoid: a write
on each could conflict, or one be lost when the other wins. Every trial samples each
database's `read_only` every SAMPLE_S from a thread of its own, and writes a row each time
what a database answers changes:

    <trial>/read-only.csv: time (epoch s, when the answer came), server, read_only
                           (1, 0, or empty: no answer within ANSWER_S, frozen or down),
                           previous (when the answer before it came: the last time the old
                           state was seen)

`experiments/analysis/metrics.both_writable` turns the rows into `both_writable_ms`: the time
during which more than one database was *seen* writable (each state from the first answer
that showed it to the last), which sampling cannot inflate; and `both_writable_max_ms`, the
most it can have been (each state until the answer that showed it changed), which includes
the sampler's own resolution. A database that does not answer is not counted as writable: it
takes no write either. The moment a frozen one wakes up still writable, its answer counts.

The sampler runs in the experiment's own process and reaches the databases over their local
sockets as root, one connection each, kept open.
"""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pymysql

from services.mariadb import MariaDB, connect_local

SAMPLE_S = 0.005
ANSWER_S = 0.2  # a database that does not answer within this is "no answer" until it does
COLUMNS = ["time", "server", "read_only", "previous"]


class ReadOnlySampler:
    """Samples every database's `read_only`; records each change of its answer."""

    def __init__(self, databases: dict[str, MariaDB], out: Path) -> None:
        self.databases = databases
        self.file = open(out, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(COLUMNS)
        self.file.flush()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.last: dict[str, str] = {}  # each database's last answer (its thread's own entry)
        self.seen_at: dict[str, float] = {}  # when that answer was last given
        self.threads = [threading.Thread(target=self._sample, args=(name,), daemon=True,
                                         name=f"read-only-{name}") for name in databases]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Stop sampling; each database's last answer is written again with the time of the
        stop, so that a window still open at the end has an end."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(ANSWER_S * 2 + 1)
        stopped = time.time()
        for server, answer in self.last.items():
            self._record(stopped, server, answer, self.seen_at.get(server, stopped))
        with self.lock:
            self.file.close()

    def _sample(self, server: str) -> None:
        conn: pymysql.Connection | None = None
        try:
            while not self.stopping.wait(SAMPLE_S):
                asked = time.time()
                try:
                    conn = conn or connect_local(self.databases[server].socket, connect_timeout=ANSWER_S,
                                                 io_timeout=ANSWER_S)
                    with conn.cursor() as cur:
                        cur.execute("SELECT @@read_only")
                        answer = str(int(cur.fetchone()[0]))
                    at = time.time()
                except (pymysql.MySQLError, OSError):
                    # Not known since it was asked: a frozen database is not taken as writable
                    # for the time it took to give up on it.
                    conn, answer, at = None, "", asked
                if answer != self.last.get(server):
                    self._record(at, server, answer, self.seen_at.get(server, at))
                    self.last[server] = answer
                self.seen_at[server] = at
        finally:
            if conn is not None:
                try:
                    conn.close()
                except (pymysql.MySQLError, OSError):
                    pass

    def _record(self, at: float, server: str, answer: str, previous: float) -> None:
        with self.lock:
            if not self.file.closed:
                self.writer.writerow([f"{at:.6f}", server, answer, f"{previous:.6f}"])
                self.file.flush()
