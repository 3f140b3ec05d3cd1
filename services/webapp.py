"""The web service each server host runs (a WSGI app, served by gunicorn on port 80).

    GET  /                 an HTML page: which server answered, and the latest rows
    POST /api/items        insert a row ({"write_id": ..., "payload": ...}); answers its id
    GET  /api/items/<id>   one row as JSON
    GET  /health           200 only when the local database answers a query, else 503; the
                           JSON also says whether the database is read-only, its GTID
                           position (the controller never fails back to a lagging server)
                           and how its replication runs (running, connecting, stopped,
                           broken with the error, or none)

Every response carries `X-Served-By: <node>`, so a client can tell which server answered
through the virtual IP. The app talks to its own host's MariaDB over the local socket with
the `app` account; it reads its settings from the environment that `WebService` sets:
TESTBED_NODE, TESTBED_DB_SOCKET and TESTBED_SECRETS_DIR (the folder of the password file).
"""

from __future__ import annotations

import html
import json
import os
import queue
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql

from services.mariadb import APP_SCHEMA, connect_local, replication_health
from services.prober_words import WordSender

NODE = os.environ.get("TESTBED_NODE", "unknown")
DB_SOCKET = os.environ.get("TESTBED_DB_SOCKET", "")
SECRETS_DIR = Path(os.environ.get("TESTBED_SECRETS_DIR", "."))
WRITE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ITEM_PATH_RE = re.compile(r"^/api/items/([0-9]{1,19})$")

POOL_SIZE = int(os.environ.get("TESTBED_DB_POOL", "4"))
# The prober's wake socket (`probe.agent`): the moment this server loses its database it says
# so there, and the prober probes it at once. Unset: it says nothing.
PROBE_WAKE = os.environ.get("TESTBED_PROBE_WAKE", "")
WORD_GAP_S = 0.05  # at most one word per worker this often
CONNECTION_LOST = frozenset({2002, 2003, 2006, 2013})  # can't connect, gone away, lost
_words = WordSender(PROBE_WAKE, WORD_GAP_S) if PROBE_WAKE else None

# Open connections to the local database, shared by the worker's threads. It is filled when
# the worker starts (`fill_pool`, from services/gunicorn_hooks.py), so that a standby taking
# over the VIP does not first spend its CPU opening connections while requests queue up.
_pool: queue.LifoQueue[pymysql.Connection] = queue.LifoQueue()


def _connect() -> pymysql.Connection:
    password = (SECRETS_DIR / "app.password").read_text().strip()
    return connect_local(
        DB_SOCKET, user="app", password=password, database=APP_SCHEMA, connect_timeout=1, io_timeout=2
    )


# After the database failed to answer, requests fail at once for this long instead of trying
# again: a hung database makes each attempt wait for the connect time-out, and a server whose
# database is gone must say so quickly (to the client, and to the health probe).
DB_RETRY_AFTER_S = 0.25
_db_down_until = 0.0


def _tell_prober(exc: pymysql.MySQLError) -> None:
    """Say to the prober that this server lost its database, if `exc` says so (not for an
    error of one statement, such as a write refused by a read-only database)."""
    lost = isinstance(exc, pymysql.InterfaceError) or (exc.args and exc.args[0] in CONNECTION_LOST)
    if _words is None or not lost:
        return
    try:
        _words.send(NODE, "its web service lost its database")
    except OSError:
        pass  # no prober listens: its schedule finds the failure as before


def _connection() -> pymysql.Connection:
    global _db_down_until
    try:
        return _pool.get_nowait()
    except queue.Empty:
        pass
    if time.monotonic() < _db_down_until:
        raise pymysql.OperationalError(2003, "the local database is down (not retried yet)")
    try:
        return _connect()
    except pymysql.OperationalError as exc:
        _db_down_until = time.monotonic() + DB_RETRY_AFTER_S
        _tell_prober(exc)
        raise


@contextmanager
def _pooled_cursor() -> Iterator[pymysql.cursors.Cursor]:
    """A cursor on a pooled connection; a connection that failed is closed, not reused."""
    conn = _connection()
    try:
        with conn.cursor() as cur:
            yield cur
    except (pymysql.OperationalError, pymysql.InterfaceError) as exc:
        _tell_prober(exc)
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - the connection is already broken
            pass
        raise
    except pymysql.MySQLError:
        _pool.put(conn)  # the statement failed (a duplicate, say), the connection is fine
        raise
    _pool.put(conn)


def _query(sql: str, args: tuple = ()) -> tuple[list[tuple], int | None]:
    """Run one statement on a pooled connection: its rows and the id it inserted."""
    with _pooled_cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall()), cur.lastrowid


def fill_pool() -> None:
    """Open the pool's connections; in each worker, never in gunicorn's master (the module is
    imported there: a connection opened before the fork would be shared by every worker)."""
    for _ in range(POOL_SIZE):
        try:
            _pool.put(_connect())
        except (pymysql.MySQLError, OSError):
            return  # the database is not there (yet): connections are opened on demand


Response = tuple[str, str, bytes]  # status line, content type, body


def _json(status: str, data: dict) -> Response:
    return status, "application/json", json.dumps(data).encode()


def health() -> Response:
    try:
        rows, _ = _query("SELECT @@read_only, @@gtid_current_pos")
        replication, replication_error = replication_health(_replica_status())
    except pymysql.MySQLError as exc:
        return _json("503 Service Unavailable", {"node": NODE, "db": "down", "error": str(exc)})
    read_only, gtid = rows[0]
    return _json("200 OK", {"node": NODE, "db": "up", "read_only": bool(read_only), "gtid": gtid,
                            "replication": replication, "replication_error": replication_error})


def _replica_status() -> dict[str, object] | None:
    """This database's `SHOW SLAVE STATUS` row by column name; None when it replicates from no one."""
    with _pooled_cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone()
        names = [column[0] for column in cur.description or ()]
    return dict(zip(names, row, strict=True)) if row else None


def create_item(body: bytes) -> Response:
    try:
        data = json.loads(body or b"{}")
        write_id = str(data["write_id"])
        payload = str(data.get("payload", ""))[:255]
    except (ValueError, KeyError, TypeError):
        return _json("400 Bad Request", {"error": 'body must be JSON with a "write_id"'})
    if not WRITE_ID_RE.match(write_id):
        return _json("400 Bad Request", {"error": "write_id: 1-64 letters, digits or _.:-"})
    try:
        _, item_id = _query(
            "INSERT INTO items (write_id, payload, served_by) VALUES (%s, %s, %s)",
            (write_id, payload, NODE),
        )
    except pymysql.IntegrityError:
        return _json("409 Conflict", {"error": f"write_id {write_id} already written"})
    except pymysql.MySQLError as exc:
        return _json("503 Service Unavailable", {"error": str(exc)})
    return _json("201 Created", {"id": item_id, "write_id": write_id, "served_by": NODE})


def get_item(item_id: int) -> Response:
    try:
        rows, _ = _query(
            "SELECT id, write_id, payload, served_by, created_at FROM items WHERE id = %s",
            (item_id,),
        )
    except pymysql.MySQLError as exc:
        return _json("503 Service Unavailable", {"error": str(exc)})
    if not rows:
        return _json("404 Not Found", {"error": f"no item {item_id}"})
    id_, write_id, payload, served_by, created_at = rows[0]
    return _json(
        "200 OK",
        {"id": id_, "write_id": write_id, "payload": payload, "served_by": served_by,
         "created_at": created_at.isoformat()},
    )


def index() -> Response:
    status = "200 OK"
    try:
        rows, _ = _query(
            "SELECT id, write_id, served_by, created_at FROM items ORDER BY id DESC LIMIT 10"
        )
        error = ""
    except pymysql.MySQLError as exc:
        # A page without its data is a failure to the user: say so with the status, too.
        status = "503 Service Unavailable"
        rows, error = [], f"<p>database error: {html.escape(str(exc))}</p>"
    cells = "".join(
        f"<tr><td>{r[0]}</td><td>{html.escape(r[1])}</td><td>{html.escape(r[2])}</td>"
        f"<td>{r[3]}</td></tr>"
        for r in rows
    )
    page = (
        f"<!doctype html><title>Served by {html.escape(NODE)}</title>"
        f"<h1>Served by {html.escape(NODE)}</h1>{error}"
        "<table><tr><th>id</th><th>write id</th><th>written by</th><th>at</th></tr>"
        f"{cells}</table>"
    )
    return status, "text/html; charset=utf-8", page.encode()


def route(method: str, path: str, body: bytes) -> Response:
    if path == "/health" and method == "GET":
        return health()
    if path == "/" and method == "GET":
        return index()
    if path == "/api/items" and method == "POST":
        return create_item(body)
    match = ITEM_PATH_RE.match(path)
    if match and method == "GET":
        return get_item(int(match.group(1)))
    return _json("404 Not Found", {"error": f"no route {method} {path}"})


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    body = b""
    if method == "POST":
        try:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), 65536)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length)
    status, content_type, payload = route(method, path, body)
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(payload))),
            ("X-Served-By", NODE),
        ],
    )
    return [payload]

