"""gunicorn's hooks for the web service (`--config python:services.gunicorn_hooks`).

The master imports the app (`--preload`) as root, then each worker drops to the unprivileged
web account: the project's code may be in a folder that account cannot read (a clone in
/root), and nothing a request reaches then runs as root. Whatever the worker must do as
itself, after the drop, is here.
"""

from __future__ import annotations

import os
from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    """In each worker, still root, just before gunicorn drops it to the web account (`--user`,
    `--group`): its supplementary groups become that account's group alone. gunicorn sets
    either the group (leaving root's supplementary groups) or, with `--initgroups`, the
    supplementary groups (leaving the group root's), never both (benoitc/gunicorn#2770)."""
    os.setgroups([worker.cfg.gid])


def post_worker_init(worker: Any) -> None:
    """In each worker, as the web account, before it takes a request: open the database pool."""
    from services import webapp  # imported by the master already (`--preload`)

    webapp.fill_pool()
