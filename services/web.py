"""The web daemon of a server host: gunicorn serving `services.webapp` on the host's port 80."""

from __future__ import annotations

import sys
from pathlib import Path

from services.mariadb import MariaDB
from topology.config import HostPlan, WebConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class WebService:
    """Gives gunicorn's command and environment for one server host."""

    def __init__(self, plan: HostPlan, web: WebConfig, db: MariaDB, secrets_dir: Path) -> None:
        self.plan = plan
        self.web = web
        self.db = db
        self.secrets_dir = secrets_dir

    @property
    def name(self) -> str:
        return f"web-{self.plan.name}"

    @property
    def url(self) -> str:
        return f"http://{self.plan.ip}:{self.web.port}"

    def start_command(self) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{self.plan.ip}:{self.web.port}",
            "--workers", str(self.web.workers),
            "--threads", str(self.web.threads),
            "--worker-class", "gthread",
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
            "TESTBED_SECRETS_DIR": str(self.secrets_dir),
            "TESTBED_DB_POOL": str(self.web.threads),  # one connection per thread, opened at start
            "PYTHONPATH": str(PROJECT_ROOT),
        }
