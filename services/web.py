"""The web daemon of a server host: gunicorn serving `services.webapp` on the host's port 80.

Its workers, which take the requests, run as the unprivileged `hatb-web` account
(`setup/install.sh` creates it): they can read their own database password and reach the
database's socket, and nothing else of the run. gunicorn's master stays root, as nginx's
and Apache's do: it binds the port, imports the app (`--preload`: the project may be in a
folder only root can read) and watches its workers, and takes no request itself.
"""

from __future__ import annotations

import grp
import pwd
import sys
from pathlib import Path

from services.files import LocalFiles, RemoteFiles
from services.mariadb import MariaDB
from topology.config import HostPlan, WebConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The account the web workers run as.
WEB_USER = "hatb-web"


class WebService:
    """Gives gunicorn's command and environment for one server host, and writes its secret."""

    def __init__(self, plan: HostPlan, web: WebConfig, db: MariaDB, secret_dir: Path,
                 bind_all: bool = False, probe_wake: Path | None = None,
                 files: LocalFiles | RemoteFiles | None = None) -> None:
        self.plan = plan
        self.files = files or LocalFiles()  # its folder is made on its machine
        # The prober's wake socket, to say at once that the database is lost (`probe.agent`).
        self.probe_wake = probe_wake
        # Under keepalived the VIP is an address of the master itself: it must be served too.
        self.bind_all = bind_all
        self.web = web
        self.db = db
        # Its own folder, outside the run's secrets folder: the database password alone.
        self.secret_dir = secret_dir

    @property
    def name(self) -> str:
        return f"web-{self.plan.name}"

    @property
    def url(self) -> str:
        return f"http://{self.plan.ip}:{self.web.port}"

    def write_secret(self, app_password: str) -> None:
        """The database password, readable by the web account only (and root)."""
        self.files.make_dir(self.secret_dir, WEB_USER, 0o500)
        self.files.write(self.secret_dir / "app.password", app_password, WEB_USER, 0o400)

    def start_command(self) -> list[str]:
        group = grp.getgrgid(pwd.getpwnam(WEB_USER).pw_gid).gr_name
        return [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{'0.0.0.0' if self.bind_all else self.plan.ip}:{self.web.port}",
            "--workers", str(self.web.workers),
            "--threads", str(self.web.threads),
            "--worker-class", "gthread",
            "--preload",
            # The workers drop to the web account, with its group alone (the hooks set the
            # supplementary groups: see there).
            "--user", WEB_USER, "--group", group,
            "--config", "python:services.gunicorn_hooks",
            # No reverse DNS, no access log: both cost time at hundreds of requests a second.
            "--no-sendfile",
            "--graceful-timeout", "2",
            # Its default control socket is one path in root's home for every server: not ours.
            "--no-control-socket",
            "--chdir", str(PROJECT_ROOT),
            "services.webapp:application",
        ]

    def environment(self) -> dict[str, str]:
        return {
            "TESTBED_NODE": self.plan.name,
            "TESTBED_DB_SOCKET": str(self.db.socket),
            "TESTBED_SECRETS_DIR": str(self.secret_dir),
            "TESTBED_DB_POOL": str(self.web.threads),  # one connection per thread, opened at start
            "PYTHONPATH": str(PROJECT_ROOT),
            **({"TESTBED_PROBE_WAKE": str(self.probe_wake)} if self.probe_wake else {}),
        }
