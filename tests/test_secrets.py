"""The run's secrets: private files, and a folder of its own for the web service."""

from __future__ import annotations

from pathlib import Path

from services.secrets import RunSecrets


def test_every_secret_is_a_private_file_of_a_private_folder(tmp_path: Path):
    folder = tmp_path / "secrets"
    created = RunSecrets.generate(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    for name, file in RunSecrets.FILES.items():
        assert (folder / file).read_text() == getattr(created, name)
        assert (folder / file).stat().st_mode & 0o777 == 0o600
    assert len({created.app_password, created.repl_password, created.controller_token}) == 3


def test_the_web_services_folder_holds_its_database_password_alone(tmp_path: Path):
    created = RunSecrets.generate(tmp_path / "secrets")
    web = RunSecrets.web_dir(tmp_path / "secrets")
    assert [p.name for p in web.iterdir()] == ["app.password"]
    assert (web / "app.password").read_text() == created.app_password
    assert web.stat().st_mode & 0o777 == 0o700 and (web / "app.password").stat().st_mode & 0o777 == 0o600
