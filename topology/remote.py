"""Commands on another machine of the testbed, over SSH (topology/placement.py says which).

Everything the head does on another machine goes through `RemoteMachine`: a command in that
machine's root namespace (`run`), the argv that starts a long-lived process there (`argv`,
for the process runner), a file written or read there. All of them share one SSH connection
per machine, the *master* (`master_command`), which the process runner starts and records
like any other process: each command then costs a round trip, not a new SSH handshake, and
stopping the master ends them all.

A process started on another machine is the session leader of its SSH session there (the
remote shell `exec`s it), so its PID is its process group, as for a process started here with
`start_new_session`: `kill -- -PID` on that machine reaches it and its children. Its output
comes back through SSH into the local log file, and its exit code with it.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topology.placement import MachineConfig

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")

# BatchMode: never ask for a password or a host key (a question nobody sees is a hang).
# ServerAlive*: a machine that stops answering ends the connection in about 6 s, loudly.
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=2",
               "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR")
# How a started process says its PID: first into a file of the run on that machine, then it
# becomes the command (`exec` keeps the PID).
PID_WRAPPER = 'echo $$ > "$0" && exec "$@"'


class RemoteError(RuntimeError):
    """A command on another machine failed, or the machine could not be reached."""


@dataclass(frozen=True)
class RemoteMachine:
    """Another machine of the testbed, reached with SSH as its `MachineConfig` says."""

    config: MachineConfig
    control_path: Path | None = None  # the master connection's socket, once one is wanted

    @property
    def name(self) -> str:
        return self.config.name

    def ssh(self, *options: str) -> list[str]:
        """The ssh argv to this machine up to the destination (through the master, if any)."""
        machine = self.config
        argv = ["ssh", "-p", str(machine.port), *SSH_OPTIONS]
        if machine.key:
            argv += ["-i", machine.key, "-o", "IdentitiesOnly=yes"]
        if machine.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={machine.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        if self.control_path is not None:
            argv += ["-o", f"ControlPath={self.control_path}", "-o", "ControlMaster=no"]
        return [*argv, *options, machine.destination()]

    def master_command(self, forwards: tuple[tuple[Path, Path], ...] = ()) -> list[str]:
        """The master connection: runs until stopped, and every other command rides on it.

        Each of `forwards` (here, there) is a UNIX socket here that reaches one there: how
        the head talks to a database on that machine with the same code as to one here.
        """
        if self.control_path is None:
            raise ValueError(f"{self.name}: no control path for a master connection")
        tunnels = [word for here, there in forwards for word in ("-L", f"{here}:{there}")]
        argv = self.ssh("-N", "-o", "ControlPersist=no", "-o", "StreamLocalBindUnlink=yes",
                        "-o", "ExitOnForwardFailure=yes", *tunnels)
        argv[argv.index("ControlMaster=no")] = "ControlMaster=yes"  # this one is the master
        return argv

    def master_ready(self) -> bool:
        """Whether the master connection is up (`ssh -O check`)."""
        check = [*self.ssh("-O", "check")]
        return subprocess.run(check, capture_output=True, timeout=10).returncode == 0

    def argv(self, command: list[str], tty: bool = False) -> list[str]:
        """The local argv that runs `command` on this machine, its output and exit code back here."""
        remote = "exec " + shlex.join(command)
        return [*self.ssh("-tt" if tty else "-T"), "--", remote]

    def started_argv(self, command: list[str], pid_file: str) -> list[str]:
        """`argv` for a process whose PID on that machine is then read from `pid_file` there."""
        return self.argv(["sh", "-c", PID_WRAPPER, pid_file, *command])

    def run(self, command: list[str], timeout: float = 15.0, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run `command` in this machine's root namespace; RemoteError if it fails (`check`)."""
        return self._run(command, timeout, input, check, text=True)

    def run_bytes(self, command: list[str], timeout: float = 60.0) -> bytes:
        """Run `command` there and return its output as bytes (a tar stream, say)."""
        return self._run(command, timeout, None, True, text=False).stdout

    def _run(self, command: list[str], timeout: float, input: str | None, check: bool,
             text: bool) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(self.argv(command), input=input, capture_output=True, text=text,
                                  errors="replace" if text else None, timeout=timeout,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.name}: `{shlex.join(command)}` did not finish in {timeout:g} s"
                              ) from None
        if check and done.returncode != 0:
            err = done.stderr if text else done.stderr.decode(errors="replace")
            said = (err or (done.stdout if text else "")).strip().splitlines()[-3:]
            if done.returncode == 255:  # ssh's own failure: the machine, not the command
                raise RemoteError(f"{self.name}: cannot reach {self.config.destination()} port "
                                  f"{self.config.port} with ssh: {' '.join(said) or 'no answer'}")
            raise RemoteError(f"{self.name}: `{shlex.join(command)}` exited {done.returncode}: "
                              f"{' '.join(said) or 'no output'}")
        return done

    def clock_samples(self, count: int, clock: Callable[[], float] = time.time
                      ) -> list[tuple[float, float, float]]:
        """(sent here, read there, answered here) `count` times, over one session: a command of
        its own each time would read the clock there after setting up its session, not halfway."""
        reader = subprocess.Popen(self.argv(["sh", "-c", "while read -r _; do date +%s.%N; done"]),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
        samples = []
        try:
            for _ in range(count + 1):  # the first answer waits for the session: not a sample
                sent = clock()
                reader.stdin.write("\n")
                reader.stdin.flush()
                answer = reader.stdout.readline().strip()
                back = clock()
                try:
                    samples.append((sent, float(answer), back))
                except ValueError:
                    break  # the session ended, or answered something else
        except OSError:
            pass
        finally:
            reader.kill()
            reader.wait()
        return samples[1:]

    def started_process(self, pid_file: str, alive: Callable[[], bool], argv: list[str],
                        timeout: float = 10.0) -> dict[str, Any]:
        """The record of the process a `started_argv` command started there, once it has
        written its PID (`alive`: whether its local ssh still runs, else it never will);
        `ended` in it if the process has already gone."""
        deadline = time.monotonic() + timeout
        while True:
            written = self.run(["cat", pid_file], check=False).stdout.strip()
            if written.isdigit():
                pid = int(written)
                identity = self._identity(pid)
                if identity is None:
                    # It wrote its PID and has ended already (a short command): there is
                    # nothing left of it there to stop or clean up.
                    return {"machine": self.name, "pid": pid, "ended": True, "cmdline": argv}
                return {**self._record(pid, identity), "cmdline": argv}
            if not alive():
                raise RemoteError(f"{self.name}: the process ended before it said its PID")
            if time.monotonic() > deadline:
                raise RemoteError(f"{self.name}: no PID in {pid_file} after {timeout:g} s")
            time.sleep(0.02)

    def process_record(self, pid: int) -> dict[str, Any]:
        """What identifies the process `pid` there (services/runner.py's `process_record`, with
        that machine's name and boot id); RemoteError if there is no such process."""
        identity = self._identity(pid)
        if identity is None:
            raise RemoteError(f"{self.name}: no process {pid}")
        return self._record(pid, identity)

    def _record(self, pid: int, identity: tuple[list[str], list[str], str]) -> dict[str, Any]:
        fields, argv, boot = identity
        return {"machine": self.name, "pid": pid, "start_time": int(fields[22 - 3]), "boot_id": boot,
                "cmdline": argv}

    def is_recorded(self, record: dict[str, Any]) -> bool:
        """Whether the very process `record` (from `process_record`) still runs there."""
        pid = record.get("pid")
        identity = self._identity(pid) if isinstance(pid, int) and pid > 0 else None
        if identity is None:
            return False
        fields, _, boot = identity
        return (fields[0] not in ("Z", "X") and int(fields[22 - 3]) == record.get("start_time")
                and boot == record.get("boot_id"))

    def _identity(self, pid: int) -> tuple[list[str], list[str], str] | None:
        """The /proc/PID/stat fields (`stat_fields`), the command line and the boot id there."""
        script = 'cat /proc/"$0"/stat && cat /proc/"$0"/cmdline && echo && cat ' + str(BOOT_ID_PATH)
        done = self.run(["sh", "-c", script, str(pid)], check=False)
        lines = done.stdout.splitlines()
        fields = stat_fields(lines[0]) if done.returncode == 0 and len(lines) == 3 else None
        if fields is None or len(fields) <= 22 - 3:
            return None
        return fields, [arg for arg in lines[1].split("\0") if arg], lines[2].strip()

    def signal_group(self, pid: int, signal_name: str) -> bool:
        """Send SIG`signal_name` to the process group `pid` there; False if it has gone,
        RemoteError if the machine cannot be reached (so it may well not have gone)."""
        done = self.run(["kill", f"-{signal_name}", "--", f"-{pid}"], check=False)
        if done.returncode == 255:
            raise RemoteError(f"{self.name}: cannot reach {self.config.destination()} to signal "
                              f"process group {pid}: {done.stderr.strip()[-200:] or 'no answer'}")
        return done.returncode == 0


def stat_fields(text: str) -> list[str] | None:
    """The fields of a /proc/PID/stat line from field 3 (state) on; None if it is not one.

    Field 2 is the command name in parentheses, and may itself hold spaces or ")".
    """
    end = text.rfind(")")
    return text[end + 2:].split() if end != -1 else None
