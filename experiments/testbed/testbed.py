"""The whole testbed for one trial: start everything in order, then stop everything.

    with Testbed(config, trial_dir) as testbed:   # network, controller, databases, web, probes
        testbed.start_load(start_at)              # open-loop load from the client host
        testbed.faults.crash("primary")           # a fault (experiments/testbed/faults.py)
    # here every process, bridge, interface and cgroup of the trial is gone

Start-up waits on conditions (a port answers, a query succeeds), never on fixed sleeps.
Whatever happens (an error, Ctrl-C), `stop()` stops every process by its recorded PID and
removes the network; what was recorded so far stays in the trial folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from experiments.results import files
from experiments.results.records import ExperimentLog
from experiments.testbed.cleanup import remove_cgroups
from experiments.testbed.control import ControllerClient
from experiments.testbed.daemons import LoadGenerator, ProberDaemon
from experiments.testbed.databases import keep_binlogs, start_databases
from experiments.testbed.faults import Faults
from experiments.testbed.machines import Machines
from experiments.testbed.mechanisms import MECHANISMS, Mechanism
from experiments.testbed.progress import Progress
from experiments.testbed.registry import earlier_run_alive, register, unregister
from experiments.testbed.runlock import RunLock
from services.mariadb import MariaDB
from services.power_switch import PowerSwitch
from services.runner import ProcessRunner, RunState, StartupError, signals_held
from services.secrets import RunSecrets
from services.web import PROJECT_ROOT, WebService
from topology.config import TestbedConfig
from topology.network import NetworkError, build_network, host_interfaces, start_network


class Testbed:
    """Starts and stops every part of the testbed for one trial, in one trial folder."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, config: TestbedConfig, trial_dir: Path, progress: Progress | None = None) -> None:
        # Nothing is created here, only in `__enter__`: what an interrupt between the two made
        # would belong to no one (`with` has not called `__enter__`, so nothing calls `stop`).
        self.config = config
        self.progress = progress  # a single run's progress lines, or None (silent)
        self.dir = trial_dir.resolve()  # daemons start in other folders: every path is absolute
        self.socket_dir: Path | None = None
        self.state: RunState | None = None
        self.runner: ProcessRunner | None = None
        self.machines: Machines | None = None  # the other machines the placement names
        self.net: Any = None
        self.databases: dict[str, MariaDB] = {}
        self.webs: dict[str, WebService] = {}
        self.events: ExperimentLog | None = None
        self.faults: Faults | None = None
        self._load: LoadGenerator | None = None  # the load of this trial, once started
        self.control: ControllerClient | None = None
        self.registry_entry: Path | None = None
        self.mechanism: Mechanism | None = None
        self.power_switch: PowerSwitch | None = None  # with failover.power_fence, under the controller

    def _prepare(self) -> None:
        """The trial folder, its state file, the socket folder and the parts' objects."""
        self.dir.mkdir(parents=True, exist_ok=True)
        # UNIX socket paths are limited to 107 bytes, so sockets live in a short private folder.
        # It is listed in the state file as it is made: an interrupt between the two would
        # leave a folder nothing knows of.
        with signals_held():
            self.socket_dir = Path(tempfile.mkdtemp(prefix="hatb-"))
            self.state = RunState(self.dir / files.STATE, folders=[str(self.socket_dir)])
            self.state.save()
            self.registry_entry = register(self.state.path)
        # The databases' and the web workers' accounts pass through it to their own folders
        # in it, by name: they can list nothing, and the secrets folder in it is root's.
        self.socket_dir.chmod(0o711)
        self.runner = ProcessRunner(self.dir, self.state, remote_dir=self.socket_dir)
        self.faults = Faults(self)
        self.mechanism = MECHANISMS[self.config.failover.mechanism](self)
        self.secrets_dir = self.socket_dir / "secrets"
        self.machines = Machines(self.config, self.socket_dir, self.state).prepare()
        self.databases = {
            plan.name: MariaDB(plan, i + 1, len(self.config.servers), self.dir, self.socket_dir,
                               self.config.database, files=self.machines.files_of(plan.name))
            for i, plan in enumerate(self.config.server_plans)
        }
        self.events = ExperimentLog(self.dir / files.EXPERIMENT_EVENTS,
                                    self.progress.event if self.progress is not None else None)

    def _remove_socket_dir(self) -> None:
        if self.socket_dir is None:
            return
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self.machines is not None:
            self.machines.remove_folders()
        if self.state is not None:
            self.state.folders = []
            self.state.save()

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> Testbed:
        # Before anything is created: a second testbed on the machine would break this one,
        # and a refused one has nothing to undo.
        self.lock = RunLock()
        try:
            problem = earlier_run_alive()
            if problem:
                raise StartupError(problem)
            self._prepare()
            self.start()
        except BaseException:  # stop() undoes whatever part of _prepare and start was done
            try:
                self.stop()
            finally:
                self.lock.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.lock.close()

    def start(self) -> None:
        (self.dir / files.CONFIG).write_text(json.dumps(self.config.to_dict(), indent=2))
        secrets = RunSecrets.generate(self.secrets_dir)
        self.control = ControllerClient(self.config.network.status_port, secrets.controller_token)
        self._say(f"starting the testbed: network, databases, web servers, {self.mechanism.mover} "
                  "(about 20 s)")
        self.machines.connect(self.runner, self.record)
        self.mechanism.before_network()
        self._start_network()
        self.mechanism.after_network()
        switches = ", ".join(self.config.fabric.switches)
        self._say(f"network up: {switches} and {len(self.config.host_plans)} hosts")
        start_databases(self.runner, self.databases, self.host, secrets)
        self._say("databases up, replicating master-master")
        self._start_web(secrets)
        self._say("web servers answer")
        self.mechanism.after_web()
        self.runner.wait_for(
            "the virtual IP answers the client",
            lambda: self.http_status("client", f"http://{self.config.network.vip}/health") == 200,
            timeout=20,
            process="controller",
        )
        first = self.databases[self.config.servers[0].name]
        self.runner.wait_for(
            "the controller makes the active server's database writable",
            lambda: first.query("SELECT @@read_only") == [(0,)],
            timeout=10,
            process="controller",
        )
        self.record("testbed_ready", active=self.config.servers[0].name)

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.say(text)

    def stop(self) -> None:
        """Stop everything this trial started; safe to call twice and after a partial start."""
        # Ctrl-C, SIGTERM or a hang-up during clean-up must not leave half of it undone, nor be
        # lost (a `--trials N` run went on with its next trial): held, and raised once it is done;
        # held in the clean-up's own commands too (they start no daemon).
        with signals_held(in_children=True):
            if self.power_switch is not None:  # no power cut while the parts are being stopped
                self.power_switch.stop()
                self.power_switch = None
            if self.runner is not None:
                # The prober first: servers stopping while it still probes read as failures,
                # and the controller moved the VIP back as the run ended (a link-down's primary
                # being back up by then).
                self.runner.stop(ProberDaemon.name)
                self.runner.stop_all()
            if self.net is not None:
                self.net.stop()
                # Mininet stops a RemoteController without ending the shell it started for it.
                for controller in self.net.controllers:
                    controller.terminate()
                self.net = None
                self.state.bridges, self.state.interfaces, self.state.shells = [], [], {}
                # Mininet's `cgdelete -r cpu,cpuacct,cpuset:/name` can stop at a busy hierarchy
                # and still count as done: what is left stays listed, for `make clean`.
                self.state.cgroups = remove_cgroups(self.state.cgroups)
                self.state.save()
            if self.runner is not None:  # the other machines' hosts and links went through them
                self.runner.stop_connections()
            keep_binlogs(self.databases.values())
            self._remove_socket_dir()  # the databases' datadirs with it
            if self.events is not None:
                self.events.file.flush()
            if self.state is not None and self.state.nothing_left():
                unregister(self.registry_entry)  # nothing of this run is left

    # -- the parts, in start order ------------------------------------------------------

    @property
    def probe_socket(self) -> Path:
        return self.socket_dir / files.PROBE_SOCKET

    def _start_network(self) -> None:
        # Building starts a shell per node (they hold the hosts' namespaces), makes the links
        # and the cgroups: an interrupt waits until `self.net` holds them all, for stop().
        with signals_held():
            # Recorded before anything exists, so that a run killed mid-way leaves a full list.
            config = self.config
            plans = config.host_plans
            self.state.bridges = list(config.fabric.switches)
            self.state.interfaces = [f"{p.switch}-eth{p.port}" for p in plans]
            self.state.interfaces += [i for link in config.fabric.links for i in link.interfaces]
            self.state.cgroups = [s.name for s in config.servers if s.cpu < 1.0]
            self.state.save()
            self.net = build_network(config, self.machines.remote)
            self.state.record_mininet_shells(self.net)
        try:
            start_network(self.net, self.config.web.port)
        except NetworkError as exc:
            raise StartupError(str(exc)) from None
        self.state.interfaces = host_interfaces(self.net)
        self.state.save()

    def _start_web(self, secrets: RunSecrets) -> None:
        for plan in self.config.server_plans:
            web = self.webs[plan.name] = WebService(plan, self.config.web, self.databases[plan.name],
                                                    self.socket_dir / f"web-{plan.name}",
                                                    bind_all=self.mechanism.web_on_vip,
                                                    probe_wake=self.mechanism.probe_wake(self.socket_dir),
                                                    files=self.machines.files_of(plan.name))
            web.write_secret(secrets.app_password)
            self.start_web(plan.name, wait=False)
        for name in self.webs:
            self._wait_web(name)

    def start_web(self, server: str, wait: bool = True) -> None:
        """Start `server`'s web service (again, after a crash); by default wait until it answers."""
        web = self.webs[server]
        self.runner.start(web.name, web.start_command(), host=self.host(server),
                          env=web.environment(), cwd=PROJECT_ROOT)
        if wait:
            self._wait_web(server)

    def _wait_web(self, server: str) -> None:
        web = self.webs[server]
        self.runner.wait_for(
            f"{web.name} answers /health",
            lambda: self.http_status("monitor", f"{web.url}/health") == 200,
            timeout=30,
            process=web.name,
        )

    # -- using the running testbed ------------------------------------------------------

    def host(self, name: str) -> Any:
        return self.net.get(name)

    def http_status(self, host: str, url: str, timeout: float = 1.0) -> int:
        """The HTTP status of GET `url` from inside `host` (0 when there is no answer)."""
        out = self.host(host).cmd(
            f"curl -s -o /dev/null -w '%{{http_code}}' --max-time {timeout} {url}"
        )
        try:
            return int(out.strip()[-3:])
        except ValueError:
            return 0

    def start_load(self, start_at: float, url: str | None = None, rate_file: Path | None = None) -> None:
        """Open-loop load from the client, to the VIP (or to `url`), starting at `start_at`."""
        load = LoadGenerator(self.config, self.dir / files.REQUESTS, start_at, url, rate_file)
        self.runner.start(load.name, load.start_command(), host=self.host("client"), cwd=PROJECT_ROOT)
        self._load = load

    def wait_load_done(self) -> None:
        self.runner.wait_for(
            "the load generator finishes",
            lambda: not self.runner.processes[self._load.name].running(),
            timeout=self._load.longest_s,
            interval=0.1,
        )

    def load_problem(self, recorded: int | None) -> str | None:
        """What went wrong with this trial's load (`LoadGenerator.problem`); None without a load."""
        load = self._load
        return None if load is None else load.problem(self.runner.processes[load.name], recorded)

    def record(self, kind: str, **fields: object) -> float:
        """Write an experiment event (a fault, a phase) to the trial's event log; returns its time."""
        return self.events.record(kind, **fields)


__all__ = ["Testbed", "StartupError"]
