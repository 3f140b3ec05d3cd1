"""The demo's dashboard (experiments/dashboard/server.py): who may ask what, table by table,
then the real HTTP server on loopback, asked the way a browser (or another site) would."""

from __future__ import annotations

import http.client
import json

import pytest

from experiments.dashboard.server import DashboardServer, command_text, refusal

PORT = 8080
TOKEN = "s3cret-token"
OWN = {"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:8080", "content-type": "application/json",
       "authorization": f"Bearer {TOKEN}"}


def without(*names: str, **changed: str) -> dict[str, str]:
    headers = {k: v for k, v in OWN.items() if k not in names}
    headers.update({k.replace("_", "-"): v for k, v in changed.items()})
    return headers


@pytest.mark.parametrize(("method", "path", "headers", "refused"), [
    ("GET", "/", {"host": "127.0.0.1:8080"}, None),
    ("GET", "/state", {"host": "localhost:8080"}, None),
    ("POST", "/command", OWN, None),
    ("POST", "/command", without(origin="http://localhost:8080", host="localhost:8080"), None),
    ("POST", "/command", without(content_type="application/json; charset=utf-8"), None),
    # DNS rebinding: another site's name pointed at 127.0.0.1 arrives with that name as Host
    ("GET", "/state", {"host": "evil.example:8080"}, 421),
    ("GET", "/", {}, 421),
    ("GET", "/", {"host": "127.0.0.1:9999"}, 421),
    ("GET", "/secrets", {"host": "127.0.0.1:8080"}, 404),
    ("PUT", "/command", OWN, 405),
    ("POST", "/state", OWN, 404),
    # a form or a script on another site: its own Origin, or none
    ("POST", "/command", without(origin="http://evil.example"), 403),
    ("POST", "/command", without("origin"), 403),
    ("POST", "/command", without(origin="null"), 403),
    # a cross-site form can send only form encodings or text/plain
    ("POST", "/command", without(content_type="application/x-www-form-urlencoded"), 415),
    ("POST", "/command", without(content_type="text/plain"), 415),
    ("POST", "/command", without("authorization"), 401),
    ("POST", "/command", without(authorization="Bearer wrong"), 401),
    ("POST", "/command", without(authorization=TOKEN), 401),
])
def test_who_may_ask_what(method, path, headers, refused):
    answer = refusal(method, path, headers, PORT, TOKEN)
    assert (answer and answer[0]) == refused


@pytest.mark.parametrize(("body", "text"), [
    (b'{"command": "fail primary"}', "fail primary"),
    (b'{"command": "  load 500 "}', "load 500"),
    (b'not json', None),
    (b'{"command": 5}', None),
    (b'{"command": ""}', None),
    (b'["fail primary"]', None),
    (b'\xff', None),
])
def test_a_command_body_is_json_naming_one_command(body, text):
    if text is None:
        with pytest.raises(ValueError):
            command_text(body)
    else:
        assert command_text(body) == text


@pytest.fixture
def dashboard():
    """The real server on a free loopback port, with a state and a command of its own."""
    commands: list[str] = []

    def command(text: str) -> tuple[int, str]:
        if text == "quit":
            return 400, "quit is typed at the demo's terminal"
        commands.append(text)
        return 202, text

    server = DashboardServer(0, TOKEN, lambda: {"now": 1.0, "status": {"active": "primary"}}, command)
    server.start()
    try:
        yield server, commands
    finally:
        server.stop()


def ask(server: DashboardServer, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def test_the_page_and_its_state_are_served_to_the_page_itself(dashboard):
    server, _ = dashboard
    own = {"Host": f"127.0.0.1:{server.port}"}
    status, headers, page = ask(server, "GET", "/", own)
    assert status == 200 and b'id="holder"' in page
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]  # no other site frames its buttons
    status, _, state = ask(server, "GET", "/state", own)
    assert status == 200 and json.loads(state)["status"]["active"] == "primary"
    assert server.address == f"http://127.0.0.1:{server.port}/#token={TOKEN}"


def test_a_command_is_queued_only_from_the_page_with_the_token(dashboard):
    server, commands = dashboard
    origin = f"http://127.0.0.1:{server.port}"
    own = {"Host": f"127.0.0.1:{server.port}", "Origin": origin, "Content-Type": "application/json",
           "Authorization": f"Bearer {TOKEN}"}
    body = b'{"command": "fail primary"}'
    assert ask(server, "POST", "/command", own, body)[0] == 202
    assert ask(server, "POST", "/command", {**own, "Origin": "http://evil.example"}, body)[0] == 403
    assert ask(server, "POST", "/command", {**own, "Authorization": "Bearer nope"}, body)[0] == 401
    form = {**own, "Content-Type": "application/x-www-form-urlencoded"}
    assert ask(server, "POST", "/command", form, b"command=fail+primary")[0] == 415
    status, _, answer = ask(server, "POST", "/command", own, b'{"command": "quit"}')
    assert status == 400 and "terminal" in json.loads(answer)["error"]
    assert ask(server, "POST", "/command", own, b"x" * 5000)[0] == 400
    assert commands == ["fail primary"]
