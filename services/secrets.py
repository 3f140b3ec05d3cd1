"""The run's secrets: generated for each run, kept in files only root can read, never logged.

    <socket folder>/secrets/app.password        the web service's database account
    <socket folder>/secrets/repl.password       the replication account
    <socket folder>/secrets/controller.token    what a command to the controller must carry

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

    @classmethod
    def generate(cls, directory: Path) -> RunSecrets:
        created = cls(*(secrets.token_urlsafe(18) for _ in fields(cls)))
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, filename in cls.FILES.items():
            fd = os.open(directory / filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w") as f:
                f.write(getattr(created, name))
        return created
