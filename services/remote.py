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
from dataclasses import dataclass
from pathlib import Path

from topology.placement import MachineConfig

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

    def master_command(self) -> list[str]:
        """The master connection: runs until stopped, and every other command rides on it."""
        if self.control_path is None:
            raise ValueError(f"{self.name}: no control path for a master connection")
        argv = self.ssh("-N", "-o", "ControlPersist=no")
        argv[argv.index("ControlMaster=no")] = "ControlMaster=yes"  # this one is the master
        return argv

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
        try:
            done = subprocess.run(self.argv(command), input=input, capture_output=True, text=True,
                                  errors="replace", timeout=timeout,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.name}: `{shlex.join(command)}` did not finish in {timeout:g} s"
                              ) from None
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()[-3:]
            if done.returncode == 255:  # ssh's own failure: the machine, not the command
                raise RemoteError(f"{self.name}: cannot reach {self.config.destination()} port "
                                  f"{self.config.port} with ssh: {' '.join(said) or 'no answer'}")
            raise RemoteError(f"{self.name}: `{shlex.join(command)}` exited {done.returncode}: "
                              f"{' '.join(said) or 'no output'}")
        return done

    def write_file(self, path: Path | str, text: str, mode: int = 0o644) -> None:
        """Write `text` into `path` on this machine (its folder must exist), with `mode`."""
        script = f'umask 077 && cat > "$0.part" && chmod {mode:o} "$0.part" && mv "$0.part" "$0"'
        self.run(["sh", "-c", script, str(path)], input=text)

    def read_file(self, path: Path | str) -> str:
        return self.run(["cat", str(path)]).stdout

    def read_pid(self, pid_file: str, timeout: float = 10.0) -> int:
        """The PID a process started with `started_argv` wrote, once it has written it."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.run(["cat", pid_file], check=False)
            text = done.stdout.strip()
            if done.returncode == 0 and text.isdigit():
                return int(text)
            if time.monotonic() > deadline:
                raise RemoteError(f"{self.name}: no PID in {pid_file} after {timeout:g} s")
            time.sleep(0.02)

    def signal_group(self, pid: int, signal_name: str) -> bool:
        """Send SIG`signal_name` to the process group `pid` there; False if it has gone."""
        return self.run(["kill", f"-{signal_name}", "--", f"-{pid}"], check=False).returncode == 0
