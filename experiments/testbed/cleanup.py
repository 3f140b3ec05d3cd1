"""Remove what killed runs left behind, exactly as their state files list it.

    python -m experiments clean [--results DIR] [--dry-run]      (or `make clean`)

A run writes `state.json` in its trial folder as it creates things (see services/runner.py),
so a run killed with SIGKILL, which has no chance to stop anything, still leaves a list of
what it created. `clean` finds every such file under the results folder, and every one the
runs registered (experiments/testbed/registry.py, wherever their --out was), whose owner (the
run's own process) is gone, and removes what it lists and nothing else:

- processes, only if the PID still belongs to the very process that was recorded (same start
  time, same command line): a PID is reused once its process has gone;
- the OVS bridge, the switch-side interfaces (veth pairs) and the CPU cgroups, by name;
- temporary folders, only `hatb-*` folders right under the system temp folder, whatever the
  file says;
- on another machine of the run (its config's [placement]), reached with SSH as the run's
  config.json says: its processes (by the same identity, with that machine's boot id) and its
  `hatb-*` folder.

Nothing is ever matched by name among the machine's processes (no `mn -c`, `pkill`,
`killall`): other people's runs and programs on the same machine are left alone. After
cleaning, the state file's lists are emptied (all but what failed) and `cleaned_at` is set,
so cleaning again does nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments.results import files
from experiments.testbed import registry
from services.files import RemoteFiles
from services.runner import boot_id, cmdline, is_recorded_process, process_group, start_time
from topology.config import ConfigError, TestbedConfig
from topology.remote import RemoteError, RemoteMachine

STATE_FILE = files.STATE
TEMP_PREFIX = "hatb-"  # what experiments.testbed.testbed names its temporary folder
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset")  # the hierarchies Mininet's cgcreate uses
KILL_WAIT_S = 5.0
CGROUP_WAIT_S = 2.0
# What a state file lists, and as what: processes by name, the rest as lists of names.
LISTS: dict[str, type] = {
    "processes": dict, "shells": dict, "bridges": list, "interfaces": list, "cgroups": list, "folders": list,
    "remote_folders": list,
}
# Interface and bridge names: at most 15 characters (IFNAMSIZ), and never an option ("-...")
# or a path ("/", ".."), so that a damaged state file cannot turn into another command.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
CGROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"[A-Za-z0-9_]+")  # as tempfile.mkdtemp names them


def clean(results_root: Path, dry_run: bool = False, problems: list[str] | None = None) -> list[str]:
    """Remove what every finished run under `results_root` left, as its state file lists it.

    Returns one line per thing removed (with `dry_run`, per thing that would be removed, and
    nothing is changed). A problem (a run still active, an item that could not be removed)
    does not stop the rest: it is printed on stderr and added to `problems` if given.
    """
    problems = problems if problems is not None else []
    removed: list[str] = []
    found = sorted(results_root.rglob(STATE_FILE)) if results_root.is_dir() else []
    # And every run registered on this machine, wherever its --out was (testbed/registry.py).
    entries = registry.registered()
    found += [path for path in entries.values() if path not in found and path.is_file()]
    for path in found:
        removed += _clean_state_file(path, dry_run, problems)
    if not dry_run:
        registry.forget_finished()
    return removed


def _problem(problems: list[str], text: str) -> None:
    print(text, file=sys.stderr)
    problems.append(text)


def _clean_state_file(path: Path, dry_run: bool, problems: list[str]) -> list[str]:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        _problem(problems, f"{path}: cannot read it ({exc}); skipped")
        return []
    where = path.parent
    owner = active_owner(data)
    if owner is not None:
        _problem(problems, f"{where}: skipped, its run (pid {owner}) is still active")
        return []
    listed: dict[str, Any] = {}
    for key, kind in LISTS.items():
        listed[key] = data.get(key) or kind()
        if not isinstance(listed[key], kind):
            _problem(problems, f"{where}: {key} is not a {kind.__name__}; left alone")
            listed[key] = kind()
    if not any(listed.values()):
        return []

    removed: list[str] = []
    kept: dict[str, Any] = {}
    # Processes first: they hold the hosts' namespaces and sit in the cgroups.
    # Start times count from boot: a file of an earlier boot lists only processes long gone.
    same_boot = not data.get("boot_id") or data["boot_id"] == boot_id()
    machines = _machines(where, listed, problems)
    for key, kind in (("processes", "process"), ("shells", "Mininet shell")):
        lines, kept[key] = _kill_all(listed[key], kind, same_boot, machines, dry_run, where, problems)
        removed += lines
    lines, kept["remote_folders"] = _remove_remote_folders(listed, machines, dry_run, where, problems)
    removed += lines
    for key, remove in (
        ("bridges", _remove_bridge),
        ("interfaces", _remove_interface),
        ("cgroups", _remove_cgroup),
        ("folders", _remove_folder),
    ):
        kept[key] = []
        for item in listed[key]:
            try:
                line = remove(item, dry_run)
            except CleanError as exc:
                _problem(problems, f"{where}: {exc}")
                if exc.keep:
                    kept[key].append(item)
                continue
            if line:
                removed.append(line)

    if not dry_run:
        # What is gone is no longer listed, so cleaning again does nothing; what failed stays.
        data.update(kept, cleaned_at=datetime.now(UTC).isoformat(timespec="seconds"))
        try:
            files.write_atomic(path, json.dumps(data, indent=2))
        except OSError as exc:
            _problem(problems, f"{path}: cannot rewrite it ({exc.strerror})")
    return removed


class CleanError(Exception):
    """An item that could not be removed; `keep` says whether the state file keeps it for a retry."""

    def __init__(self, message: str, keep: bool = True) -> None:
        super().__init__(message)
        self.keep = keep


def active_owner(data: dict[str, Any]) -> int | None:
    """The PID of the run that wrote `data` if it is still running, else None."""
    pid = data.get("owner_pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    if data.get("boot_id") and data["boot_id"] != boot_id():
        return None  # written before the last reboot: that run is long gone
    now = start_time(pid)
    if now is None or not cmdline(pid):  # gone, or a zombie: dead but not yet waited for
        return None
    recorded = data.get("owner_start_time")
    # Without a recorded start time (an older state file) a live PID counts as the owner: a run
    # wrongly taken as active is only skipped, a run wrongly taken as gone would be broken.
    if isinstance(recorded, int) and recorded != now:
        return None
    return pid


# -- processes ----------------------------------------------------------------------------------

def _kill_processes(
    records: dict[str, Any], kind: str, same_boot: bool, dry_run: bool, where: Path, problems: list[str]
) -> tuple[list[str], dict[str, Any]]:
    """SIGKILL each recorded process that is still the one recorded; returns (lines, kept)."""
    lines: list[str] = []
    kept: dict[str, Any] = {}
    killed: list[tuple[str, dict[str, Any], str]] = []
    if not same_boot:
        return lines, kept  # every process of an earlier boot is gone
    for name, record in records.items():
        if not isinstance(record, dict):
            # An older state file kept only the PID: it cannot be told from a reused one.
            _problem(problems, f"{where}: {kind} {name} (pid {record}) was recorded without its start time, "
                     "so it cannot be told from a process that reuses the PID; left alone")
            continue
        if not is_recorded_process(record):
            continue  # gone, or its PID now belongs to another process
        pid = record["pid"]
        # Runs start processes in sessions of their own: the group holds the children too.
        leader = process_group(pid) == pid
        what = f"{kind} {name} (pid {pid}{' and its process group' if leader else ''})"
        if dry_run:
            lines.append(f"would kill {what}")
            continue
        try:
            if leader:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        except OSError as exc:
            _problem(problems, f"{where}: {what}: cannot kill it ({exc.strerror})")
            kept[name] = record
            continue
        killed.append((name, record, what))

    deadline = time.monotonic() + KILL_WAIT_S
    for name, record, what in killed:
        while is_recorded_process(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_recorded_process(record):
            _problem(problems, f"{where}: {what}: still running {KILL_WAIT_S:g} s after SIGKILL")
            kept[name] = record
        else:
            lines.append(f"killed {what}")
    return lines, kept


# -- on other machines --------------------------------------------------------------------------

def _machines(where: Path, listed: dict[str, Any], problems: list[str]) -> dict[str, RemoteMachine]:
    """The run's other machines, from its config.json, when its records name any."""
    named = any(isinstance(r, dict) and "remote" in r for key in ("processes", "shells")
                for r in listed[key].values()) or listed["remote_folders"]
    if not named:
        return {}
    try:
        config = TestbedConfig.from_file(where / files.CONFIG)
    except ConfigError as exc:
        _problem(problems, f"{where}: its records name other machines, but {exc}; those are left alone")
        return {}
    return {machine.name: RemoteMachine(machine) for machine in config.machines}


def _kill_all(records: dict[str, Any], kind: str, same_boot: bool, machines: dict[str, RemoteMachine],
              dry_run: bool, where: Path, problems: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Kill each record's process on its other machine, then here; returns (lines, kept)."""
    lines, kept_there = _kill_remote(records, kind, machines, dry_run, where, problems)
    here, kept = _kill_processes(records, kind, same_boot, dry_run, where, problems)
    kept.update({name: records[name] for name in kept_there})
    return lines + here, kept


def _kill_remote(records: dict[str, Any], kind: str, machines: dict[str, RemoteMachine], dry_run: bool,
                 where: Path, problems: list[str]) -> tuple[list[str], list[str]]:
    """SIGKILL the process group, on its machine, of each record's remote part that is still
    the one recorded; returns (lines, names of the records to keep)."""
    lines: list[str] = []
    kept: list[str] = []
    for name, record in records.items():
        remote = record.get("remote") if isinstance(record, dict) else None
        if not isinstance(remote, dict):
            continue
        machine = machines.get(remote.get("machine"))
        what = f"{kind} {name} (pid {remote.get('pid')} on {remote.get('machine')} and its process group)"
        try:
            if machine is None:
                raise RemoteError(f"no machine {remote.get('machine')!r} in the run's config.json")
            if not machine.is_recorded(remote):
                continue
            if dry_run:
                lines.append(f"would kill {what}")
                continue
            machine.signal_group(remote["pid"], "KILL")
            lines.append(f"killed {what}")
        except RemoteError as exc:
            _problem(problems, f"{where}: {what}: {exc}")
            kept.append(name)
    return lines, kept


def _remove_remote_folders(listed: dict[str, Any], machines: dict[str, RemoteMachine], dry_run: bool,
                           where: Path, problems: list[str]) -> tuple[list[str], list[Any]]:
    """Remove each listed remote folder on its machine; returns (lines, entries to keep)."""
    lines, kept = [], []
    for entry in listed["remote_folders"]:
        try:
            line = _remove_remote_folder(entry, machines, dry_run)
        except CleanError as exc:
            _problem(problems, f"{where}: {exc}")
            if exc.keep:
                kept.append(entry)
            continue
        if line:
            lines.append(line)
    return lines, kept


def _remove_remote_folder(entry: Any, machines: dict[str, RemoteMachine], dry_run: bool) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise CleanError(f"remote folder {entry!r}: not one this project records; left alone", keep=False)
    folder = Path(os.path.normpath(entry["path"]))
    if folder.parent != Path("/tmp") or not TEMP_NAME.fullmatch(folder.name):
        raise CleanError(f"folder {folder} on {entry.get('machine')}: not a {TEMP_PREFIX}* folder in /tmp; "
                         "left alone", keep=False)
    machine = machines.get(entry.get("machine"))
    if machine is None:
        raise CleanError(f"folder {folder}: no machine {entry.get('machine')!r} in the run's config.json")
    where = f"folder {folder} on {machine.name}"
    try:
        if machine.run(["test", "-d", str(folder)], check=False).returncode != 0:
            return ""
        if dry_run:
            return f"would delete {where}"
        RemoteFiles(machine).remove(folder)
    except RemoteError as exc:
        raise CleanError(f"{where}: {exc}") from None
    return f"deleted {where}"


# -- bridges, interfaces, cgroups, folders ------------------------------------------------------
# Each returns the line to print, "" when there was nothing to remove, or raises CleanError.

def _checked_name(kind: str, name: Any, pattern: re.Pattern[str]) -> str:
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise CleanError(f"{kind} {name!r}: not a name this project creates; left alone", keep=False)
    return name


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CleanError(f"{' '.join(cmd)}: {exc}") from None


def _remove_bridge(name: Any, dry_run: bool) -> str:
    name = _checked_name("bridge", name, NAME)
    exists = _run(["ovs-vsctl", "--timeout=5", "br-exists", name])
    if exists.returncode == 2:  # ovs-vsctl's answer for "no such bridge"
        return ""
    if exists.returncode != 0:
        raise CleanError(f"bridge {name}: cannot ask Open vSwitch ({exists.stderr.strip()})")
    if dry_run:
        return f"would delete bridge {name}"
    deleted = _run(["ovs-vsctl", "--timeout=5", "--if-exists", "del-br", name])
    if deleted.returncode != 0:
        raise CleanError(f"bridge {name}: {deleted.stderr.strip()}")
    return f"deleted bridge {name}"


def _remove_interface(name: Any, dry_run: bool) -> str:
    name = _checked_name("interface", name, NAME)
    if not Path("/sys/class/net", name).exists():
        return ""  # gone, usually with its peer's namespace when the last process in it died
    shown = _run(["ip", "-j", "-d", "link", "show", "dev", name])
    try:
        kind = json.loads(shown.stdout)[0].get("linkinfo", {}).get("info_kind")
    except (ValueError, IndexError, AttributeError):
        if not Path("/sys/class/net", name).exists():
            return ""
        raise CleanError(f"interface {name}: cannot read it ({shown.stderr.strip()})") from None
    # Mininet's links are veth pairs, or GRE tunnels to another machine; anything else of that
    # name is not ours.
    if kind not in ("veth", "gretap"):
        raise CleanError(f"interface {name}: not a veth or gretap ({kind}), so not one of ours; left alone",
                         keep=False)
    if dry_run:
        return f"would delete interface {name}"
    deleted = _run(["ip", "link", "del", "dev", name])
    if deleted.returncode != 0:
        if not Path("/sys/class/net", name).exists():
            return ""  # its namespace went away meanwhile, and the pair with it
        raise CleanError(f"interface {name}: {deleted.stderr.strip()}")
    return f"deleted interface {name}"


def _remove_cgroup(name: Any, dry_run: bool) -> str:
    name = _checked_name("cgroup", name, CGROUP_NAME)
    # os.path.realpath: where two controllers share one hierarchy, their folders are one.
    folders = {os.path.realpath(CGROUP_ROOT / ctrl / name) for ctrl in CGROUP_CONTROLLERS}
    folders = {f for f in folders if os.path.isdir(f)}
    if not folders:
        return ""
    shown = ", ".join(sorted(folders))
    if dry_run:
        return f"would remove cgroup {name} ({shown})"
    for folder in sorted(folders):
        # A killed task leaves its cgroup a moment after it is gone: rmdir says EBUSY until then.
        deadline = time.monotonic() + CGROUP_WAIT_S
        while True:
            try:
                os.rmdir(folder)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise CleanError(f"cgroup {folder}: {exc.strerror}") from None
                time.sleep(0.05)
    return f"removed cgroup {name} ({shown})"


def _remove_folder(entry: Any, dry_run: bool) -> str:
    temp_root = Path(tempfile.gettempdir())
    folder = Path(os.path.normpath(entry)) if isinstance(entry, str) and entry else None
    if (
        folder is None
        or not folder.is_absolute()
        or folder.parent != temp_root
        or not TEMP_NAME.fullmatch(folder.name)
    ):
        raise CleanError(f"folder {entry!r}: not a {TEMP_PREFIX}* folder in {temp_root}; left alone",
                         keep=False)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise CleanError(f"folder {folder}: not a plain folder; left alone", keep=False)
    if not folder.exists():
        return ""
    if dry_run:
        return f"would delete folder {folder}"
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise CleanError(f"folder {folder}: {exc.strerror}") from None
    return f"deleted folder {folder}"


def remove_cgroups(names: list[str]) -> list[str]:
    """Remove what is left of these cgroups in every hierarchy Mininet uses; returns the names
    that could not be removed (still busy), to be kept in the state file."""
    kept = []
    for name in names:
        try:
            _remove_cgroup(name, dry_run=False)
        except CleanError as exc:
            print(f"warning: {exc}; `sdn-ha clean` removes it later", file=sys.stderr)
            kept.append(name)
    return kept
