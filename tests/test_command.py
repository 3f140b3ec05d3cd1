"""The one command, `sdn-ha`, installed by `make setup` from pyproject.toml: the same program as
`python -m experiments`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMAND = Path(sys.executable).parent / "sdn-ha"


@pytest.mark.parametrize("args", [["list"], ["run", "--help"], ["run", "no-such-scenario"]])
def test_sdn_ha_is_python_m_experiments(args):
    if not COMMAND.exists():
        pytest.fail(f"{COMMAND} is missing: run `make setup` (it installs the project's command)",
                    pytrace=False)
    by_name = subprocess.run([str(COMMAND), *args], capture_output=True, text=True, cwd="/")
    by_module = subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True, text=True,
                               cwd=ROOT)
    assert (by_name.returncode, by_name.stdout, by_name.stderr) == \
        (by_module.returncode, by_module.stdout.replace("__main__.py", "sdn-ha"),
         by_module.stderr.replace("__main__.py", "sdn-ha"))
