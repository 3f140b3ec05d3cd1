"""The one way the experiments speak to the switch directly: `ovs-ofctl`, OpenFlow 1.3."""

from __future__ import annotations

import subprocess

from controller.flows import PRIORITY_VIP


def ofctl(switch: str, command: str, *args: str, check: bool = True) -> str:
    """Run `ovs-ofctl -O OpenFlow13 COMMAND SWITCH ARGS...`; returns what it printed.

    With `check` a failure raises CalledProcessError; without, what it printed is returned
    anyway (a status line may show nothing rather than fail).
    """
    done = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", command, switch, *args],
                          check=check, capture_output=True, text=True, timeout=10)
    return done.stdout


def table_sizes(switch: str) -> dict[str, int]:
    """How many flows and groups `switch` holds now."""
    flows = ofctl(switch, "dump-flows").splitlines()
    groups = ofctl(switch, "dump-groups").splitlines()
    return {"flows": sum(1 for line in flows if "cookie=" in line),
            "groups": sum(1 for line in groups if "group_id=" in line)}


VIP_FLOW_PRIORITY = f"priority={PRIORITY_VIP}"


def vip_flow_cookies(dump: str) -> list[int]:
    """The cookies of the VIP flows in `ovs-ofctl dump-flows` output (`cookie=0x...`)."""
    cookies = []
    for line in dump.splitlines():
        if VIP_FLOW_PRIORITY not in line:
            continue
        for field in line.strip().split(", "):
            if field.startswith("cookie="):
                cookies.append(int(field.removeprefix("cookie="), 16))
    return cookies
