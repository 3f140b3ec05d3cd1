"""What a testbed needs from the machine, and how to get each missing piece.

Both the command line (before a run starts anything) and the integration tests (before their
first test) ask here, so the list of tools is written once. Every answer is a sentence for the
user, or None when nothing is missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

from services.haproxy import HAPROXY_USER
from services.mariadb import DATABASE_USER
from services.web import WEB_USER

# Each program a run calls, and the Debian package setup/install.sh installs it from.
REQUIRED_TOOLS: dict[str, str] = {
    "mnexec": "mininet",
    "ovs-vsctl": "openvswitch-switch",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "ethtool": "ethtool",
    "curl": "curl",
    "keepalived": "keepalived",  # failover.mechanism vrrp
    "haproxy": "haproxy",  # failover.mechanism proxy
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


# The unprivileged accounts the daemons run as, and what creates each.
SERVICE_ACCOUNTS: dict[str, str] = {
    DATABASE_USER: "the mariadb-server package",
    WEB_USER: "setup/install.sh",
    HAPROXY_USER: "the haproxy package",
}


def missing_accounts_problem() -> str | None:
    """One sentence naming every service account that does not exist, or None."""
    missing = []
    for account, creator in SERVICE_ACCOUNTS.items():
        try:
            pwd.getpwnam(account)
        except KeyError:
            missing.append(f"{account} (created by {creator})")
    if not missing:
        return None
    return f"no such account: {', '.join(missing)}: run `make setup` first"


def machine_problem() -> str | None:
    """Why this machine cannot run a testbed now (root, the tools, the service accounts, Open
    vSwitch), or None."""
    if os.geteuid() != 0:
        return "the testbed needs root (Mininet, Open vSwitch): run it with sudo"
    problem = missing_tools_problem() or missing_accounts_problem()
    if problem:
        return problem
    probe = subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True)
    if probe.returncode != 0:
        return "Open vSwitch is not running: run `make setup` (it starts it)"
    return None
