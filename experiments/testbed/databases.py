"""Starting the databases of a testbed (install, start, users, a replication ring, the schema),
and what is kept of them at the end.

Each step waits on a condition for every server (a query answers, the replica threads run),
never on a fixed sleep.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from services.mariadb import MariaDB
from services.runner import ProcessRunner
from services.secrets import RunSecrets
from topology.remote import RemoteError


def start_databases(
    runner: ProcessRunner, databases: dict[str, MariaDB], host: Callable[[str], Any], secrets: RunSecrets
) -> None:
    """Install and start each server's database in its host, then make them replicate."""
    for db in databases.values():
        db.write_config()
    # All at once: each takes about a second and a quarter, mostly waiting on its own bootstrap.
    runner.run_all({f"install-{db.name}": db.install_command() for db in databases.values()}, timeout=120,
                   machines={f"install-{db.name}": db.machine for db in databases.values()})
    for name, db in databases.items():
        runner.start(db.name, db.start_command(), host=host(name))
    dbs = list(databases.values())
    _wait_all(runner, dbs, "accepts queries", lambda db: db.is_ready, 60)
    for db in dbs:
        db.create_users(secrets, [other.plan.ip for other in dbs if other is not db])
    # A ring: each server replicates from the one before it (for two: master-master).
    for i, db in enumerate(dbs):
        db.replicate_from(dbs[i - 1], secrets)
    _wait_all(runner, dbs, "replicates", lambda db: db.replica_running, 30)
    # The schema comes after the replicas are connected: with semi-sync, its statements
    # would otherwise each wait out the acknowledgement time-out (the first one, 30 s
    # with a patient setting) and the run would start fallen back to asynchronous.
    dbs[0].create_schema()
    _wait_all(runner, dbs, "has the app schema", lambda db: db.has_schema, 30)


def _wait_all(runner: ProcessRunner, dbs: list[MariaDB], what: str,
              condition: Callable[[MariaDB], Callable[[], bool]], timeout: float) -> None:
    for db in dbs:
        runner.wait_for(f"{db.name} {what}", condition(db), timeout=timeout, process=db.name)


def keep_binlogs(databases: Iterable[MariaDB]) -> None:
    """Copy each stopped server's binary logs into the run folder; a copy that fails is said,
    and the rest of the clean-up goes on."""
    for db in databases:
        try:
            db.keep_binlogs()
        except (OSError, RemoteError) as error:
            print(f"warning: {db.name}'s binary logs were not kept: {error}", file=sys.stderr)
