"""The testbed's power switch: how the controller powers off a server it cannot fence (STONITH).

A real cluster that must promote a new primary while the old one does not answer ("shoot the
other node in the head") cuts the old one's power through a fence device: a networked power
strip, the machine's IPMI. The testbed's servers are processes, so its power switch is a small
server in the experiment, which started them: asked to power a server off, it kills that
server's database and web server (SIGKILL, by the PIDs its process runner recorded), and they
stay off until the server is recovered. A frozen database can then never wake up writable
beside the new primary.

The protocol, on a UNIX stream socket in the run's private socket folder (root's only): one
JSON line each way.

    -> {"power_off": "primary"}
    <- {"ok": true}                 or   {"ok": false, "error": "..."}
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path

POWER_SOCKET = "power.sock"  # in the run's socket folder
MAX_REQUEST = 256

# power_off(server) -> None when done, else why not
PowerOff = Callable[[str], str | None]


def request_power_off(path: Path | str, server: str, timeout_s: float) -> None:
    """Ask the power switch at `path` to power `server` off; OSError when it did not."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(str(path))
        conn.sendall(json.dumps({"power_off": server}).encode() + b"\n")
        answer = conn.makefile("rb").readline()
    try:
        reply = json.loads(answer)
    except ValueError:
        raise OSError(f"the power switch answered {answer[:80]!r}") from None
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply, dict) else None
        raise OSError(f"the power switch refused: {error or reply}")


class PowerSwitch:
    """The power switch's server: a thread that answers requests on `path` with `power_off`."""

    def __init__(self, path: Path, servers: set[str], power_off: PowerOff) -> None:
        self.path = path
        self.servers = servers
        self.power_off = power_off
        self.listener: socket.socket | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.path.chmod(0o600)  # root's: the controller runs as root, and nobody else may cut power
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, name="power-switch", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept(): it ends
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        if self.thread is not None:
            self.thread.join(timeout=2)
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        listener = self.listener
        while listener is not None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # stopped
            with conn:
                conn.settimeout(2.0)
                try:
                    conn.sendall(json.dumps(self.answer(conn.makefile("rb").readline(MAX_REQUEST))).encode()
                                 + b"\n")
                except OSError:
                    pass  # the controller gave up waiting: it says so itself

    def answer(self, request: bytes) -> dict[str, object]:
        """The reply to one request line."""
        try:
            message = json.loads(request)
        except ValueError:
            return {"ok": False, "error": 'send {"power_off": SERVER}'}
        server = message.get("power_off") if isinstance(message, dict) else None
        if server not in self.servers:
            known = ", ".join(sorted(self.servers))
            return {"ok": False, "error": f"no server {server!r}; the servers are {known}"}
        why_not = self.power_off(server)
        return {"ok": True} if why_not is None else {"ok": False, "error": why_not}
