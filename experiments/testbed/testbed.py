"""The whole testbed for one trial: start everything in order, inject faults, stop everything.

    with Testbed(config, trial_dir) as testbed:   # network, controller, databases, web, probes
        testbed.start_load(start_at)              # open-loop load from the client host
        testbed.crash_server("primary")           # a fault
    # here every process, bridge, interface and cgroup of the trial is gone

Start-up waits on conditions (a port answers, a query succeeds), never on fixed sleeps.
Whatever happens (an error, Ctrl-C), `stop()` stops every process by its recorded PID and
removes the network; what was recorded so far stays in the trial folder.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import pymysql

from controller.eventlog import EVENT_LOG
from experiments.results import files
from experiments.testbed.runlock import RunLock
from services.mariadb import MariaDB
from services.runner import STOP_SIGNALS, ProcessRunner, RunState, StartupError, signals_held
from services.secrets import RunSecrets
from services.web import PROJECT_ROOT, WebService
from topology.config import TestbedConfig
from topology.network import build_network, host_interfaces, start_network

EXPERIMENT_EVENTS = files.EXPERIMENT_EVENTS
FAULT_COOKIE = "0xfa17"  # marks the flows a fault adds to the switch (never the controller's)


class Testbed:
    """Starts and stops every part of the testbed for one trial, in one trial folder."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, config: TestbedConfig, trial_dir: Path) -> None:
        # Nothing is created here, only in `__enter__`: what an interrupt between the two made
        # would belong to no one (`with` has not called `__enter__`, so nothing calls `stop`).
        self.config = config
        self.dir = trial_dir.resolve()  # daemons start in other folders: every path is absolute
        self.socket_dir: Path | None = None
        self.state: RunState | None = None
        self.runner: ProcessRunner | None = None
        self.net: Any = None
        self.databases: dict[str, MariaDB] = {}
        self.webs: dict[str, WebService] = {}
        self.links_down: set[str] = set()
        self.hung: set[str] = set()
        self.event_file: IO[str] | None = None

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
        self.runner = ProcessRunner(self.dir, self.state)
        self.secrets_dir = self.socket_dir / "secrets"
        self.databases = {
            plan.name: MariaDB(plan, i + 1, len(self.config.servers), self.dir, self.socket_dir,
                               self.config.database)
            for i, plan in enumerate(self.config.server_plans)
        }
        self.event_file = open(self.dir / EXPERIMENT_EVENTS, "a", buffering=1)

    def _remove_socket_dir(self) -> None:
        if self.socket_dir is None:
            return
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self.state is not None:
            self.state.folders = []
            self.state.save()

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> Testbed:
        # Before anything is created: a second testbed on the machine would break this one,
        # and a refused one has nothing to undo.
        self.lock = RunLock()
        try:
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
        config_path = self.dir / files.CONFIG
        config_path.write_text(json.dumps(self.config.to_dict(), indent=2))
        secrets = RunSecrets.generate(self.secrets_dir)
        self.token = secrets.controller_token
        self._start_controller(config_path)
        self._start_network()
        self._start_databases(secrets)
        self._start_web()
        self.runner.start(
            "prober",
            [sys.executable, "-m", "controller.prober", "--config", str(config_path),
             "--socket", str(self.probe_socket), "--out", str(self.dir / files.PROBES)],
            host=self.host("monitor"),
            cwd=PROJECT_ROOT,
        )
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

    def stop(self) -> None:
        """Stop everything this trial started; safe to call twice and after a partial start."""
        # Ctrl-C, SIGTERM or a hang-up during clean-up must not leave half of it undone.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
        try:
            if self.runner is not None:
                self.runner.stop_all()
            if self.net is not None:
                self.net.stop()
                # Mininet stops a RemoteController without ending the shell it started for it.
                for controller in self.net.controllers:
                    controller.terminate()
                self.net = None
                self.state.bridges, self.state.interfaces, self.state.cgroups = [], [], []
                self.state.shells = {}
                self.state.save()
            for db in self.databases.values():
                shutil.rmtree(db.datadir, ignore_errors=True)  # large and of no use after the run
            self._remove_socket_dir()
            if self.event_file is not None:
                self.event_file.flush()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- the parts, in start order ------------------------------------------------------

    @property
    def probe_socket(self) -> Path:
        return self.socket_dir / files.PROBE_SOCKET

    def _start_controller(self, config_path: Path | None = None) -> None:
        config_path = config_path or self.dir / files.CONFIG
        self.runner.start(
            "controller",
            [sys.executable, "-m", "controller", "--config", str(config_path),
             "--run-dir", str(self.dir), "--probe-socket", str(self.probe_socket),
             "--socket-dir", str(self.socket_dir),
             "--token-file", str(self.secrets_dir / RunSecrets.FILES["controller_token"])],
            cwd=PROJECT_ROOT,
        )
        port = self.config.network.controller_port
        self.runner.wait_for(
            f"the controller listens on 127.0.0.1:{port}",
            lambda: _tcp_answers("127.0.0.1", port),
            timeout=20,
            process="controller",
        )

    def vip_placements(self) -> int:
        """How many times a controller has placed the VIP on the switch (installed or adopted)."""
        text = (self.dir / EVENT_LOG).read_text()
        return text.count('"kind": "vip_installed"') + text.count('"kind": "vip_adopted"')

    def _wait_vip_placed(self, placements_before: int) -> None:
        self.runner.wait_for(
            "the switch connects to the controller and the VIP is placed",
            lambda: self.vip_placements() > placements_before,
            timeout=20,
            process="controller",
        )

    def _start_network(self) -> None:
        # Building starts a shell per node (they hold the hosts' namespaces), makes the links
        # and the cgroups: an interrupt waits until `self.net` holds them all, for stop().
        with signals_held():
            # Recorded before anything exists, so that a run killed mid-way leaves a full list.
            self.state.bridges = [self.config.network.switch]
            self.state.interfaces = [f"{self.config.network.switch}-eth{p.port}" for p in self._all_plans()]
            self.state.cgroups = [s.name for s in self.config.servers if s.cpu < 1.0]
            self.state.save()
            self.net = build_network(self.config)
            self.state.record_mininet_shells(self.net)
        start_network(self.net)
        self.state.interfaces = host_interfaces(self.net)
        self.state.save()
        self._wait_vip_placed(0)

    def _start_databases(self, secrets: RunSecrets) -> None:
        for name, db in self.databases.items():
            db.write_config()
            self.runner.run(
                f"install-{db.name}", db.install_command(), timeout=120, also_log=db.error_log
            )
            self.runner.start(db.name, db.start_command(), host=self.host(name))
        for db in self.databases.values():
            self.runner.wait_for(f"{db.name} accepts queries", db.is_ready, timeout=60, process=db.name)
        dbs = list(self.databases.values())
        for db in dbs:
            peers = [other.plan.ip for other in dbs if other is not db]
            db.create_users(secrets, peers)
        # A ring: each server replicates from the one before it (for two: master-master).
        for i, db in enumerate(dbs):
            db.replicate_from(dbs[i - 1], secrets)
        for db in dbs:
            self.runner.wait_for(f"{db.name} replicates", db.replica_running, timeout=30, process=db.name)
        # The schema comes after the replicas are connected: with semi-sync, its statements
        # would otherwise each wait out the acknowledgement time-out (the first one, 30 s
        # with a patient setting) and the run would start fallen back to asynchronous.
        dbs[0].create_schema()
        for db in dbs:
            self.runner.wait_for(f"{db.name} has the app schema", db.has_schema, timeout=30, process=db.name)

    def _start_web(self) -> None:
        for plan in self.config.server_plans:
            database = self.databases[plan.name]
            self.webs[plan.name] = WebService(plan, self.config.web, database, self.secrets_dir)
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

    def _all_plans(self) -> list:
        config = self.config
        return [config.client, config.monitor, *config.server_plans, *config.extra_clients]

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
        """Open-loop load from the client, to the VIP (or to `url`), starting at `start_at`.

        With `rate_file`, the rate can be changed while it runs by rewriting that file.
        """
        load = self.config.load
        command = [
            sys.executable, "-m", "experiments.load.loadgen",
            "--url", url or f"http://{self.config.network.vip}:{self.config.web.port}",
            "--rate", str(load.rate), "--duration", str(load.duration_s),
            "--post-ratio", str(load.post_ratio), "--timeout", str(load.timeout_s),
            "--start-at", f"{start_at:.6f}", "--out", str(self.dir / files.REQUESTS),
        ]
        if rate_file is not None:
            command += ["--rate-file", str(rate_file)]
        self.runner.start("loadgen", command, host=self.host("client"), cwd=PROJECT_ROOT)

    def wait_load_done(self) -> None:
        load = self.config.load
        self.runner.wait_for(
            "the load generator finishes",
            lambda: not self.runner.processes["loadgen"].running(),
            timeout=load.duration_s + load.timeout_s + 30,
            interval=0.1,
        )

    def record(self, kind: str, **fields: object) -> float:
        """Write an experiment event (a fault, a phase) to the trial's event log; returns its time."""
        now = time.time()
        record = {"time": now, "source": "experiment", "kind": kind, **fields}
        self.event_file.write(json.dumps(record) + "\n")
        return now

    # -- faults -------------------------------------------------------------------------

    def crash(self, server: str) -> None:
        """The whole server dies: web server and database killed, link down (the link last, so
        the switch's port-down event comes when nothing on the server answers any more)."""
        self.kill_web(server)
        self.kill_database(server)
        self.link_down(server)

    def kill_web(self, server: str) -> None:
        self.runner.signal(self.webs[server].name, signal.SIGKILL)

    def kill_database(self, server: str) -> None:
        self.runner.signal(self.databases[server].name, signal.SIGKILL)

    def start_database(self, server: str) -> None:
        """Start `server`'s database again (after a crash) and wait until it answers.

        The sessions its peers still hold for its dead replica threads are closed first, so
        that it catches up as soon as it is back (see `MariaDB.drop_replica_sessions`).
        """
        db = self.databases[server]
        for name, peer in self.databases.items():
            if name != server and name not in self.hung and self.runner.processes[peer.name].running():
                try:
                    peer.drop_replica_sessions(db.plan.ip)
                except (pymysql.MySQLError, OSError):
                    pass  # a peer that does not answer holds up nothing: it sends nothing either
        self.runner.start(db.name, db.restart_command(), host=self.host(server))
        self.runner.wait_for(f"{db.name} accepts queries", db.is_ready, timeout=60, process=db.name)
        db.resume_replication()

    def bring_back(self) -> list[str]:
        """Undo what a fault left: links up, frozen processes resumed, dead databases restarted.

        Returns what it did, one line each. Web servers stay as they are: only the data matters
        after a trial.
        """
        done = []
        for server in sorted(self.links_down):
            self.link_up(server)
            done.append(f"link of {server} up")
        for server, db in self.databases.items():
            self.runner.signal(db.name, signal.SIGCONT)
            if not self.runner.processes[db.name].running():
                self.start_database(server)
                done.append(f"database of {server} restarted")
        return done

    def recover(self, server: str) -> list[str]:
        """Bring `server` back whole after any fault: link up, frozen processes resumed, the
        database and web server started again if dead (each waited for). Returns what it did.

        Its database rejoins as a replica and catches up on its own; it holds no VIP until the
        controller decides so (a failback, or the next failure of the active server).
        """
        done = []
        if server in self.links_down:
            self.link_up(server)
            done.append(f"link of {server} up")
        db, web = self.databases[server], self.webs[server]
        if server in self.hung:
            self.resume(server)
            done.append(f"{db.name} and {web.name} resumed")
        if not self.runner.processes[db.name].running():
            self.start_database(server)
            done.append(f"{db.name} restarted")
        if not self.runner.processes[web.name].running():
            self.start_web(server)
            done.append(f"{web.name} restarted")
        return done

    def hang(self, server: str) -> None:
        """Freeze `server`'s web server and database (SIGSTOP): alive, but answering nothing."""
        self.hung.add(server)
        for name in (self.webs[server].name, self.databases[server].name):
            self.runner.signal(name, signal.SIGSTOP)

    def resume(self, server: str) -> None:
        self.hung.discard(server)
        for name in (self.databases[server].name, self.webs[server].name):
            self.runner.signal(name, signal.SIGCONT)

    def cut_replication(self) -> None:
        """Drop the databases' traffic (TCP 3306) in the switch; clients and probes still pass."""
        for direction in ("tp_dst", "tp_src"):
            self._ofctl("add-flow", f"cookie={FAULT_COOKIE},priority=400,tcp,{direction}=3306,actions=drop")

    def restore_replication(self) -> None:
        self._ofctl("del-flows", f"cookie={FAULT_COOKIE}/-1")

    def _ofctl(self, command: str, flow: str) -> None:
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", command, self.config.network.switch, flow],
                       check=True, capture_output=True)

    def link_down(self, server: str) -> None:
        """Cut `server`'s cable: the switch's side first, so the switch sees it at once."""
        self._set_link(server, "down")

    def link_up(self, server: str) -> None:
        self._set_link(server, "up")

    def _set_link(self, server: str, state: str) -> None:
        if state == "down":
            self.links_down.add(server)
        else:
            self.links_down.discard(server)
        # `ip` straight on the switch's interface (root namespace): a fault is injected in a
        # few milliseconds, not the tens that a round trip through Mininet's shells costs.
        switch_side = f"{self.config.network.switch}-eth{self.config.server(server).port}"
        subprocess.run(["ip", "link", "set", "dev", switch_side, state], check=True)
        self.host(server).cmd(f"ip link set dev {self.host(server).defaultIntf().name} {state}")

    def controller(self, command: str | None = None) -> tuple[int, dict]:
        """GET /status from the controller, or POST a command with the run's token."""
        url = f"http://127.0.0.1:{self.config.network.status_port}"
        if command is None:
            request = urllib.request.Request(f"{url}/status")
        else:
            request = urllib.request.Request(f"{url}/command/{command}", data=b"", method="POST")
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def active_server(self) -> str | None:
        """Who holds the VIP, as the controller says; None while it cannot say."""
        try:
            return self.controller()[1].get("active")
        except (OSError, ValueError):
            return None

    def kill_controller(self) -> None:
        """The controller crashes; the switch (fail-mode secure) keeps forwarding on its flows."""
        self.runner.signal("controller", signal.SIGKILL)
        self.runner.processes["controller"].popen.wait(5)

    def start_controller_again(self) -> None:
        """Start a new controller and wait until it has read the VIP's place from the switch."""
        placements = self.vip_placements()
        self._start_controller()
        self._wait_vip_placed(placements)


def _tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


__all__ = ["Testbed", "StartupError"]
