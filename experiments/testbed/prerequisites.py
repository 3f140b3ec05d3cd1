"""What a testbed needs from the machine, and how to get each missing piece.

Both the command line (before a run starts anything) and the integration tests (before their
first test) ask here, so the list of tools is written once. Every answer is a sentence for the
user, or None when nothing is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

# Each program a run calls, and the Debian package setup/install.sh installs it from.
REQUIRED_TOOLS: dict[str, str] = {
    "mnexec": "mininet",
    "ovs-vsctl": "openvswitch-switch",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "ethtool": "ethtool",
    "curl": "curl",
}


def missing_tools() -> list[str]:
    """The required programs not found on PATH, in the order of REQUIRED_TOOLS."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def missing_tools_problem(how: str = "run `make setup` first") -> str | None:
    """One sentence naming every missing program and its package, then `how` to install them."""
    missing = missing_tools()
    if not missing:
        return None
    named = ", ".join(f"{tool} (package {REQUIRED_TOOLS[tool]})" for tool in missing)
    return f"not installed: {named}: {how}"


def machine_problem() -> str | None:
    """Why this machine cannot run a testbed now (root, the tools, Open vSwitch), or None."""
    if os.geteuid() != 0:
        return "the testbed needs root (Mininet, Open vSwitch): run it with sudo"
    problem = missing_tools_problem()
    if problem:
        return problem
    probe = subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True)
    if probe.returncode != 0:
        return "Open vSwitch is not running: run `make setup` (it starts it)"
    return None
