"""The run's secrets: generated for each run, kept in files only root can read, never logged.

    <socket folder>/secrets/app.password        the web service's database account
    <socket folder>/secrets/repl.password       the replication account
    <socket folder>/secrets/controller.token    what a command to the controller must carry
    <socket folder>/secrets/web/app.password    the same password, alone: the web service's folder

The folder is created by `tempfile.mkdtemp` (mode 0700) and removed at the end of the run;
each file is created with mode 0600 from the start. Nothing is passed on a command line,
where `ps` would show it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class RunSecrets:
    app_password: str
    repl_password: str
    controller_token: str

    FILES = {"app_password": "app.password", "repl_password": "repl.password",
             "controller_token": "controller.token"}
    # The web service's own folder: its database password and nothing else, so that a web
    # server cannot read the controller's token or the replication password.
    WEB_FOLDER = "web"

    @classmethod
    def generate(cls, directory: Path) -> RunSecrets:
        created = cls(*(secrets.token_urlsafe(18) for _ in fields(cls)))
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, filename in cls.FILES.items():
            _write_private(directory / filename, getattr(created, name))
        cls.web_dir(directory).mkdir(mode=0o700, exist_ok=True)
        _write_private(cls.web_dir(directory) / cls.FILES["app_password"], created.app_password)
        return created

    @classmethod
    def web_dir(cls, directory: Path) -> Path:
        """The folder of the web service's secret, inside the run's secrets folder."""
        return directory / cls.WEB_FOLDER


def _write_private(path: Path, text: str) -> None:
    # Created with mode 0600 from the start: never readable by others, even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as f:
        f.write(text)
