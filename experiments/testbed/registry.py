"""Every run's state file, registered where the next run and `make clean` look, wherever
its `--out` was.

A run killed with SIGKILL frees the run lock at once (the kernel drops its socket), while its
controller, databases and web servers live on. A next run started on top of them would find
its readiness checks answered by the orphans. So each run registers its state file here as it
creates it, and removes the entry once it has stopped everything; a new run is refused while a
registered run's recorded processes still live, and `clean` reads the registry as well as the
results folder.

    /run/sdn-ha-testbed/<pid>-<start time>    one line: the absolute path of that run's state.json

/run is a tmpfs: a reboot empties it, as it ends every process a run could have left.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from services.files import write_atomic
from services.runner import is_recorded_process, start_time

REGISTRY = Path("/run/sdn-ha-testbed")  # a module attribute, so that tests can point it elsewhere


def register(state_path: Path) -> Path:
    """Register this process's run, whose state file is `state_path`; returns the entry."""
    REGISTRY.mkdir(mode=0o700, parents=True, exist_ok=True)
    entry = REGISTRY / f"{os.getpid()}-{start_time(os.getpid())}"
    write_atomic(entry, f"{state_path.resolve()}\n")
    return entry


def unregister(entry: Path | None) -> None:
    if entry is not None:
        entry.unlink(missing_ok=True)


def registered() -> dict[Path, Path]:
    """{entry: the state file it names}, for every registered run."""
    if not REGISTRY.is_dir():
        return {}
    entries = {}
    for entry in sorted(REGISTRY.iterdir()):
        try:
            entries[entry] = Path(entry.read_text().strip())
        except (OSError, UnicodeDecodeError):
            continue  # being written, or not ours
    return entries


def still_there(data: dict[str, Any], net: Path = Path("/sys/class/net")) -> list[str]:
    """What a state file lists that is still there: its processes and Mininet shells that still
    live (the very ones recorded), and its bridges and interfaces that still exist."""
    names = []
    for key in ("processes", "shells"):
        records = data.get(key)
        if isinstance(records, dict):
            names += [name for name, record in records.items()
                      if isinstance(record, dict) and is_recorded_process(record)]
    for key in ("bridges", "interfaces"):
        listed = data.get(key)
        if isinstance(listed, list):
            names += [name for name in listed if isinstance(name, str) and (net / name).exists()]
    return names


def _state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def forget_finished() -> None:
    """Drop the entries of runs that left nothing behind (or whose state file is gone: with its
    folder deleted, nothing is left to tell what it started)."""
    for entry, state_path in registered().items():
        data = _state(state_path)
        if data is None or not still_there(data):
            unregister(entry)


def earlier_run_alive() -> str | None:
    """Why a new run must not start: a registered run left processes, bridges or interfaces
    that are still there; None when there is none."""
    for entry, state_path in registered().items():
        data = _state(state_path)
        alive = still_there(data) if data is not None else []
        if not alive:
            unregister(entry)  # left nothing behind, or its folder is gone: forgotten
            continue
        return (f"an earlier run's processes still live ({', '.join(alive[:4])}"
                f"{', ...' if len(alive) > 4 else ''}; listed in {state_path}): "
                f"run `make clean` (python -m experiments clean) first")
    return None
