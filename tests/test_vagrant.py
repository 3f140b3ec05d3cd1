"""The Vagrantfiles are valid: `vagrant validate` accepts the one-machine Vagrantfile and the
three machines of vagrant/cluster/Vagrantfile.

`vagrant validate` runs on a copy of the Vagrantfile, with HOME and VAGRANT_HOME in a temp
folder (nothing is written to the real home) and every proxy pointed at a closed port, so
that any attempt to reach the network fails at once instead of hanging: validating needs no
box and no download. A missing `vagrant` fails the test (`make setup` installs it); it never
skips it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.machine  # vagrant, which make setup installs

ROOT = Path(__file__).resolve().parent.parent
VAGRANTFILE = ROOT / "Vagrantfile"
CLUSTER = Path("vagrant") / "cluster" / "Vagrantfile"  # its synced folder is the project, ../..
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection fails at once
VALIDATE_TIMEOUT_S = 60


@pytest.mark.parametrize("vagrantfile", [Path("Vagrantfile"), CLUSTER], ids=["one-machine", "cluster"])
def test_vagrant_validate_passes(tmp_path: Path, vagrantfile: Path) -> None:
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.fail("vagrant is not installed: run `make setup` (it installs it)", pytrace=False)
    copy = tmp_path / "project" / vagrantfile
    copy.parent.mkdir(parents=True)
    shutil.copy(ROOT / vagrantfile, copy)
    project = copy.parent
    home = tmp_path / "home"
    home.mkdir()
    # Nothing from the caller's own Vagrant settings (another Vagrantfile, provider, home).
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("VAGRANT_") and key.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    env.update(
        HOME=str(home),
        VAGRANT_HOME=str(home / ".vagrant.d"),
        VAGRANT_CWD=str(project),
        VAGRANT_CHECKPOINT_DISABLE="1",  # no version check against HashiCorp's server
        VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
        http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY, HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY,
    )
    try:
        result = subprocess.run(
            [vagrant, "validate", "--ignore-provider", "--no-color", "--no-tty"],
            cwd=project, env=env, capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`vagrant validate` did not finish in {VALIDATE_TIMEOUT_S} s", pytrace=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`vagrant validate --ignore-provider` failed:\n{output}"
    assert "validated successfully" in output, output
    # It used the temp home, so the real one was left alone.
    assert (home / ".vagrant.d").is_dir(), "vagrant did not use VAGRANT_HOME"
    if vagrantfile == CLUSTER:
        assert (project / ".vagrant" / "sdn-ha-cluster.pub").is_file(), "no key made for the head"


def test_the_cluster_places_each_server_on_a_machine_of_its_own() -> None:
    from topology.config import load_config

    config = load_config(ROOT / "config" / "cluster.toml")
    text = (ROOT / CLUSTER).read_text()
    for machine in config.machines:
        assert f'"{machine.name}" => "{machine.address}"' in text, machine  # the VM the config names
    assert {config.machine_of(s.name).name for s in config.servers} == {"server1", "server2"}


def test_every_vagrant_ssh_forwards_the_dashboards_port_to_the_hosts_loopback() -> None:
    from topology.config import load_config

    port = load_config(ROOT / "config" / "default.toml").network.dashboard_port
    assert f'"-L", "127.0.0.1:{port}:127.0.0.1:{port}"' in VAGRANTFILE.read_text()
