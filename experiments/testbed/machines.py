"""The other machines of a run (the config's [placement]): their folders, their connections.

A server placed on another machine keeps its files in a folder there with the same path as
the run's temporary folder here (`/tmp/hatb-...`), so that every path a daemon's config names
is the same on every machine. The head reaches that machine through one SSH master connection
(topology/remote.py), started by the run's process runner like any other process: the host's
shell, every command, and a UNIX socket here for each database there ride on it.

Before anything starts there, the head checks each machine (`check_machine`): SSH answers,
it has the project at the same path and at the same version (`project_fingerprint`), the
programs and accounts a server needs, and a clock close to the head's. Every time a figure is
made of comes from the head (the load generator, the prober, the controller); the offset is
measured, recorded, and refused beyond `CLOCK_LIMIT_MS`, so that a log read side by side is
not misleading.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.files import LocalFiles, RemoteFiles
from services.mariadb import server_dir, socket_path
from services.runner import ProcessRunner, RunState, StartupError, signals_held
from services.web import PROJECT_ROOT
from topology.config import TestbedConfig
from topology.remote import RemoteError, RemoteMachine


class Machines:
    """The other machines one run uses, by name (none when everything runs on the head)."""

    def __init__(self, config: TestbedConfig, socket_dir: Path, state: RunState) -> None:
        self.config, self.socket_dir, self.state = config, socket_dir, state
        placed = {self.config.machine_of(plan.name) for plan in config.host_plans} - {None}
        self.remote = {m.name: RemoteMachine(m, control_path=socket_dir / f"ssh-{m.name}.ctl")
                       for m in sorted(placed, key=lambda m: m.name)}

    def servers_on(self, name: str) -> list[str]:
        return [plan.name for plan in self.config.server_plans
                if getattr(self.config.machine_of(plan.name), "name", None) == name]

    def prepare(self) -> Machines:
        """The run's folder on each machine, and here the folder of each forwarded socket.

        A machine that already sees this machine's folder is this machine, or shares its /tmp:
        its files would be this one's, and it is refused.
        """
        for name, machine in self.remote.items():
            try:
                if machine.run(["test", "-e", str(self.socket_dir)], check=False).returncode == 0:
                    raise StartupError(f"machine {name} ({machine.config.address}) sees this machine's "
                                       f"{self.socket_dir}: it is this machine, or shares its /tmp")
                with signals_held():
                    machine.run(["mkdir", "-m", "711", str(self.socket_dir)])
                    self.state.remote_folders.append({"machine": name, "path": str(self.socket_dir)})
                    self.state.save()
            except RemoteError as error:
                raise StartupError(str(error)) from None
            for server in self.servers_on(name):
                server_dir(self.socket_dir, server).mkdir(mode=0o700)
        return self

    def files_of(self, host: str) -> LocalFiles | RemoteFiles:
        """Where `host`'s files are made: here, or on its machine."""
        machine = self.config.machine_of(host)
        return LocalFiles() if machine is None else RemoteFiles(self.remote[machine.name])

    def connect(self, runner: ProcessRunner, record: Callable[..., object]) -> list[MachineCheck]:
        """Start each machine's master connection, with a socket here per database there, and
        check the machine through it (`check_machine`): StartupError on the first problem.
        Each check's clock offset goes to the event log (`record`, as `machine_checked`)."""
        checks = []
        for name, machine in self.remote.items():
            forwards = tuple((socket_path(self.socket_dir, server),) * 2 for server in self.servers_on(name))
            runner.start_connection(f"ssh-{name}", machine.master_command(forwards))
            runner.wait_for(f"the SSH connection to {name} is up", machine.master_ready, timeout=15,
                            process=f"ssh-{name}", interval=0.05)
            check = check_machine(machine)
            if check.problems:
                raise StartupError(f"machine {check.summary()}")
            checks.append(check)
            record("machine_checked", machine=name, clock_offset_ms=check.clock_offset_ms,
                   clock_uncertainty_ms=check.clock_uncertainty_ms)
        return checks

    def remove_folders(self) -> None:
        """Remove the run's folder on each machine; one that cannot be stays listed, for `make clean`."""
        for folder in list(self.state.remote_folders):
            try:
                RemoteFiles(self.remote[folder["machine"]]).remove(Path(folder["path"]))
            except RemoteError as error:
                print(f"warning: {folder['path']} on {folder['machine']} was not removed: {error}",
                      file=sys.stderr)
                continue
            self.state.remote_folders.remove(folder)
            self.state.save()


# -- the checks before a run ------------------------------------------------------------------

CLOCK_LIMIT_MS = 50.0  # beyond this, the machines' logs side by side would mislead
CLOCK_SAMPLES = 5
# What a server host runs there: the programs, and the accounts its daemons run as.
SERVER_PROGRAMS = ("mnexec", "nsenter", "mariadbd", "mariadb-install-db", "ethtool", "ip", "env", "tar")
SERVER_ACCOUNTS = ("mysql", "hatb-web")
FINGERPRINTED = ("topology", "services", "controller", "experiments")


def project_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A hash of the project's Python code: two machines with the same one run the same code."""
    digest = hashlib.sha256()
    for path in sorted(p for folder in FINGERPRINTED for p in (root / folder).rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def clock_offset(samples: Sequence[tuple[float, float, float]]) -> tuple[float, float]:
    """The other clock minus this one, and how sure (half the round trip), in ms, from samples
    (sent here, read there, answered here), by the sample with the shortest round trip: as
    NTP does, the one least delayed on the way."""
    if not samples:
        raise ValueError("no clock samples")
    sent, there, back = min(samples, key=lambda s: s[2] - s[0])
    return (there - (sent + back) / 2) * 1000, (back - sent) / 2 * 1000


@dataclass(frozen=True)
class MachineCheck:
    """What the head found on another machine; `problems` empty when it can take part."""

    machine: str
    problems: tuple[str, ...]
    clock_offset_ms: float | None = None
    clock_uncertainty_ms: float | None = None

    def summary(self) -> str:
        clock = ("" if self.clock_offset_ms is None
                 else f"clock {self.clock_offset_ms:+.1f} ms (+/- {self.clock_uncertainty_ms:.1f})")
        if not self.problems:
            return f"{self.machine}: ready; {clock}"
        return f"{self.machine}: " + "; ".join(self.problems)


def judge(machine: str, fingerprint_here: str, fingerprint_there: str, missing_programs: Sequence[str],
          missing_accounts: Sequence[str], offset: tuple[float, float] | None) -> MachineCheck:
    """The verdict on what was found (pure: the SSH side is `check_machine`)."""
    problems = []
    if fingerprint_there != fingerprint_here:
        problems.append(f"its project at {PROJECT_ROOT} is not this one's (code "
                        f"{fingerprint_there or 'missing'}, here {fingerprint_here}): copy this project "
                        "there (same path) and run `make setup`")
    if missing_programs:
        problems.append(f"not installed there: {', '.join(missing_programs)}: run `make setup` there")
    if missing_accounts:
        problems.append(f"no account {', '.join(missing_accounts)} there: run `make setup` there")
    if offset is None:
        problems.append("its clock could not be read (`date +%s.%N` there)")
    elif abs(offset[0]) > CLOCK_LIMIT_MS:
        problems.append(f"its clock is {offset[0]:+.0f} ms from this one's (at most {CLOCK_LIMIT_MS:g}): "
                        "synchronise both (chrony or systemd-timesyncd)")
    return MachineCheck(machine, tuple(problems), *(offset or (None, None)))


def check_machine(machine: RemoteMachine, clock: Callable[[], float] = time.time) -> MachineCheck:
    """Ask `machine` what `judge` needs, over SSH; a machine SSH cannot reach is one problem."""
    try:
        machine.run(["true"])
    except RemoteError as error:
        return MachineCheck(machine.name, (str(error),))
    python = str(PROJECT_ROOT / ".venv" / "bin" / "python")
    script = ("from experiments.testbed.machines import project_fingerprint; print(project_fingerprint())")
    there = machine.run(["env", "-C", str(PROJECT_ROOT), python, "-c", script], check=False).stdout.strip()
    programs = machine.run(["sh", "-c", 'for p in "$@"; do command -v "$p" >/dev/null || echo "$p"; done',
                            "sh", *SERVER_PROGRAMS], check=False).stdout.split()
    accounts = machine.run(["sh", "-c", 'for a in "$@"; do id -u "$a" >/dev/null 2>&1 || echo "$a"; done',
                            "sh", *SERVER_ACCOUNTS], check=False).stdout.split()
    samples = machine.clock_samples(CLOCK_SAMPLES, clock)
    offset = clock_offset(samples) if samples else None
    return judge(machine.name, project_fingerprint(), there.splitlines()[-1] if there else "",
                 programs, accounts, offset)
