"""The run's secrets: private files; and the web service's password, alone, in a folder of its own
that only the web account can read."""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from services.mariadb import MariaDB
from services.secrets import RunSecrets
from services.web import WEB_USER, WebService
from topology.config import TestbedConfig

pytestmark = pytest.mark.machine  # files owned by the web account (chown: root)


def test_every_secret_is_a_private_file_of_a_private_folder(tmp_path: Path):
    folder = tmp_path / "secrets"
    created = RunSecrets.generate(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    for name, file in RunSecrets.FILES.items():
        assert (folder / file).read_text() == getattr(created, name)
        assert (folder / file).stat().st_mode & 0o777 == 0o600
        assert (folder / file).stat().st_uid == 0
    assert len({created.app_password, created.repl_password, created.controller_token}) == 3


def test_the_web_services_folder_holds_its_database_password_alone_for_the_web_account(tmp_path: Path):
    config = TestbedConfig()
    plan = config.server_plans[0]
    db = MariaDB(plan, 1, 2, tmp_path, tmp_path / "sockets")
    web = WebService(plan, config.web, db, tmp_path / "sockets" / "web-primary")
    web.write_secret("the-password")
    account = pwd.getpwnam(WEB_USER)
    assert [p.name for p in web.secret_dir.iterdir()] == ["app.password"]
    secret = web.secret_dir / "app.password"
    assert secret.read_text() == "the-password"
    for path, mode in ((web.secret_dir, 0o500), (secret, 0o400)):
        assert path.stat().st_mode & 0o777 == mode, path
        assert (path.stat().st_uid, path.stat().st_gid) == (account.pw_uid, account.pw_gid), path
    assert web.environment()["TESTBED_SECRETS_DIR"] == str(web.secret_dir)


def test_the_web_workers_drop_to_the_web_account_with_its_groups_only():
    config = TestbedConfig()
    plan = config.server_plans[0]
    command = WebService(plan, config.web, MariaDB(plan, 1, 2, Path("/r"), Path("/s")),
                         Path("/w")).start_command()
    assert command[command.index("--user") + 1] == WEB_USER
    assert command[command.index("--config") + 1] == "python:services.gunicorn_hooks"  # the groups
    assert "--preload" in command  # the code is imported by the master, as root
