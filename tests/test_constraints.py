"""Reproducible installs: every package in the venv is pinned in constraints.txt, at the version
installed, and every requirement is pinned there at the version requirements.txt names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.split("#", 1)[0].strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_every_requirement_is_pinned_the_same_in_the_constraints():
    constraints, requirements = pins(ROOT / "constraints.txt"), pins(ROOT / "requirements.txt")
    assert requirements, "requirements.txt pins nothing"
    assert {name: constraints.get(name) for name in requirements} == requirements


def test_every_package_in_the_venv_is_pinned_at_its_version():
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--local", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    installed = {m.group(1).lower().replace("_", "-"): m.group(2)
                 for line in frozen.splitlines() if (m := PIN.match(line))}
    constraints = pins(ROOT / "constraints.txt")
    unpinned = {name: version for name, version in installed.items() if constraints.get(name) != version}
    assert unpinned == {}, "installed but not pinned in constraints.txt (at this version): run `make setup`"
