"""The one place that starts, waits for and stops the processes of a run.

Every process a run starts (in a Mininet host, or in the root namespace for the controller)
goes through `ProcessRunner.start`, which sends its output to
`<run>/logs/<name>.log` and records the process in the run's state file before returning.
Stopping is by those recorded PIDs only: each process is started in a session of its own,
so signalling its process group reaches its children too (gunicorn's workers) and nothing
that the run did not start. Never `pkill`, `killall` or `mn -c`.

`RunState` is that state file (`<run>/state.json`): the processes, Mininet's node shells,
bridges, interfaces, cgroups and temporary folders the run created, written as soon as each
is created, so that even a run killed with SIGKILL leaves a list of exactly what must be
removed (`python -m experiments clean` removes it). A process is recorded with what
identifies that very process, not only its PID (see `process_record`), because a PID is
reused once its process has gone: a later clean-up must never kill a stranger.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.files import write_atomic
from topology.remote import BOOT_ID_PATH, RemoteError, RemoteMachine, stat_fields


class StartupError(RuntimeError):
    """Something the run waits for did not happen; the message says what and where to look."""


# The signals that stop a run cleanly: Ctrl-C, `kill`, and the terminal going away.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def signals_held(in_children: bool = False) -> Iterator[None]:
    """Hold the stop signals (SIGINT, SIGTERM, SIGHUP) while the block runs, then act on them.

    For what must not be cut in two: a process started but not yet recorded (Popen waits for
    the child's exec, and a signal there raises with the child alive and its PID lost), a
    folder created but not yet listed, a teardown. A signal that comes is remembered, and
    raised again once the block is done (the first one, by its handler then: Ctrl-C and the
    command line's SIGTERM raise KeyboardInterrupt), so the run stops after the block.

    The signals are not blocked by default: a child would inherit the mask, and a daemon
    started in the block would ignore SIGTERM for ever. With `in_children` (a teardown, whose
    children are short commands such as `ip link del`) they are blocked as well, so that those
    commands inherit the mask: a Ctrl-C goes to the terminal's whole process group, and would
    otherwise kill one half-way. Only the main thread can set handlers; elsewhere, nothing held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in STOP_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if in_children else None
    try:
        yield
    finally:
        if mask is not None:
            # A signal blocked meanwhile is delivered now, and lands in `pending`.
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if pending:
            signal.raise_signal(pending[0])  # the restored handler runs now (Ctrl-C: KeyboardInterrupt)


# -- what identifies a process ----------------------------------------------------------------

def boot_id() -> str:
    """This boot's random id: start times count from boot, so they only compare within one boot."""
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat from field 3 (state) on; None if there is no such process."""
    try:
        return stat_fields(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat); None if gone."""
    fields = _stat_fields(pid)
    return int(fields[22 - 3]) if fields else None


def process_group(pid: int) -> int | None:
    """The process group of `pid` (field 5 of /proc/PID/stat); None if gone."""
    fields = _stat_fields(pid)
    return int(fields[5 - 3]) if fields else None


def cmdline(pid: int) -> list[str]:
    """The argument list of `pid` (/proc/PID/cmdline); empty if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    if not raw:  # a zombie, or a kernel thread
        return []
    # Each argument ends with a NUL; split on them, without the empty word after the last one.
    args = raw[:-1] if raw.endswith(b"\0") else raw
    return [arg.decode(errors="replace") for arg in args.split(b"\0")]


def process_record(pid: int, argv: list[str] | None = None) -> dict[str, Any]:
    """What the state file keeps of a process: its PID, start time and command line.

    For a process the runner started, `argv` is the command it asked for: read from /proc
    right after the start, the command line can still be empty (the exec is under way).
    """
    return {"pid": pid, "start_time": start_time(pid), "cmdline": list(argv) if argv else cmdline(pid)}


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (its children, theirs...), as /proc lists them now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                todo += [int(child) for child in children.split()]
            except OSError:
                pass
    return found


class ExitWatch:
    """A process and its descendants, watched from now on: `wait` says when the last has exited.

    A pidfd (pidfd_open) turns readable once its process has exited, every thread of it, with
    its memory freed and its files closed: for a killed web server, the moment its listening
    socket is gone and the kernel starts refusing connections. Nothing is polled meanwhile.
    """

    def __init__(self, pid: int) -> None:
        self.fds: list[int] = []
        for member in descendants(pid):
            try:
                self.fds.append(os.pidfd_open(member))
            except OSError:
                pass  # gone already

    def wait(self, timeout: float) -> float | None:
        """When (epoch seconds) the last watched process exited; None if one outlived `timeout`.
        Closes the watch."""
        deadline = time.monotonic() + timeout
        poller = select.poll()
        for fd in self.fds:
            poller.register(fd, select.POLLIN)
        left = set(self.fds)
        try:
            while left:
                wait_ms = (deadline - time.monotonic()) * 1000
                if wait_ms <= 0:
                    return None
                for fd, _ in poller.poll(wait_ms):
                    left.discard(fd)
                    poller.unregister(fd)
            return time.time()
        finally:
            for fd in self.fds:
                os.close(fd)
            self.fds = []


def is_recorded_process(record: dict[str, Any]) -> bool:
    """Whether the very process `record` describes is still running (a zombie is not).

    The PID must exist with the recorded start time: a reused PID has a later one. And its
    command line must be the recorded one or a tail of it: `nsenter` and `cgexec` replace
    themselves with the command they run (exec), which keeps the PID and start time but drops
    the wrapper's leading words; a different program is never a tail. A record without a start
    time or a command line never matches, so nothing unverified is ever taken for ours.
    """
    pid, started, recorded = record.get("pid"), record.get("start_time"), record.get("cmdline")
    if not isinstance(pid, int) or pid <= 0 or not isinstance(started, int) or not recorded:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X") or int(fields[22 - 3]) != started:
        return False
    current = cmdline(pid)
    return bool(current) and len(current) <= len(recorded) and recorded[-len(current):] == current


@dataclass
class RunState:
    """What a run created, kept on disk as it happens."""

    path: Path
    # name -> process_record(): the processes this run started, until they are stopped.
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Mininet node name -> process_record(): the shells Mininet starts, one per node.
    shells: dict[str, dict[str, Any]] = field(default_factory=dict)
    bridges: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # temporary folders (sockets, secrets)
    # The run's folders on other machines: {"machine": name, "path": ...}.
    remote_folders: list[dict[str, str]] = field(default_factory=list)

    def add_process(self, name: str, pid: int, argv: list[str] | None = None) -> None:
        """Record the process `pid` (started by this run) as `name`, and save at once."""
        self.processes[name] = process_record(pid, argv)
        self.save()

    def add_remote(self, name: str, remote: dict[str, Any]) -> None:
        """Add to the record of `name` (the local ssh that runs it) the process it started on
        another machine (`RemoteMachine.started_process`), and save at once."""
        self.processes[name]["remote"] = remote
        self.save()

    def record_mininet_shells(self, net: Any) -> None:
        """Record the shell of every node of the Mininet network `net`, and save at once.

        Mininet starts a shell per node (hosts, switch, controller) when it creates the node,
        outside ProcessRunner. A host's shell holds the host's network namespace, and none of
        them is stopped if the run is killed with SIGKILL, so the clean-up must know them.
        """
        for node in [*net.controllers, *net.switches, *net.hosts]:
            if getattr(node, "shell", None) is None or not node.pid:
                continue
            machine = getattr(node, "machine", None)
            if machine is None:
                self.shells[node.name] = process_record(node.pid)
            else:  # the local ssh that holds the shell, and the shell on its machine
                self.shells[node.name] = {**process_record(node.shell.pid),
                                          "remote": machine.process_record(node.pid)}
        for link in getattr(net, "links", []):  # an SSH tunnel to another machine is an ssh here
            tunnel = getattr(link, "tunnel", None)
            if isinstance(tunnel, subprocess.Popen):
                self.shells[f"tunnel {link.intf1.name}"] = process_record(tunnel.pid, list(tunnel.args))
        self.save()

    def nothing_left(self) -> bool:
        """Whether everything listed is gone (the temporary folders aside)."""
        return not (self.processes or self.shells or self.bridges or self.interfaces or self.cgroups
                    or self.remote_folders)

    def save(self) -> None:
        data = {
            "owner_pid": os.getpid(),
            # With the boot id, tells the owner from a later process that reuses its PID.
            "owner_start_time": start_time(os.getpid()),
            "boot_id": boot_id(),
            "processes": self.processes,
            "shells": self.shells,
            "bridges": self.bridges,
            "interfaces": self.interfaces,
            "cgroups": self.cgroups,
            "folders": self.folders,
            "remote_folders": self.remote_folders,
        }
        write_atomic(self.path, json.dumps(data, indent=2))


@dataclass(frozen=True)
class RemoteProcess:
    """A process on another machine: its machine, and its PID (and process group) there."""

    machine: RemoteMachine
    pid: int


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen  # on another machine: the local ssh that runs it (its output, its end)
    log_path: Path
    remote: RemoteProcess | None = None

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

    def log_errors(self, lines: int = 10) -> str:
        """The log's first lines that say ERROR: the cause, where a tool's long epilogue hides it."""
        return error_lines(self.log_path, lines)


def error_lines(path: Path, lines: int = 10) -> str:
    """The first lines of `path` with the word ERROR in capitals (`[ERROR]`, `ERROR: 1051`).

    Capitals only: a tool's advice naming a file such as `error.log` is not a cause.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if ERROR_WORD.search(line)][:lines])


ERROR_WORD = re.compile(r"\bERROR\b")


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

    def __init__(self, run_dir: Path, state: RunState, remote_dir: Path | None = None) -> None:
        self.log_dir = run_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.state = state
        self.processes: dict[str, ManagedProcess] = {}
        # On another machine, the folder of the run there, where a started process writes its PID.
        self.remote_dir = remote_dir
        self.connections: list[str] = []  # SSH master connections: stopped last (stop_connections)

    def start(
        self,
        name: str,
        cmd: list[str],
        host: Any = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        machine: RemoteMachine | None = None,
    ) -> ManagedProcess:
        """Start `cmd` in `host` (a Mininet host) or, with no host, in the root namespace (of
        `machine`, or of this one). A host on another machine runs it there."""
        if name in self.processes and self.processes[name].running():
            raise RuntimeError(f"process {name} is already running")
        machine = machine or getattr(host, "machine", None)
        argv = in_host(host, cmd)
        pid_file = None
        if machine is not None:
            # There: ssh runs it (its output comes into the local log) and it says its PID there.
            if self.remote_dir is None:
                raise StartupError(f"{name}: no folder for the run on {machine.name}")
            if env or cwd:  # ssh passes no environment: `env` sets it there
                settings = [f"{key}={value}" for key, value in (env or {}).items()]
                argv = ["env", *(["-C", str(cwd)] if cwd else []), *settings, *argv]
            pid_file = str(self.remote_dir / f"{name}.pid")
            command = argv
            argv = machine.started_argv(command, pid_file)
            env = cwd = None  # both are set there, by `env`
        log_path = self.log_dir / f"{name}.log"
        # An interrupt waits until the process is known, so that stopping the run stops it too.
        with signals_held(), open(log_path, "ab") as log:
            params: dict[str, Any] = {
                "stdin": subprocess.DEVNULL,
                "stdout": log,
                "stderr": subprocess.STDOUT,
                "env": {**os.environ, **(env or {})},
                "cwd": str(cwd) if cwd else None,
            }
            popen = subprocess.Popen(argv, start_new_session=True, **params)
            process = ManagedProcess(name, popen, log_path)
            self.processes[name] = process
            self.state.add_process(name, popen.pid, argv)
            if machine is not None:
                try:
                    remote = machine.started_process(pid_file, lambda: popen.poll() is None, command)
                except RemoteError as error:
                    raise StartupError(f"{name} on {machine.name}: {error}; see {log_path}") from None
                if not remote.get("ended"):  # a short command may be done already
                    process.remote = RemoteProcess(machine, remote["pid"])
                self.state.add_remote(name, remote)
        return process

    def start_connection(self, name: str, cmd: list[str]) -> ManagedProcess:
        """Start a connection to another machine (`start` here) that `stop_all` leaves running:
        what runs there, and the network's hosts and links there, are stopped through it."""
        process = self.start(name, cmd)
        self.connections.append(name)
        return process

    def stop_connections(self, timeout: float = 5.0) -> None:
        for name in reversed(self.connections):
            self.stop(name, timeout)
        self.connections = []

    def run(self, name: str, cmd: list[str], host: Any = None, timeout: float = 60.0) -> None:
        """Run a one-shot command (recorded like any other) and fail clearly if it fails."""
        self.run_all({name: cmd}, host=host, timeout=timeout)

    def run_all(self, commands: dict[str, list[str]], host: Any = None, timeout: float = 60.0,
                machines: dict[str, RemoteMachine | None] | None = None) -> None:
        """Run one-shot commands at the same time (each recorded like any other, each on its
        machine of `machines`, else here) and fail clearly on the first that fails; the others
        are waited for or stopped first."""
        started = {name: self.start(name, cmd, host=host, machine=(machines or {}).get(name))
                   for name, cmd in commands.items()}
        deadline = time.monotonic() + timeout
        failure: StartupError | None = None
        for name, process in started.items():
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop(name)
                failure = failure or StartupError(
                    f"{name} did not finish in {timeout:.0f} s; see {process.log_path}")
                continue
            self.state.processes.pop(name, None)
            self.state.save()
            if process.popen.returncode != 0 and failure is None:
                errors = process.log_errors()
                failure = StartupError(
                    f"{name} failed with code {process.popen.returncode}; its log {process.log_path} "
                    + (f"says:\n{errors}\n... and ends with:\n" if errors else "ends with:\n")
                    + process.log_tail()
                )
        if failure:
            raise failure

    def signal(self, name: str, sig: int) -> None:
        """Send `sig` to the process group of `name` (the process and its children)."""
        process = self.processes[name]
        if process.remote is not None:
            # The process itself, there; its local ssh ends when it does. SIGKILL always goes: a
            # group may outlive its leader, and the ssh may end a moment before the group.
            if process.running() or sig == signal.SIGKILL:
                process.remote.machine.signal_group(process.remote.pid, signal.Signals(sig).name[3:])
            return
        if process.running():
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass

    def watch_exit(self, name: str) -> ExitWatch | None:
        """Watch `name` and its children from now on (before a SIGKILL: when did it die?); None
        for a process on another machine, or one already gone."""
        process = self.processes[name]
        if process.remote is not None or not process.running():
            return None
        return ExitWatch(process.pid)

    def stop(self, name: str, timeout: float = 5.0) -> None:
        """Stop `name`: SIGTERM to its group, SIGKILL if it has not gone after `timeout`."""
        process = self.processes.get(name)
        if process is None:
            return
        try:
            if process.running():
                self.signal(name, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                self.signal(name, signal.SIGTERM)
                try:
                    process.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.signal(name, signal.SIGKILL)
                    process.popen.wait(5)
            # A group may outlive its leader (a gunicorn worker whose master was SIGKILLed).
            if process.remote is not None:
                self.signal(name, signal.SIGKILL)
        except RemoteError as error:
            # Its machine does not answer: the rest of the stop goes on, and the record stays in
            # the state file, for `make clean` once the machine answers again.
            print(f"warning: {name} on {process.remote.machine.name} may still run: {error}", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # its local ssh, at least
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.state.processes.pop(name, None)
        self.state.save()

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every process this runner started: SIGTERM to all their groups at once (the
        last started first), then SIGKILL to any still there after `timeout`. At once, because
        each takes a moment to go (gunicorn lets its workers finish, mariadbd flushes): one
        after the other, the end of every trial waited for the sum of them."""
        names = [name for name in reversed(self.processes) if name not in self.connections]
        for name in names:
            if self.processes[name].running():
                with contextlib.suppress(RemoteError):  # `stop` says it, and keeps the record
                    self.signal(name, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                    self.signal(name, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            self.stop(name, timeout=max(0.0, deadline - time.monotonic()))

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
