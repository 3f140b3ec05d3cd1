"""The experiment's own daemons, one class each, like services/web.py: a name, a start command
and what "ready" means. The process runner (services/runner.py) starts, records and stops them.

- `ControllerDaemon`: the failover controller (os-ken), on the root namespace's loopback;
- `ProberDaemon`: the health prober, inside the monitor host;
- `FollowerDaemon`: the databases' roles under keepalived or HAProxy (controller/follower.py),
  in the root namespace;
- `LoadGenerator`: the open-loop load generator (experiments/load/loadgen.py), inside a client.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from experiments.load.loadgen import request_count
from experiments.results import files
from experiments.results.records import read_events
from services.runner import ManagedProcess
from topology.config import TestbedConfig


@dataclass(frozen=True)
class ControllerDaemon:
    config: TestbedConfig
    config_path: Path
    run_dir: Path
    socket_dir: Path
    probe_socket: Path
    token_file: Path
    prober_pid_file: Path

    name = "controller"

    def start_command(self) -> list[str]:
        return [sys.executable, "-m", "controller", "--config", str(self.config_path),
                "--run-dir", str(self.run_dir), "--probe-socket", str(self.probe_socket),
                "--socket-dir", str(self.socket_dir), "--token-file", str(self.token_file),
                "--prober-pid-file", str(self.prober_pid_file)]

    def ports_in_use(self) -> list[int]:
        return controller_ports_in_use(self.config)

    @property
    def readiness(self) -> str:
        return f"the controller listens on 127.0.0.1:{self.config.network.controller_port}"

    def ready(self) -> bool:
        """The OpenFlow port accepts a connection."""
        return listening("127.0.0.1", self.config.network.controller_port)


@dataclass(frozen=True)
class ProberDaemon:
    config_path: Path
    probe_socket: Path
    out: Path
    wake: Path  # where it hears words that a server may have failed

    name = "prober"

    def start_command(self) -> list[str]:
        return [sys.executable, "-m", "controller.prober", "--config", str(self.config_path),
                "--socket", str(self.probe_socket), "--out", str(self.out), "--wake", str(self.wake)]


@dataclass(frozen=True)
class FollowerDaemon:
    config_path: Path
    run_dir: Path
    socket_dir: Path

    name = "follower"
    readiness = "the follower reads keepalived's or HAProxy's reports"

    def start_command(self) -> list[str]:
        return [sys.executable, "-m", "controller.follower", "--config", str(self.config_path),
                "--run-dir", str(self.run_dir), "--socket-dir", str(self.socket_dir)]

    def ready(self) -> bool:
        """It has said in the event log that it started (its inputs are open)."""
        log = self.run_dir / files.CONTROLLER_EVENTS
        return log.exists() and any(event["kind"] == "follower_started" for event in read_events(log))


@dataclass(frozen=True)
class LoadGenerator:
    """Open-loop load to `url` from `start_at` (epoch s), with the config's rate and mix.

    With `rate_file`, the rate can be changed while it runs by rewriting that file.
    """

    config: TestbedConfig
    out: Path
    start_at: float
    url: str | None = None
    rate_file: Path | None = None

    name = "loadgen"

    def start_command(self) -> list[str]:
        load, network = self.config.load, self.config.network
        command = [
            sys.executable, "-m", "experiments.load.loadgen",
            "--url", self.url or f"http://{network.vip}:{self.config.web.port}",
            "--rate", str(load.rate), "--duration", str(load.duration_s),
            "--post-ratio", str(load.post_ratio), "--timeout", str(load.timeout_s),
            "--start-at", f"{self.start_at:.6f}", "--out", str(self.out),
        ]
        if self.rate_file is not None:
            command += ["--rate-file", str(self.rate_file)]
        return command

    def problem(self, process: ManagedProcess, recorded: int | None) -> str | None:
        """What went wrong with the load, if anything: the generator (`process`, its record in
        the runner) failed, or recorded (`recorded` rows in its file, None for no file) fewer
        requests than it planned (a short load would hide requests the failover lost, and
        writes the ledger never sees)."""
        code = process.popen.poll()
        if code != 0:
            how = "is still running" if code is None else f"exited with code {code}"
            return f"the load generator {how} (logs/{self.name}.log: {process.log_tail(3) or 'no output'})"
        if recorded is None:
            return f"the load generator left no {self.out.name}"
        if self.planned is not None and recorded != self.planned:
            return f"the load generator recorded {recorded} of the {self.planned} requests it planned"
        return None

    @property
    def planned(self) -> int | None:
        """How many requests it sends, if that is known before (not with a rate file)."""
        return None if self.rate_file is not None else request_count(self.config.load.rate,
                                                                     self.config.load.duration_s)

    @property
    def longest_s(self) -> float:
        """How long it can take at most: the load, the last request's time-out, and a margin."""
        return self.config.load.duration_s + self.config.load.timeout_s + 30


def controller_ports_in_use(config: TestbedConfig) -> list[int]:
    """The controller's ports that something already listens on (an earlier run's controller
    left running, say): its readiness check would be answered by a stranger."""
    ports = (config.network.controller_port, config.network.status_port)
    return [port for port in ports if listening("127.0.0.1", port)]


def listening(host: str, port: int) -> bool:
    """Whether something accepts a TCP connection on `host`:`port`."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
