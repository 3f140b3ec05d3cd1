"""The web service's WSGI app (services/webapp.py): its routes and its answers.

Every request is a WSGI call straight into `application`, checked by wsgiref's validator. Where
an answer comes from the database, a real MariaDB gives it: one `mariadbd` for the module, on a
UNIX socket in a temp folder (`--skip-networking`: no TCP port), with the app's account and
schema made the way a run makes them. Elsewhere the app points at a socket nobody listens on,
so a route that asked the database when it should not would answer 503. A missing mariadbd
fails the tests (`make setup` installs it); it never skips them.
"""

from __future__ import annotations

import io
import json
import queue
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pymysql
import pytest

from services import webapp
from services.mariadb import MariaDB
from services.prober_words import WordSender
from services.secrets import RunSecrets
from topology.config import DatabaseConfig, TestbedConfig

pytestmark = pytest.mark.machine  # real MariaDB servers, started as mysql

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


# -- a real MariaDB on a UNIX socket ------------------------------------------------------------


def _fail_unless_installed() -> None:
    for tool in ("mariadb-install-db", "mariadbd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make setup` (it installs mariadb-server)",
                        pytrace=False)


def _wait_ready(db: MariaDB, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{db.name} exited with {process.returncode}:\n{log.read_text()[-2000:]}",
                        pytrace=False)
        try:
            if db.is_ready():
                return
        except pymysql.MySQLError:
            pass  # not listening yet
        time.sleep(0.02)
    pytest.fail(f"{db.name} did not answer within {READY_TIMEOUT_S:.0f} s", pytrace=False)


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each server we started, by its PID; SIGKILL if it does not end."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_databases(folder: Path, count: int = 1,
                      settings: DatabaseConfig | None = None) -> Iterator[tuple[list[MariaDB], RunSecrets]]:
    """`count` MariaDB servers (primary, secondary, ...), each with the app's user and schema and
    writable, as the controller makes the active one; no replication between them."""
    _fail_unless_installed()
    # As a run's socket folder: under /tmp, where `mysql` can pass (pytest's folders are 0700).
    sockets = Path(tempfile.mkdtemp(prefix="webapp-test-"))
    processes: list[subprocess.Popen] = []
    try:
        sockets.chmod(0o711)
        plans = TestbedConfig().server_plans[:count]
        databases = [MariaDB(plan, i + 1, count, folder, sockets, settings) for i, plan in enumerate(plans)]
        for db in databases:
            db.write_config()
            # --skip-networking on the command line wins over the config's bind-address and port.
            installed = subprocess.run([*db.install_command(), "--skip-networking"],
                                       capture_output=True, text=True, timeout=120)
            if installed.returncode != 0:
                pytest.fail(f"mariadb-install-db failed:\n{installed.stdout}{installed.stderr}",
                            pytrace=False)
        logs = [folder / f"{db.name}.log" for db in databases]
        for db, log in zip(databases, logs, strict=True):
            with open(log, "wb") as output:  # its error log is its stderr
                processes.append(subprocess.Popen([*db.start_command(), "--skip-networking"],
                                                  stdout=output, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
        secrets = RunSecrets.generate(sockets / "secrets")
        for db, process, log in zip(databases, processes, logs, strict=True):
            _wait_ready(db, process, log)
            db.create_users(secrets, peer_ips=[])
            db.create_schema()
            db.execute("SET GLOBAL read_only = OFF")
        yield databases, secrets
    finally:
        _stop(processes)
        shutil.rmtree(sockets)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    with running_databases(tmp_path_factory.mktemp("webapp")) as (databases, _):
        yield databases[0]


# -- calling the app ----------------------------------------------------------------------------


@dataclass
class Answer:
    status: str
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split()[0])

    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json"
        return json.loads(self.body)


def call(method: str, path: str, body: bytes = b"", validate: bool = True, **environ: str) -> Answer:
    """One request, as gunicorn would hand it to the app."""
    env: dict[str, Any] = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
                           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), **environ}
    setup_testing_defaults(env)
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.update(status=status, headers=dict(headers))
        return lambda data: None

    app = validator(webapp.application) if validate else webapp.application
    result = app(env, start_response)
    try:
        payload = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Answer(started["status"], started["headers"], payload)


@pytest.fixture(autouse=True)
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app's settings for one test: node `primary`, an empty pool, and no database (a socket
    nobody listens on) until a test points it at one."""
    monkeypatch.setattr(webapp, "NODE", "primary")
    monkeypatch.setattr(webapp, "DB_SOCKET", str(tmp_path / "nobody.sock"))
    monkeypatch.setattr(webapp, "SECRETS_DIR", tmp_path)
    monkeypatch.setattr(webapp, "_pool", queue.LifoQueue())
    monkeypatch.setattr(webapp, "_db_down_until", 0.0)
    (tmp_path / "app.password").write_text("not-the-password\n")
    yield
    while not webapp._pool.empty():
        webapp._pool.get_nowait().close()


@pytest.fixture
def with_database(database: MariaDB, monkeypatch: pytest.MonkeyPatch) -> MariaDB:
    """The app pointed at the module's real database, as WebService's environment points it."""
    monkeypatch.setattr(webapp, "DB_SOCKET", str(database.socket))
    monkeypatch.setattr(webapp, "SECRETS_DIR", database.socket.parent.parent / "secrets")
    return database


def post_item(write_id: Any, payload: str = "") -> Answer:
    return call("POST", "/api/items", json.dumps({"write_id": write_id, "payload": payload}).encode())


# -- routes and bad input: no database needed -----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/health/"),
        ("GET", "/api/items/"),
        ("GET", "/api/items/abc"),
        ("GET", "/api/items/-1"),
        ("GET", "/api/items/" + "9" * 20),  # more digits than a BIGINT has
        # A known path with another method: the app has no 405, it says "no route" the same way.
        ("POST", "/health"),
        ("DELETE", "/api/items/1"),
        ("PUT", "/api/items"),
        ("GET", "/api/items"),
        ("POST", "/"),
    ],
)
def test_a_request_with_no_route_is_404_naming_it(method: str, path: str) -> None:
    answer = call(method, path)
    assert answer.code == 404
    assert answer.json() == {"error": f"no route {method} {path}"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", 'body must be JSON with a "write_id"'),
        (b"not json", 'body must be JSON with a "write_id"'),
        (b"[1, 2]", 'body must be JSON with a "write_id"'),
        (b"null", 'body must be JSON with a "write_id"'),
        (b'{"payload": "x"}', 'body must be JSON with a "write_id"'),
        (b'{"write_id": ""}', "write_id: 1-64 letters, digits or _.:-"),
        (b'{"write_id": "a b"}', "write_id: 1-64 letters, digits or _.:-"),
        (b'{"write_id": "x\'; DROP TABLE items; --"}', "write_id: 1-64 letters, digits or _.:-"),
        (json.dumps({"write_id": "w" * 65}).encode(), "write_id: 1-64 letters, digits or _.:-"),
        (b'\xff\xfe{"write_id": "w-1"}', 'body must be JSON with a "write_id"'),  # not UTF-8
    ],
)
def test_a_bad_write_is_400_before_the_database_is_asked(body: bytes, says: str) -> None:
    answer = call("POST", "/api/items", body)
    assert answer.code == 400
    assert answer.json() == {"error": says}


def test_a_body_is_read_up_to_64_kib_and_a_bad_length_reads_none() -> None:
    # A valid JSON body cut at 64 KiB is no longer JSON.
    big = json.dumps({"write_id": "w-big", "payload": "x" * 70_000}).encode()
    assert call("POST", "/api/items", big).code == 400
    answer = call("POST", "/api/items", b'{"write_id": "w-1"}', validate=False, CONTENT_LENGTH="abc")
    assert answer.code == 400  # nothing was read, and an empty body has no write_id


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [("GET", "/nope", "application/json"), ("GET", "/health", "application/json"),
     ("GET", "/", "text/html; charset=utf-8"), ("POST", "/api/items", "application/json")],
)
def test_every_answer_says_which_server_sent_it_and_how_long_it_is(method: str, path: str,
                                                                    content_type: str) -> None:
    answer = call(method, path)
    assert answer.headers["X-Served-By"] == "primary"
    assert answer.headers["Content-Type"] == content_type
    assert int(answer.headers["Content-Length"]) == len(answer.body) > 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/api/items", b'{"write_id": "w-down"}'), ("GET", "/api/items/1", b"")],
)
def test_without_its_database_the_app_answers_503(method: str, path: str, body: bytes) -> None:
    answer = call(method, path, body)
    assert answer.code == 503
    assert answer.json()["error"]


def test_health_without_a_database_is_503_and_says_so() -> None:
    answer = call("GET", "/health")
    assert answer.code == 503
    assert {k: answer.json()[k] for k in ("node", "db")} == {"node": "primary", "db": "down"}


def test_the_page_without_a_database_is_503_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webapp, "NODE", "<b>primary</b>")
    answer = call("GET", "/")
    assert answer.code == 503
    page = answer.body.decode()
    assert "<p>database error: " in page
    assert "<h1>Served by &lt;b&gt;primary&lt;/b&gt;</h1>" in page  # the node name is escaped


def test_after_a_refused_connect_requests_fail_at_once_without_retrying(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webapp, "DB_RETRY_AFTER_S", 10.0)  # the second call comes well within it
    first = call("GET", "/health").json()
    second = call("GET", "/health").json()
    assert "not retried yet" not in first["error"]  # the first one did try
    assert second["error"] == "(2003, 'the local database is down (not retried yet)')"


def test_with_the_database_away_the_pool_stays_empty() -> None:
    webapp.fill_pool()  # what the worker does when it starts; it must not fail
    assert webapp._pool.empty()


# -- answers from a real database ---------------------------------------------------------------


def test_health_says_up_writable_and_the_gtid_position(with_database: MariaDB) -> None:
    answer = call("GET", "/health")
    assert answer.code == 200
    gtid = with_database.query("SELECT @@gtid_current_pos")[0][0]
    assert answer.json() == {"node": "primary", "db": "up", "read_only": False, "gtid": gtid,
                             "replication": "none", "replication_error": ""}


def test_health_says_how_replication_runs(with_database: MariaDB) -> None:
    # A source that is not there: the IO thread keeps trying to connect, which is no error.
    with_database.execute("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=9, MASTER_USER='x', "
                          "MASTER_CONNECT_RETRY=1", "START SLAVE")
    try:
        deadline = time.monotonic() + 10
        while call("GET", "/health").json()["replication"] != "connecting" and time.monotonic() < deadline:
            time.sleep(0.05)  # the IO thread's first attempt
        assert call("GET", "/health").json()["replication"] == "connecting"
    finally:
        with_database.execute("STOP SLAVE", "RESET SLAVE ALL")
    assert call("GET", "/health").json()["replication"] == "none"


def test_health_says_when_the_database_is_read_only(with_database: MariaDB) -> None:
    with_database.execute("SET GLOBAL read_only = ON")
    try:
        answer = call("GET", "/health")
    finally:
        with_database.execute("SET GLOBAL read_only = OFF")
    assert answer.code == 200  # read-only is a standby, not a failure
    assert answer.json()["read_only"] is True


def test_a_write_is_answered_with_its_id_and_reads_back(with_database: MariaDB) -> None:
    created = post_item("w-read-back", "hello")
    assert created.code == 201
    item = created.json()
    assert (item["write_id"], item["served_by"]) == ("w-read-back", "primary")
    read = call("GET", f"/api/items/{item['id']}")
    assert read.code == 200
    row = read.json()
    assert {k: row[k] for k in ("id", "write_id", "payload", "served_by")} == {
        "id": item["id"], "write_id": "w-read-back", "payload": "hello", "served_by": "primary"}
    assert datetime.fromisoformat(row["created_at"])  # an ISO time, to the microsecond
    assert "w-read-back" in with_database.write_ids()


def test_the_same_write_id_twice_is_409_and_stored_once(with_database: MariaDB) -> None:
    assert post_item("w-twice").code == 201
    again = post_item("w-twice")
    assert again.code == 409
    assert again.json() == {"error": "write_id w-twice already written"}
    assert with_database.write_id_counts()["w-twice"] == 1


def test_a_long_payload_is_cut_to_255_characters(with_database: MariaDB) -> None:
    item = post_item("w-long", "y" * 300).json()
    assert call("GET", f"/api/items/{item['id']}").json()["payload"] == "y" * 255


def test_a_numeric_write_id_is_stored_as_its_text(with_database: MariaDB) -> None:
    assert post_item(4242).json()["write_id"] == "4242"
    assert "4242" in with_database.write_ids()


def test_an_item_that_does_not_exist_is_404(with_database: MariaDB) -> None:
    answer = call("GET", "/api/items/987654321")
    assert answer.code == 404
    assert answer.json() == {"error": "no item 987654321"}


def test_a_read_only_database_refuses_the_write_with_503(with_database: MariaDB) -> None:
    """A fenced server (read_only, as the controller leaves every standby) keeps no write."""
    with_database.execute("SET GLOBAL read_only = ON")
    try:
        answer = post_item("w-fenced")
    finally:
        with_database.execute("SET GLOBAL read_only = OFF")
    assert answer.code == 503
    assert "read-only" in answer.json()["error"]
    assert "w-fenced" not in with_database.write_ids()


def test_the_page_shows_the_ten_latest_writes_newest_first(with_database: MariaDB) -> None:
    ids = [post_item(f"w-page-{n}").json()["id"] for n in range(11)]
    answer = call("GET", "/")
    assert answer.code == 200
    page = answer.body.decode()
    assert "<h1>Served by primary</h1>" in page
    shown = [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", page)]
    assert shown == sorted(ids, reverse=True)[:10]
    assert "<td>w-page-10</td><td>primary</td>" in page


def test_the_pool_is_filled_when_the_worker_starts(with_database: MariaDB) -> None:
    webapp.fill_pool()
    pooled = list(webapp._pool.queue)
    assert len(pooled) == webapp.POOL_SIZE
    sessions = {row[0] for row in with_database.query(
        "SELECT id FROM information_schema.processlist WHERE user = 'app'")}
    assert {conn.thread_id() for conn in pooled} <= sessions


def test_a_connection_the_database_dropped_fails_one_request_and_is_not_reused(
        with_database: MariaDB) -> None:
    webapp.fill_pool()
    top = webapp._pool.queue[-1]  # the next request takes the last connection put back
    with_database.execute(f"KILL CONNECTION {top.thread_id()}")
    assert call("GET", "/health").code == 503
    assert top not in webapp._pool.queue and webapp._pool.qsize() == webapp.POOL_SIZE - 1
    assert call("GET", "/health").code == 200


def test_after_the_retry_pause_the_app_connects_again(with_database: MariaDB,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webapp, "DB_RETRY_AFTER_S", 0.3)
    monkeypatch.setattr(webapp, "DB_SOCKET", str(with_database.socket.parent / "nobody.sock"))
    assert call("GET", "/health").code == 503
    monkeypatch.setattr(webapp, "DB_SOCKET", str(with_database.socket))  # the database is back
    assert "not retried yet" in call("GET", "/health").json()["error"]
    time.sleep(0.35)
    assert call("GET", "/health").code == 200


@pytest.mark.parametrize(("error", "said"), [
    (pymysql.OperationalError(2013, "Lost connection to MySQL server during query"), True),
    (pymysql.OperationalError(2002, "Can't connect to local server"), True),
    (pymysql.InterfaceError(0, ""), True),
    (pymysql.OperationalError(1290, "The MariaDB server is running with the --read-only option"), False),
])
def test_the_web_service_tells_the_prober_when_it_loses_its_database(tmp_path, monkeypatch, error, said):
    import socket

    path = tmp_path / "wake.sock"
    prober = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    prober.bind(str(path))
    prober.settimeout(0.2)
    monkeypatch.setattr(webapp, "_words", WordSender(str(path), webapp.WORD_GAP_S))
    try:
        webapp._tell_prober(error)
        webapp._tell_prober(error)  # at once again: one word is enough
        words = []
        try:
            while True:
                words.append(json.loads(prober.recv(512)))
        except TimeoutError:
            pass
    finally:
        prober.close()
    assert words == ([{"server": webapp.NODE, "why": "its web service lost its database"}] if said else [])
