"""Files and folders of a run: written so that a reader never sees half of one, and owned by
the account that must use them.

A rename within one folder is atomic: a reader (the load generator polling its rate file,
`make clean` reading a state file, a report being rewritten) sees the old file or the new.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any


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
