"""Integration tests run the real testbed: root, Mininet, Open vSwitch and MariaDB.

A missing prerequisite fails these tests with a message saying what to do; it never skips
them (a skip would hide a broken CI machine). `make test` installs and starts everything.
"""

import os
import re
import subprocess

import pytest


def missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root: run `sudo make test`"
    from experiments.testbed.prerequisites import missing_accounts_problem, missing_tools_problem

    how = "run `make setup` (or `make test`, which runs it)"
    problem = missing_tools_problem(how) or missing_accounts_problem()
    if problem:
        return problem
    if subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True).returncode != 0:
        return "Open vSwitch is not running: run `make setup` (it starts it)"
    return None


@pytest.fixture(scope="session", autouse=True)
def prerequisites():
    problem = missing_prerequisite()
    if problem:
        pytest.fail(problem, pytrace=False)


# The fabrics' switches (topology/fabric.py): a run on any topology must leave none of them.
FABRIC_SWITCH = re.compile(r"^(edge|core|leaf|spine)[0-9]+$")


def leftovers(switch: str = "s1", cgroups: tuple[str, ...] = ("secondary",)) -> list[str]:
    """What a testbed run could leave on the machine; empty when it cleaned up."""
    def ours(bridge: str) -> bool:
        return bridge == switch or bool(FABRIC_SWITCH.match(bridge))

    found = []
    bridges = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout.split()
    found += [f"bridge {b}" for b in bridges if ours(b)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split(": ")[1].split("@")[0] for line in links.splitlines()]
    found += [f"interface {name}" for name in names if "-eth" in name and ours(name.split("-eth")[0])]
    # Every hierarchy Mininet's cgcreate uses: its cgdelete can stop at a busy one.
    found += [f"cgroup {hierarchy}/{name}" for name in cgroups for hierarchy in ("cpu", "cpuacct", "cpuset")
              if os.path.isdir(f"/sys/fs/cgroup/{hierarchy}/{name}")]
    found += [f"Mininet shell {pid}" for pid in mininet_shells()]
    return found


def mininet_shells() -> list[int]:
    """PIDs of Mininet's node shells (`bash ... mininet:<node>`) still alive on the machine.

    Only a check for the tests (the machine runs no other Mininet): nothing is killed by name.
    """
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    words = f.read().split(b"\0")
            except OSError:
                continue
            if words[:1] == [b"bash"] and any(w.startswith(b"mininet:") for w in words):
                pids.append(int(entry))
    return pids


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_experiments(out, *args: str):
    """`python -m experiments ARGS... --out OUT` as a user runs it; returns (result, the folder
    it wrote in OUT)."""
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "-m", "experiments", *args, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = Path(out).iterdir()
    return result, folder


def run_cli(scenario: str, out, *options: str):
    """`python -m experiments run SCENARIO ...` as a user runs it; returns (result, run folder)."""
    return run_experiments(out, "run", scenario, *options)


def read_results(run_dir):
    """The summary, the requests and the events a run wrote."""
    import csv
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "requests.csv") as f:
        requests = list(csv.DictReader(f))
    with open(run_dir / "events.csv") as f:
        events = list(csv.DictReader(f))
    return summary, requests, events


def pytest_collection_modifyitems(items):
    # Every test of this folder needs the real testbed: `pytest -m "not integration"` runs the
    # fast unit tests alone.
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(pytest.mark.integration)
