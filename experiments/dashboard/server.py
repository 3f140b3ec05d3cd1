"""The demo's live dashboard: one page and its JSON, on 127.0.0.1 only, for a projector.

    GET  /          the page (page.html beside this file: no third-party code, its charts are
                    drawn by its own few lines of script)
    GET  /state     what the page shows, as JSON: the demo's latest view of the testbed and
                    the last minute's requests per second and latency, second by second
    POST /command   {"command": "fail primary"}: one of the demo's commands, as if typed

The demo prints the page's address with the run's token after `#` (a fragment: the browser
never sends it, so it is in no request line or log): http://127.0.0.1:8080/#token=...

Who may ask what, checked on every request (`refusal`, pure, tested with a table):
- every request names this server in its Host header (127.0.0.1 or localhost, this port):
  a page elsewhere that rebinds its own name to 127.0.0.1 (DNS rebinding) is refused;
- a command must also come from this page: an Origin header naming this server (a form or a
  script on another site sends its own Origin), a JSON body (a cross-site form cannot send
  one without the browser asking first), and `Authorization: Bearer <token>`, the run's
  token, compared in constant time.

The HTTP server runs in threads of its own; it reads the demo's state through `state` and
hands commands to `command`, which checks them and queues them for the demo's worker.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PAGE = Path(__file__).with_name("page.html")
HOSTS = ("127.0.0.1", "localhost")
MAX_BODY = 1024  # bytes of a command's JSON: "load 500" needs a few dozen

# command(text) -> (HTTP status, what to say): 202 when queued, 400 when it is no command
Command = Callable[[str], tuple[int, str]]


def refusal(
    method: str, path: str, headers: Mapping[str, str], port: int, token: str
) -> tuple[int, str] | None:
    """Why the request must be refused, as (HTTP status, reason); None when it may go on.
    `headers` are looked up by lower-case name."""
    own = {f"{host}:{port}" for host in HOSTS}
    if headers.get("host") not in own:
        return 421, f"this dashboard answers only as http://127.0.0.1:{port}/"
    if method == "GET":
        return None if path in ("/", "/state") else (404, f"no page {path}")
    if method != "POST":
        return 405, f"{method} is not used here"
    if path != "/command":
        return 404, f"no command endpoint {path}"
    if headers.get("origin") not in {f"http://{name}" for name in own}:
        return 403, "a command must come from the dashboard's own page"
    if headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return 415, 'a command is JSON: {"command": "fail primary"}'
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme != "Bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        return 401, "a command needs the run's token: open the address the demo prints, with its #token="
    return None


def command_text(body: bytes) -> str:
    """The command of a POST /command body; ValueError says what is wrong with it."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError('the body is not JSON; send {"command": "fail primary"}') from None
    if not isinstance(data, dict) or not isinstance(data.get("command"), str) or not data["command"].strip():
        raise ValueError('send {"command": "..."} with one of the demo\'s commands')
    return data["command"].strip()


class DashboardServer:
    """The dashboard's HTTP server on 127.0.0.1:`port`; `start` binds it (OSError if it cannot)."""

    def __init__(self, port: int, token: str, state: Callable[[], dict[str, Any]], command: Command) -> None:
        self.port = port
        self.token = token
        self.state = state
        self.command = command
        self.page = PAGE.read_bytes()
        self.http: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """The page's address, with the token the page needs for its commands."""
        return f"http://127.0.0.1:{self.port}/#token={self.token}"

    def start(self) -> None:
        self.http = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]  # the one the system chose, for port 0
        self.thread = threading.Thread(target=self.http.serve_forever, name="dashboard", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None


def _handler(dashboard: DashboardServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "sdn-ha-dashboard"

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self._refused("GET"):
                return
            if self.path == "/":
                self._send(200, "text/html; charset=utf-8", dashboard.page)
            else:
                self._json(200, dashboard.state())

        def do_POST(self) -> None:  # noqa: N802
            if self._refused("POST"):
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self._json(400, {"error": f"a command's body is 1 to {MAX_BODY} bytes of JSON"})
                return
            try:
                text = command_text(self.rfile.read(length))
            except ValueError as exc:
                self._json(400, {"error": str(exc)})
                return
            status, said = dashboard.command(text)
            self._json(status, {"command": text, ("queued" if status == 202 else "error"): said})

        def _refused(self, method: str) -> bool:
            headers = {name.lower(): value for name, value in self.headers.items()}
            refused = refusal(method, self.path, headers, dashboard.port, dashboard.token)
            if refused is not None:
                self._json(refused[0], {"error": refused[1]})
            return refused is not None

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(body, default=str).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            # The page runs its own script only, and no other site may frame it (a click on a
            # framed button would be a command from another site).
            self.send_header("Content-Security-Policy",
                             "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                             "frame-ancestors 'none'")
            self.send_header("X-Frame-Options", "DENY")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
            pass  # nothing on the demo's terminal; the commands are in the demo's messages

    return Handler
