"""The run's secrets: generated for each run, kept in files only root can read, never logged.

    <socket folder>/secrets/app.password        the web service's database account
    <socket folder>/secrets/repl.password       the replication account
    <socket folder>/secrets/controller.token    what a command to the controller must carry

The folder is 0700, each file 0600 from the start, all root's; the socket folder is removed
at the end of the run. The web service's workers run as another account, and get the app's
password alone, in a folder of their own (services/web.py). Nothing is passed on a command
line, where `ps` would show it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields
from pathlib import Path

from services.files import write_owned


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
            write_owned(directory / filename, getattr(created, name), "root", 0o600)
        return created
