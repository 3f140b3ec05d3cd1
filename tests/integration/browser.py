"""A real browser for the tests: Debian's Chromium, headless, driven over the DevTools protocol.

The protocol runs on a pair of pipes (`--remote-debugging-pipe`: Chromium reads commands on its
fd 3 and writes answers on its fd 4, each message JSON ended by a NUL byte), so no port is
opened and no websocket library is needed. Chromium's own traffic to the outside world
(updates, sync, metrics) is turned off: the tests' pages are on 127.0.0.1 only.

    with Browser(tmp_path / "profile") as browser:
        page = browser.open("http://127.0.0.1:8080/")
        browser.evaluate(page, "document.title")
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--metrics-recording-only", "--disable-extensions",
         "--window-size=1300,1100", "--remote-debugging-pipe"]
ANSWER_TIMEOUT_S = 30.0


class Browser:
    def __init__(self, profile: Path) -> None:
        chromium = shutil.which("chromium")
        if chromium is None:
            pytest.fail("chromium is not installed: run `make setup` (it installs Debian's chromium)",
                        pytrace=False)
        profile.mkdir(parents=True, exist_ok=True)
        # Above fd 10, so that the child's dup2 onto 3 and 4 overwrites none of them.
        commands_r, commands_w = (_high(fd) for fd in os.pipe())
        answers_r, answers_w = (_high(fd) for fd in os.pipe())

        def wire() -> None:  # in the child, before exec: its fd 3 and 4 are the pipes' ends
            os.dup2(commands_r, 3)
            os.dup2(answers_w, 4)

        self.log = open(profile / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                        # Not pass_fds: it needs 3 and 4 open here already. Every fd
                                        # Python opens is close-on-exec, so nothing else is inherited.
                                        close_fds=False, preexec_fn=wire)
        os.close(commands_r)
        os.close(answers_w)
        self.commands = os.fdopen(commands_w, "wb", buffering=0)
        self.answers = os.fdopen(answers_r, "rb", buffering=0)
        self.next_id = 0
        self.results: dict[int, dict[str, Any]] = {}
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := self.answers.read(65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self.arrived:
                        self.results[message["id"]] = message
                        self.arrived.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict:
        """One DevTools command; its result (an error from the browser fails the test)."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.commands.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        with self.arrived:
            while self.next_id not in self.results:
                if not self.arrived.wait(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"chromium did not answer {method} in {ANSWER_TIMEOUT_S:g} s")
            answer = self.results.pop(self.next_id)
        if "error" in answer:
            raise AssertionError(f"chromium refused {method}: {answer['error']}")
        return answer["result"]

    def open(self, url: str) -> str:
        """A new tab on `url`; returns its session for `evaluate` and `screenshot`."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        return self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def evaluate(self, page: str, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, page)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} failed in the page: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, page: str, expression: str, expected: Any, timeout: float) -> Any:
        """Evaluate `expression` until it gives `expected`; fails with what it gave last. An
        expression that fails (the page still loading, its element not drawn yet) is tried again."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(page, expression)
            except AssertionError as failed:
                value = str(failed)
            if value == expected:
                return value
            time.sleep(0.2)
        raise AssertionError(f"the page's {expression} stayed {value!r}, not {expected!r}, for {timeout:g} s")

    def screenshot(self, page: str, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"}, page)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()  # the browser this test started, by its own handle
            self.process.wait(5)
        self.commands.close()
        self.log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved
