"""A second machine simulated on this one: an SSH server on another loopback address, with a
`/tmp` of its own, so that a testbed with a server "on another machine" runs the very code
it runs across real machines, SSH included, where there is only one machine.

    with SimulatedMachine(folder, "127.0.0.2", 2222) as machine:
        config = load_config(...)   # with machine.config() as a [[machines]] entry

It shares this machine's kernel (its network namespaces, its /proc) and its file system but
for `/tmp`, where a run keeps its databases, sockets and secrets: what the head forgets to
send there, or reads from its own /tmp instead of asking the other machine, fails here as it
would across two machines. `sdn-ha machines simulate` runs one until Ctrl-C.

Everything it makes (its keys, its sshd config and log) is in `folder`; the one process it
starts, sshd, is stopped by its recorded PID (its process group).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from experiments.testbed.daemons import listening
from services.runner import process_record
from topology.placement import MachineConfig

SSHD = Path("/usr/sbin/sshd")
PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")  # sshd refuses to start without it
READY_TIMEOUT_S = 10.0

SSHD_CONFIG = """\
# The simulated machine's SSH server (experiments/testbed/simulated_machine.py): root logs in
# with the key in this folder only, on {address}:{port} only.
ListenAddress {address}:{port}
HostKey {folder}/host_key
PidFile none
AuthorizedKeysFile {folder}/authorized_keys
# The folder is root's and 0700, but its parent (/var/tmp) is writable by all, which the strict
# check of the path refuses.
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers root
UseDNS no
PrintMotd no
# The server's link to the head's switch is an SSH tunnel (tap devices): it needs no more than
# the tun driver, where GRE needs the kernel's ip_gre (which this project's machines lack).
PermitTunnel ethernet
"""


class SimulatedMachineError(RuntimeError):
    """The simulated machine could not start; the message says what is missing."""


class SimulatedMachine:
    """An SSH server on `address`:`port` whose root has a private /tmp (see the module's doc)."""

    def __init__(self, folder: Path, address: str = "127.0.0.2", port: int = 2222,
                 name: str = "m2") -> None:
        self.folder = folder.resolve()
        self.address, self.port, self.name = address, port, name
        self.process: subprocess.Popen | None = None

    def config(self) -> MachineConfig:
        """How the head reaches it: the [[machines]] entry of a config."""
        return MachineConfig(name=self.name, address=self.address, user="root", port=self.port,
                             key=str(self.folder / "id_ed25519"),
                             known_hosts=str(self.folder / "known_hosts"), tunnel="ssh")

    def toml(self) -> str:
        machine = self.config()
        return (f'[[machines]]\nname = "{machine.name}"\naddress = "{machine.address}"\n'
                f'user = "root"\nport = {machine.port}\nkey = "{machine.key}"\n'
                f'known_hosts = "{machine.known_hosts}"\ntunnel = "ssh"\n')

    def __enter__(self) -> SimulatedMachine:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if not SSHD.exists():
            raise SimulatedMachineError(f"no {SSHD}: install openssh-server (`make setup` does)")
        if self.folder.is_relative_to("/tmp"):
            raise SimulatedMachineError(f"{self.folder}: its folder must be outside /tmp, which it replaces "
                                        "with its own (e.g. /var/tmp/sdn-ha-m2)")
        if listening(self.address, self.port):
            raise SimulatedMachineError(f"something already listens on {self.address}:{self.port}; "
                                        "stop it, or give another --port")
        self._make_keys()
        PRIVILEGE_SEPARATION_DIR.mkdir(mode=0o755, exist_ok=True)
        config = self.folder / "sshd_config"
        config.write_text(SSHD_CONFIG.format(address=self.address, port=self.port, folder=self.folder))
        # A mount namespace of its own, with a fresh /tmp: the "other machine's" files.
        script = f"mount -t tmpfs -o mode=1777 tmpfs /tmp && exec {SSHD} -D -e -f {config}"
        with open(self.folder / "sshd.log", "ab") as log:
            self.process = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                             "sh", "-c", script], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # What it started, for a look after a crash (it is stopped by the object that started it).
        (self.folder / "sshd.json").write_text(json.dumps(process_record(self.process.pid)) + "\n")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not listening(self.address, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_text = (self.folder / "sshd.log").read_text(errors="replace")[-1500:]
                self.stop()
                raise SimulatedMachineError(f"sshd on {self.address}:{self.port} did not start; "
                                            f"{self.folder}/sshd.log ends with:\n{log_text}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop sshd and every session it still has (its process group, and theirs)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None

    def _make_keys(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for key in ("host_key", "id_ed25519"):
            if not (self.folder / key).exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"sdn-ha {self.name}",
                                "-f", str(self.folder / key)],
                               check=True, capture_output=True, timeout=30)
        shutil.copy(self.folder / "id_ed25519.pub", self.folder / "authorized_keys")
        kind, key = (self.folder / "host_key.pub").read_text().split()[:2]
        (self.folder / "known_hosts").write_text(f"[{self.address}]:{self.port} {kind} {key}\n")

