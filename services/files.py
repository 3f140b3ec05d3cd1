"""Files and folders of a run: written so that a reader never sees half of one, and owned by
the account that must use them.

A rename within one folder is atomic: a reader (the load generator polling its rate file,
`make clean` reading a state file, a report being rewritten) sees the old file or the new.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import tarfile
from pathlib import Path
from typing import Any

from topology.remote import RemoteMachine


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON, with a final newline, replacing `path` in one step."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def owned_dir(path: Path, user: str, mode: int) -> Path:
    """Create the folder `path` (if it is not there) owned by `user` and its group, with `mode`.

    For the folders of a daemon that runs as an unprivileged user (mariadbd as `mysql`, the web
    service's workers): root creates them, then hands them over.
    """
    account = pwd.getpwnam(user)
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(mode)
    return path


def write_owned(path: Path, text: str, user: str, mode: int = 0o400) -> None:
    """Write `text` to a new file `path` that only `user` (and root) can read, from the start."""
    account = pwd.getpwnam(user)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchown(fd, account.pw_uid, account.pw_gid)
    os.fchmod(fd, mode)
    with open(fd, "w") as f:
        f.write(text)


class LocalFiles:
    """The files of a host on this machine (`RemoteFiles`: on another one).

    A daemon makes its folders and writes its configs and secrets through one of the two, so
    that the same daemon class runs on any machine.
    """

    def make_dir(self, path: Path, user: str, mode: int) -> Path:
        return owned_dir(path, user, mode)

    def write(self, path: Path, text: str, user: str = "root", mode: int = 0o644) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()  # write_owned creates the file with its owner and mode from the start
        write_owned(path, text, user, mode)

    def copy_out(self, folder: Path, pattern: str, into: Path) -> list[Path]:
        """Copy the files of `folder` whose names match `pattern` into `into`."""
        copied = []
        for path in sorted(folder.glob(pattern)):
            into.mkdir(parents=True, exist_ok=True)
            copied.append(Path(shutil.copy2(path, into / path.name)))
        return copied

    def remove(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


class RemoteFiles:
    """The files of a host on another machine: made there, as `LocalFiles` makes them here
    (same paths, same owners and modes)."""

    def __init__(self, machine: RemoteMachine) -> None:
        self.machine = machine

    def make_dir(self, path: Path, user: str, mode: int) -> Path:
        self.machine.run(["sh", "-c", 'mkdir -p "$0" && chown "$1": "$0" && chmod "$2" "$0"',
                          str(path), user, f"{mode:o}"])
        return path

    def write(self, path: Path, text: str, user: str = "root", mode: int = 0o644) -> None:
        """`text` into `path` there, owned by `user` with `mode` from the start (its folder exists)."""
        script = ('umask 077 && mkdir -p "$(dirname "$0")" && cat > "$0.part" && chown "$1": "$0.part" '
                  '&& chmod "$2" "$0.part" && mv "$0.part" "$0"')
        self.machine.run(["sh", "-c", script, str(path), user, f"{mode:o}"], input=text)

    def copy_out(self, folder: Path, pattern: str, into: Path) -> list[Path]:
        """Copy the files of `folder` there whose names match `pattern` into `into` here."""
        script = 'cd "$0" || exit 1; set -- $1; [ -e "$1" ] || exit 0; exec tar -cf - "$@"'
        data = self.machine.run_bytes(["sh", "-c", script, str(folder), pattern])
        if not data:
            return []
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            # Plain files of that one folder only (Debian's Python 3.11 has no extraction filter).
            members = [m for m in archive.getmembers() if m.isfile() and "/" not in m.name and m.name != ".."]
            archive.extractall(into, members=members)
        return [into / m.name for m in members]

    def remove(self, path: Path) -> None:
        self.machine.run(["rm", "-rf", "--one-file-system", "--", str(path)])
