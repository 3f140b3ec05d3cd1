"""The replication monitor (experiments/runs/replication.py) on two real MariaDB servers.

The servers are the web app tests' kind (tests/test_webapp.py: UNIX sockets in a temp folder,
no TCP), with no replication between them: the test itself plays the replica's part, by
moving a database's `gtid_slave_pos` past the heartbeats, which is what `MASTER_GTID_WAIT`
waits for. So the test decides when a heartbeat is applied, and can check the lag recorded.
A third database, whose socket nobody listens on, is a server that is down.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from experiments.runs import replication
from experiments.runs.replication import COLUMNS, ReplicationMonitor
from services.mariadb import MariaDB
from tests.test_webapp import running_databases
from topology.config import HostPlan

pytestmark = pytest.mark.machine  # real MariaDB servers, started as mysql

# Shorter steps than a trial's, to keep the tests fast. The wait step (1 s in a trial) bounds how
# late a waiter sees what the test applied: setting gtid_slave_pos wakes no MASTER_GTID_WAIT.
HEARTBEAT_S = 0.01
WAIT_STEP_S = 0.05


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MariaDB]]:
    with running_databases(tmp_path_factory.mktemp("replication"), 2) as (databases, _):
        yield {db.plan.name: db for db in databases}


@pytest.fixture(autouse=True)
def short_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replication, "HEARTBEAT_S", HEARTBEAT_S)
    monkeypatch.setattr(replication, "WAIT_STEP_S", WAIT_STEP_S)


@pytest.fixture(autouse=True)
def no_heartbeat_yet(servers: dict[str, MariaDB]) -> None:
    """Each monitor counts its heartbeats from 1: no row left by the test before."""
    for db in servers.values():
        db.execute("DELETE FROM app.heartbeat")


@pytest.fixture
def down(tmp_path: Path) -> MariaDB:
    plan = HostPlan("tertiary", "10.0.0.13", "00:00:00:00:00:0d", 5)
    return MariaDB(plan, 3, 3, tmp_path, tmp_path / "no-sockets")


class Holder:
    """Who holds the VIP, as Testbed.active_server says; `beats` calls at most, then no one."""

    def __init__(self, name: str | None, beats: int | None = None) -> None:
        self.name = name
        self.beats = beats

    def __call__(self) -> str | None:
        if self.beats is not None:
            if self.beats == 0:
                return None
            self.beats -= 1
        return self.name


StartMonitor = Callable[..., ReplicationMonitor]


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[StartMonitor]:
    """Starts monitors writing tmp_path/replication.csv; stops any still running at the end."""
    started: list[ReplicationMonitor] = []

    def start(databases: dict[str, MariaDB], holder: Holder, semi_sync: bool = False,
              cut_off: Callable[[], set[str]] = set) -> ReplicationMonitor:
        out = tmp_path / "replication.csv"
        started.append(ReplicationMonitor(databases, holder, out, semi_sync, cut_off))
        started[-1].start()
        return started[-1]

    yield start
    for each in started:
        each.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def heartbeats(db: MariaDB) -> dict[str, int]:
    """The heartbeat rows on one database: writer -> its last sequence number."""
    return {server: int(seq) for server, seq in db.query("SELECT server, seq FROM app.heartbeat")}


def apply(target: MariaDB, source: MariaDB) -> None:
    """Play the replica: `target` has now applied everything `source` wrote."""
    parts = {p.split("-")[0]: p for pos in (source.gtid_binlog_pos(), target.gtid_binlog_pos())
             for p in pos.split(",") if p}
    target.execute(f"SET GLOBAL gtid_slave_pos = '{','.join(sorted(parts.values()))}'")


def recorded(path: Path | str) -> int:
    """How many lag rows the file has so far (the header reaches the file with the first row)."""
    return max(0, len(Path(path).read_text().splitlines()) - 1)


def lag_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


# -------------------------------------------------------------------------------------------------


def test_heartbeats_are_written_on_the_database_holding_the_vip(servers: dict[str, MariaDB],
                                                                monitor: StartMonitor) -> None:
    primary, secondary = servers["primary"], servers["secondary"]
    holder = Holder("primary")
    monitor(servers, holder)
    assert wait_for(lambda: heartbeats(primary).get("primary", 0) >= 3)
    holder.name = "secondary"  # the VIP moved
    assert wait_for(lambda: heartbeats(secondary).get("secondary", 0) >= 1)
    last_on_primary = heartbeats(primary)["primary"]
    assert wait_for(lambda: heartbeats(secondary)["secondary"] >= last_on_primary + 3)
    assert heartbeats(primary) == {"primary": last_on_primary}  # nothing more where the VIP was
    assert set(heartbeats(secondary)) == {"secondary"}  # each writes only where it holds the VIP


def test_no_heartbeat_while_no_one_holds_the_vip(servers: dict[str, MariaDB], monitor: StartMonitor,
                                                 tmp_path: Path) -> None:
    running = monitor(servers, Holder(None))
    time.sleep(HEARTBEAT_S * 4)
    running.stop()
    assert [heartbeats(db) for db in servers.values()] == [{}, {}]
    assert lag_rows(tmp_path / "replication.csv") == []


def test_no_heartbeat_on_a_server_whose_link_is_down(servers: dict[str, MariaDB], monitor: StartMonitor,
                                                     tmp_path: Path) -> None:
    """Before the VIP leaves a cut-off server, the monitor (on its local socket) could still
    write there what no client could, and what never replicates."""
    cut: set[str] = {"primary"}
    running = monitor(servers, Holder("primary"), cut_off=lambda: cut)
    time.sleep(HEARTBEAT_S * 4)
    assert [heartbeats(db) for db in servers.values()] == [{}, {}]
    cut.clear()  # the link is back
    assert wait_for(lambda: heartbeats(servers["primary"]).get("primary", 0) >= 1)
    running.stop()


def test_the_lag_is_the_time_until_the_other_database_applied_the_heartbeat(
        servers: dict[str, MariaDB], monitor: StartMonitor, tmp_path: Path) -> None:
    primary, secondary = servers["primary"], servers["secondary"]
    monitor(servers, Holder("primary", beats=4))
    assert wait_for(lambda: heartbeats(primary).get("primary") == 4)
    time.sleep(0.2)  # the replica is 200 ms late (at least) on every heartbeat
    applied_at = time.time()
    apply(secondary, primary)
    out = tmp_path / "replication.csv"
    assert wait_for(lambda: recorded(out) == 4)
    rows = lag_rows(out)
    assert {(row["source"], row["target"]) for row in rows} == {("primary", "secondary")}
    written = [float(row["time"]) for row in rows]
    assert written == sorted(written)  # each heartbeat in the order it was written
    for row in rows:
        assert re.fullmatch(r"\d+\.\d{6}", row["time"]) and re.fullmatch(r"\d+\.\d{3}", row["lag_ms"])
        seen_at = float(row["time"]) + float(row["lag_ms"]) / 1000
        # Seen once applied, one wait step later at most (and a loaded machine may stall).
        assert applied_at - 0.002 <= seen_at <= applied_at + WAIT_STEP_S + 2.0, row


def test_a_database_that_is_down_is_skipped_and_the_others_still_measured(
        servers: dict[str, MariaDB], down: MariaDB, monitor: StartMonitor, tmp_path: Path) -> None:
    primary, secondary = servers["primary"], servers["secondary"]
    holder = Holder("tertiary")  # the VIP is on the dead server: nothing can be written
    monitor({**servers, "tertiary": down}, holder)
    time.sleep(HEARTBEAT_S * 3)
    assert heartbeats(primary) == {}  # no write reached any other database either
    holder.name, holder.beats = "primary", 3
    out = tmp_path / "replication.csv"
    # The secondary keeps applying what the primary writes, as a replica does.
    assert wait_for(lambda: apply(secondary, primary) or recorded(out) == 3)
    time.sleep(HEARTBEAT_S * 2)
    assert recorded(out) == 3  # the three heartbeats written, and no row for the dead server
    assert {row["target"] for row in lag_rows(out)} == {"secondary"}


def test_semi_sync_falling_back_is_seen_once_per_server(servers: dict[str, MariaDB], down: MariaDB,
                                                        monitor: StartMonitor) -> None:
    """The server that takes the VIP falls back as soon as it writes (its replica is the dead
    server): that fall counts as much as the old primary's, so every state is read at the start."""
    primary = servers["primary"]
    for db in servers.values():  # no replica acknowledges: the first commit waits 10 ms, then falls back
        db.execute("SET GLOBAL rpl_semi_sync_master_timeout = 10",
                   "SET GLOBAL rpl_semi_sync_master_enabled = ON")
    try:
        holder = Holder("primary")
        running = monitor({**servers, "tertiary": down}, holder, semi_sync=True)
        # Every state from the start; the dead server's could not be read.
        assert set(running.semi_sync_on) == {"primary", "secondary"}
        assert wait_for(lambda: len(running.fallbacks) == 1)
        first = heartbeats(primary)["primary"]
        assert wait_for(lambda: heartbeats(primary)["primary"] >= first + 3)
        assert running.semi_sync_on == {"primary": False, "secondary": True}
        holder.name = "secondary"  # the VIP moved: the secondary's first write falls back too
        assert wait_for(lambda: len(running.fallbacks) == 2)
        time.sleep(HEARTBEAT_S * 3)
        assert [server for _, server in running.fallbacks] == ["primary", "secondary"]  # once each
        assert running.semi_sync_on == {"primary": False, "secondary": False}
    finally:
        for db in servers.values():
            db.execute("SET GLOBAL rpl_semi_sync_master_enabled = OFF")


def test_without_semi_sync_its_state_is_not_watched(servers: dict[str, MariaDB],
                                                    monitor: StartMonitor) -> None:
    primary = servers["primary"]
    primary.execute("SET GLOBAL rpl_semi_sync_master_timeout = 10",
                    "SET GLOBAL rpl_semi_sync_master_enabled = ON")
    try:
        running = monitor(servers, Holder("primary", beats=2))
        assert wait_for(lambda: heartbeats(primary).get("primary") == 2)
        assert (running.semi_sync_on, running.fallbacks) == ({}, [])
    finally:
        primary.execute("SET GLOBAL rpl_semi_sync_master_enabled = OFF")


def test_stop_ends_every_thread_even_while_a_heartbeat_waits(servers: dict[str, MariaDB],
                                                             monitor: StartMonitor, tmp_path: Path) -> None:
    primary = servers["primary"]
    running = monitor(servers, Holder("primary", beats=1))
    assert wait_for(lambda: heartbeats(primary).get("primary") == 1)
    time.sleep(WAIT_STEP_S * 2)  # the secondary's waiter is inside MASTER_GTID_WAIT: never applied
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < WAIT_STEP_S + 2.0  # a wait step, not the heartbeat's end
    assert not any(thread.is_alive() for thread in running.threads)
    assert running.file.closed
    assert lag_rows(tmp_path / "replication.csv") == []  # a header and no row: nothing was applied


def aborted_connections(db: MariaDB) -> int:
    """Connections whose client went away without saying goodbye (COM_QUIT)."""
    return int(db.query("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")[0][1])


def test_stop_closes_its_database_connections(servers: dict[str, MariaDB], monitor: StartMonitor) -> None:
    primary, secondary = servers["primary"], servers["secondary"]
    before = {name: aborted_connections(db) for name, db in servers.items()}
    running = monitor(servers, Holder("primary", beats=2))
    assert wait_for(lambda: apply(secondary, primary) or recorded(running.file.name) == 2)
    running.stop()
    # A connection closed by the client says goodbye (COM_QUIT); one merely dropped is logged.
    assert not wait_for(lambda: any(aborted_connections(db) > before[name] for name, db in servers.items()),
                        timeout=1.0)
