"""The live demo, used the way a teacher uses it: typed into a terminal (tmux), read off the screen.

Each test starts `python -m experiments demo` in a tmux session on a private tmux server (its
own socket: no one else's tmux is touched), types with `send-keys`, reads the screen with
`capture-pane`, and checks what a person would see before and after `fail primary`, then that
the demo left its results and nothing else behind. The failover itself is pressed on the live
dashboard, in Debian's Chromium (tests/integration/browser.py), as a teacher at a projector
would; a page of another site that tries to post a command is refused.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.browser import Browser
from tests.integration.conftest import ROOT, leftovers

TMUX = ["tmux", "-L", "sdn-ha-demo-test"]  # a private tmux server, killed at the end
SESSION = "demo"
VIP = "10.0.0.100"
EXITED = "demo exited with"


class Screen:
    """The tmux pane the demo runs in."""

    def text(self) -> str:
        result = subprocess.run([*TMUX, "capture-pane", "-p", "-t", SESSION, "-S", "-200"],
                                capture_output=True, text=True)
        return result.stdout

    def type(self, line: str) -> None:
        subprocess.run([*TMUX, "send-keys", "-t", SESSION, "-l", line], check=True)
        subprocess.run([*TMUX, "send-keys", "-t", SESSION, "Enter"], check=True)

    def key(self, name: str) -> None:
        subprocess.run([*TMUX, "send-keys", "-t", SESSION, name], check=True)

    def wait_for(self, what: str, check: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if check(text):
                return text
            if EXITED in text:
                break
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed {what}; it shows:\n{self.text()}")

    def wait_text(self, text: str, timeout: float = 30.0) -> str:
        return self.wait_for(repr(text), lambda screen: text in screen, timeout)


def answered_per_s(screen: str) -> int:
    found = re.search(r"last second:\s+(\d+) req/s answered", screen)
    return int(found.group(1)) if found else -1


def vip_on(server: str) -> Callable[[str], bool]:
    return lambda screen: re.search(rf"VIP {re.escape(VIP)}\s+->\s+{server}\b", screen) is not None


def server_row(screen: str, server: str) -> str:
    return next((line for line in screen.splitlines() if line.startswith(f"{server} ")), "")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[..., Screen]]:
    """Starts the demo in tmux with the given options; kills the private tmux server after."""

    def start(*options: str) -> Screen:
        command = (f"cd {ROOT} && {sys.executable} -m experiments demo --out {tmp_path} {' '.join(options)}; "
                   f"echo {EXITED} $?; sleep 600")
        subprocess.run([*TMUX, "new-session", "-d", "-s", SESSION, "-x", "160", "-y", "50", command],
                       check=True)
        return Screen()

    yield start
    # A demo still running is stopped the way a person would (Ctrl-C) and waited for: killing
    # the tmux server first would hang up on it while it cleans up.
    screen = Screen()
    if screen.text() and EXITED not in screen.text():
        screen.key("C-c")
        screen.wait_text(EXITED, timeout=120)
    subprocess.run([*TMUX, "kill-server"], capture_output=True)


HOLDER = "document.getElementById('holder').textContent"
# Another site's page, the classic cross-site request forgery: a form that posts itself on load,
# its text/plain body shaped as the JSON of a command. The browser sends that site's Origin.
FORGED_FORM = """<html><body onload="document.forms[0].submit()">
<form method="POST" action="{action}" enctype="text/plain">
<input name='{{"command": "fail secondary", "x": "' value='"}}'></form></body></html>"""


@contextmanager
def another_site(folder: Path, dashboard: str) -> Iterator[str]:
    """A page on another origin (127.0.0.1, another port) that posts a command to the dashboard."""
    folder.mkdir()
    action = dashboard.split("#")[0] + "command"
    (folder / "index.html").write_text(FORGED_FORM.format(action=action))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/index.html"
    finally:
        site.shutdown()
        site.server_close()


def dashboard_address(screen: Screen) -> str:
    """The dashboard's address (with its token) as the demo's screen shows it."""
    text = screen.wait_for("the dashboard's address", lambda s: "dashboard: http://" in s, timeout=30)
    found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/#token=\S+)", text)
    assert found, text
    return found.group(1)


def run_dir_of(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.name.startswith("demo-")]
    return run_dir


def exec_in(out: Path, host: str, *command: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "experiments", "exec", "--results", str(out), host, *command]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_teacher_fails_the_primary_and_the_screen_shows_the_failover(demo, tmp_path):
    screen = demo()
    # The database column comes from the last probe: under load one probe can time out and
    # leave it "-" until the next, 40 ms later, so the screen is waited for, not read once.
    before = screen.wait_for("the VIP on the primary with load answered, the primary writable",
                             lambda s: vip_on("primary")(s) and answered_per_s(s) >= 150
                             and "writable" in server_row(s, "primary"), timeout=120)
    assert "UP" in server_row(before, "primary")
    assert "read-only" in server_row(before, "secondary")
    assert "served by primary" in before

    # Students look around the running testbed.
    page = exec_in(tmp_path, "client", "curl", "-s", "-m", "2", f"http://{VIP}/")
    assert page.returncode == 0 and "Served by primary" in page.stdout
    read_only = exec_in(tmp_path, "secondary", "mariadb", "-N", "-e", "SELECT @@read_only")
    assert read_only.returncode == 0 and read_only.stdout.strip() == "1", read_only.stderr
    wrong = exec_in(tmp_path, "router", "true")
    assert wrong.returncode == 2 and "the hosts are client, monitor, primary, secondary" in wrong.stderr

    screen.type("fial primary")
    screen.wait_text("unknown command 'fial'; valid: fail SERVER [web|db|link]")

    # The teacher turns to the projector: the dashboard, in a real browser, and its button.
    address = dashboard_address(screen)
    with Browser(tmp_path / "chromium") as browser:
        page = browser.open(address)
        browser.wait_for(page, HOLDER, "primary", timeout=20)
        browser.wait_for(page, "document.body.classList.contains('stale')", False, timeout=5)
        browser.wait_for(page, "document.getElementById('server-primary').textContent.includes('writable')",
                         True, timeout=5)
        # Another site's page posts a command the moment it is opened: the dashboard refuses it.
        with another_site(tmp_path / "site", address) as forged:
            foreign = browser.open(forged)
            browser.wait_for(foreign, "document.body.innerText.includes('own page')", True, timeout=10)
        assert "fail secondary" not in screen.text()
        browser.evaluate(page, "document.querySelector('button[data-command=\"fail primary\"]').click()")
        browser.wait_for(page, HOLDER, "secondary", timeout=10)
        browser.wait_for(page, "document.getElementById('said').textContent", "sent: fail primary", timeout=5)
        browser.wait_for(page, "document.getElementById('server-primary').children[1].textContent", "DOWN",
                         timeout=5)
        time.sleep(2)  # a second or two of the secondary serving, on the charts
        browser.screenshot(page, tmp_path / "dashboard.png")

    after = screen.wait_for("the VIP on the secondary", vip_on("secondary"), timeout=10)
    after = screen.wait_for("the secondary answering the load",
                            lambda s: "served by secondary" in s and answered_per_s(s) >= 150)
    after = screen.wait_text("fail primary: web server killed, database killed, link down")
    assert "dashboard> fail primary" in after
    assert "DOWN" in server_row(after, "primary")
    assert "vip_moved  secondary" in after

    screen.type("recover primary")
    screen.wait_text("recover primary: link of primary up, mariadb-primary restarted, "
                     "web-primary restarted", timeout=90)
    screen.wait_for("the primary healthy again", lambda s: " UP " in server_row(s, "primary"))
    assert vip_on("secondary")(screen.text())  # failback is "never": the VIP stays

    screen.type("load 300")
    screen.wait_for("the new rate", lambda s: "load 300 req/s" in s and answered_per_s(s) >= 250)
    screen.type("status")
    screen.wait_text("VIP flow: cookie=")

    screen.type("quit")
    end = screen.wait_text(EXITED, timeout=120)
    assert f"{EXITED} 0" in end and "results:" in end and "report:" in end

    run_dir = run_dir_of(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scenario"] == "demo" and summary["requests_total"] > 500
    assert summary["acked_writes_lost"] == 0 and summary["db_consistent"] is True
    assert (run_dir / "report.md").exists() and (run_dir / "events.csv").exists()
    assert json.loads((run_dir / "state.json").read_text())["processes"] == {}
    assert leftovers() == []


def test_a_script_plays_the_lecture_and_ctrl_c_ends_it_like_quit(demo, tmp_path):
    script = tmp_path / "lecture.txt"
    script.write_text("# a two-line lecture\n2 fail primary web\n4 load 100\n")
    screen = demo("--script", str(script))
    moved = screen.wait_for("the scripted failover", vip_on("secondary"), timeout=120)
    assert "script> fail primary web" in moved
    screen.wait_text("load: 100 requests per second from now on", timeout=10)

    screen.key("C-c")
    end = screen.wait_text(EXITED, timeout=120)
    assert f"{EXITED} 0" in end and "report:" in end
    summary = json.loads((run_dir_of(tmp_path) / "summary.json").read_text())
    assert summary["failover_gap_ms"] is not None and summary["acked_writes_lost"] == 0
    assert leftovers() == []


def test_a_bad_script_is_refused_before_anything_starts(tmp_path):
    script = tmp_path / "lecture.txt"
    script.write_text("5 fail primary\nten quit\n")
    result = subprocess.run([sys.executable, "-m", "experiments", "demo", "--script", str(script)],
                            cwd=ROOT, capture_output=True, text=True)
    # Not a terminal here: the terminal check comes first, so give it one through `script`.
    assert result.returncode == 2 and "needs a terminal" in result.stderr
    typed = subprocess.run(["script", "-qec", f"{sys.executable} -m experiments demo --script {script}",
                            "/dev/null"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                           env={**os.environ, "TERM": "xterm"})  # CI may say TERM=dumb
    assert "lecture.txt:2: start with the seconds since the load started" in typed.stdout
    assert "Traceback" not in typed.stdout
    # A terminal curses cannot draw on is refused before anything starts: curses would otherwise
    # end the process on the spot, leaving the testbed running.
    dumb = subprocess.run(["script", "-qec", f"{sys.executable} -m experiments demo", "/dev/null"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, env={**os.environ, "TERM": "dumb"})
    assert "the demo cannot draw on this terminal (TERM=dumb cannot move the cursor)" in dumb.stdout
    assert leftovers() == []
