"""The one place that starts, waits for and stops the processes of a run.

Every process a run starts (in a Mininet host, or in the root namespace for the controller)
goes through `ProcessRunner.start`, which sends its output to
`<run>/logs/<name>.log` and records its PID in the run's state file before returning.
Stopping is by those recorded PIDs only: each process is started in a session of its own,
so signalling its process group reaches its children too (gunicorn's workers) and nothing
that the run did not start. Never `pkill`, `killall` or `mn -c`.

`RunState` is that state file (`<run>/state.json`): the processes, bridges, interfaces
and cgroups the run created, written as soon as each is created, so that even a run killed
with SIGKILL leaves a list of exactly what must be removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StartupError(RuntimeError):
    """Something the run waits for did not happen; the message says what and where to look."""


@dataclass
class RunState:
    """What a run created, kept on disk as it happens."""

    path: Path
    processes: dict[str, int] = field(default_factory=dict)
    bridges: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # temporary folders (sockets, secrets)

    def save(self) -> None:
        data = {
            "owner_pid": os.getpid(),
            "processes": self.processes,
            "bridges": self.bridges,
            "interfaces": self.interfaces,
            "cgroups": self.cgroups,
            "folders": self.folders,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.path)


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def in_host(host: Any, cmd: list[str]) -> list[str]:
    """`cmd` made to run in a Mininet host: its network namespace and, if limited, its CPU cgroup.

    Mininet's own `host.popen` (`mnexec -a PID`) also enters the host's mount namespace, which
    resets the root directory to the machine's real root: inside a chroot or a container the
    command would then run against another file system. Only the network namespace is needed
    here (the hosts share the file system), so `nsenter --net` does the job, and `cgexec` puts
    the command in the cgroup of a `CPULimitedHost`, as `mnexec -g` would. Both exec the
    command, so the PID recorded is the command's own.
    """
    if host is None:
        return cmd
    prefix = ["nsenter", f"--net=/proc/{host.pid}/ns/net"]
    if getattr(host, "cgroup", None):
        prefix += ["cgexec", "-g", f"cpu,cpuacct:/{host.name}"]
    return prefix + cmd


class ProcessRunner:
    """Starts processes on hosts, records their PIDs, waits on conditions and stops them."""

    def __init__(self, run_dir: Path, state: RunState) -> None:
        self.log_dir = run_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.state = state
        self.processes: dict[str, ManagedProcess] = {}

    def start(
        self,
        name: str,
        cmd: list[str],
        host: Any = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Start `cmd` in `host` (a Mininet host) or, with no host, in the root namespace."""
        if name in self.processes and self.processes[name].running():
            raise RuntimeError(f"process {name} is already running")
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            params: dict[str, Any] = {
                "stdin": subprocess.DEVNULL,
                "stdout": log,
                "stderr": subprocess.STDOUT,
                "env": {**os.environ, **(env or {})},
                "cwd": str(cwd) if cwd else None,
            }
            popen = subprocess.Popen(in_host(host, cmd), start_new_session=True, **params)
        process = ManagedProcess(name, popen, log_path)
        self.processes[name] = process
        self.state.processes[name] = popen.pid
        self.state.save()
        return process

    def run(self, name: str, cmd: list[str], host: Any = None, timeout: float = 60.0) -> None:
        """Run a one-shot command (recorded like any other) and fail clearly if it fails."""
        process = self.start(name, cmd, host=host)
        try:
            process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(name)
            raise StartupError(f"{name} did not finish in {timeout:.0f} s; see {process.log_path}") from None
        self.state.processes.pop(name, None)
        self.state.save()
        if process.popen.returncode != 0:
            raise StartupError(
                f"{name} failed with code {process.popen.returncode}; "
                f"its log {process.log_path} ends with:\n{process.log_tail()}"
            )

    def signal(self, name: str, sig: int) -> None:
        """Send `sig` to the process group of `name` (the process and its children)."""
        process = self.processes[name]
        if process.running():
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, name: str, timeout: float = 5.0) -> None:
        """Stop `name`: SIGTERM to its group, SIGKILL if it has not gone after `timeout`."""
        process = self.processes.get(name)
        if process is None:
            return
        if process.running():
            self.signal(name, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.signal(name, signal.SIGTERM)
            try:
                process.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(name, signal.SIGKILL)
                process.popen.wait(5)
        # A group may outlive its leader (a gunicorn worker whose master was SIGKILLed).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.state.processes.pop(name, None)
        self.state.save()

    def stop_all(self) -> None:
        """Stop every process this runner started, the last started first."""
        for name in reversed(list(self.processes)):
            self.stop(name)

    def wait_for(
        self,
        what: str,
        condition: Callable[[], bool],
        timeout: float,
        process: str | None = None,
        interval: float = 0.02,
    ) -> None:
        """Poll `condition` until it holds; fail at once if `process` exits, or after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except Exception:  # noqa: BLE001 - a condition that raises is simply not met yet
                pass
            if process is not None and not self.processes[process].running():
                managed = self.processes[process]
                raise StartupError(
                    f"{what}: {process} exited with code {managed.popen.returncode}; "
                    f"its log {managed.log_path} ends with:\n{managed.log_tail()}"
                )
            if time.monotonic() > deadline:
                hint = f"; see {self.processes[process].log_path}" if process else ""
                raise StartupError(f"{what}: not done after {timeout:.0f} s{hint}")
            time.sleep(interval)
