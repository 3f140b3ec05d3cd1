"""The Vagrantfile: it is valid, and the VM is set up by the project's own setup step.

A VM that installed things of its own would drift away from what CI tests, so the VM's one
provisioner must run `make setup` in /vagrant, and `make setup` must be setup/install.sh,
the script behind `make run`, `make test` and CI.

`vagrant validate` runs on a copy of the Vagrantfile, with HOME and VAGRANT_HOME in a temp
folder (nothing is written to the real home) and every proxy pointed at a closed port, so
that any attempt to reach the network fails at once instead of hanging: validating needs no
box and no download. A missing `vagrant` fails the test (`make setup` installs it); it never
skips it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VAGRANTFILE = ROOT / "Vagrantfile"
MAKEFILE = ROOT / "Makefile"
INSTALL_SH = ROOT / "setup" / "install.sh"
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection fails at once
VALIDATE_TIMEOUT_S = 60


def _without_comments(text: str) -> str:
    """Ruby, shell and make text with whole-line and trailing `#` comments removed.

    Good enough for the files checked here (no `#` inside their strings), and it keeps the
    guide's comments from satisfying a check that is about the code.
    """
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())


def _vagrantfile() -> str:
    assert VAGRANTFILE.is_file(), f"{VAGRANTFILE} is missing"
    return _without_comments(VAGRANTFILE.read_text())


def _provisioners(text: str) -> list[str]:
    """The text of each `config.vm.provision ...` call: its arguments and any heredoc body."""
    found = []
    for match in re.finditer(r"^\s*config\.vm\.provision\b(.*)$", text, re.MULTILINE):
        call = match.group(1)
        heredoc = re.search(r"<<[-~]?([A-Z_]+)", call)
        if heredoc:
            rest = text[match.end():]
            end = re.search(rf"^\s*{heredoc.group(1)}\s*$", rest, re.MULTILINE)
            assert end, f"the heredoc {heredoc.group(1)} of a provisioner is not closed"
            call += "\n" + rest[: end.start()]
        found.append(call)
    return found


def _provider_block(text: str, provider: str) -> str:
    match = re.search(
        rf'config\.vm\.provider\s+"{provider}"\s+do\s*\|(\w+)\|(.*?)^\s*end\b', text, re.MULTILINE | re.DOTALL
    )
    assert match, f'the Vagrantfile has no `config.vm.provider "{provider}" do |...|` block'
    return match.group(2).replace(match.group(1) + ".", "PROVIDER.")


def _make_recipe(target: str) -> tuple[str, list[str]]:
    """The prerequisites and recipe lines of `target` in the Makefile."""
    lines = MAKEFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(rf"^{re.escape(target)}\s*:(?!=)(.*)$", line)
        if match:
            recipe = []
            for following in lines[i + 1:]:
                if not following.startswith("\t"):
                    break
                recipe.append(following.strip())
            return match.group(1).strip(), recipe
    raise AssertionError(f"the Makefile has no `{target}:` target")


# -- vagrant validate ---------------------------------------------------------------------


def test_vagrant_validate_passes(tmp_path: Path) -> None:
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.fail("vagrant is not installed: run `make setup` (it installs it)", pytrace=False)
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(VAGRANTFILE, project / "Vagrantfile")
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


# -- what the Vagrantfile says ------------------------------------------------------------


def test_the_box_is_debian_12() -> None:
    assert re.search(r'^\s*config\.vm\.box\s*=\s*"debian/bookworm64"\s*$', _vagrantfile(), re.MULTILINE)


@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_each_provider_gets_4_gb_and_2_cpus(provider: str) -> None:
    block = _provider_block(_vagrantfile(), provider)
    assert re.search(r"PROVIDER\.memory\s*=\s*\"?4096\"?\s*$", block, re.MULTILINE), block
    assert re.search(r"PROVIDER\.cpus\s*=\s*2\s*$", block, re.MULTILINE), block


def test_the_project_is_synced_at_slash_vagrant() -> None:
    text = _vagrantfile()
    assert re.search(r'config\.vm\.synced_folder\s+"\."\s*,\s*"/vagrant"', text), (
        'the Vagrantfile must sync the project (".") to "/vagrant"'
    )
    assert "disabled: true" not in text


def test_the_one_provisioner_runs_make_setup_in_slash_vagrant_as_root() -> None:
    provisioners = _provisioners(_vagrantfile())
    assert len(provisioners) == 1, f"expected one provisioner, found {len(provisioners)}: {provisioners}"
    shell = provisioners[0]
    assert re.match(r'\s*"shell"', shell), f"the provisioner is not a shell provisioner: {shell}"
    assert re.search(r"privileged:\s*false", shell) is None, "`make setup` must run as root"
    assert re.search(r"(^|[;&|]|\s)cd\s+/vagrant\s*&&\s*make\s+setup\s*$", shell, re.MULTILINE), (
        f"the provisioner must run `cd /vagrant && make setup`:\n{shell}"
    )


def test_the_vagrantfile_installs_nothing_the_testbed_needs() -> None:
    """Every package of the testbed comes from setup/install.sh; the Vagrantfile may only make
    sure that `make` itself is there, to run `make setup` at all."""
    text = _vagrantfile()
    installs = re.findall(r"apt(?:-get)?\s+install\b([^;&|\n}]*)", text)
    packages = {word for args in installs for word in args.split() if not word.startswith("-")}
    assert packages <= {"make"}, f"the Vagrantfile installs {sorted(packages - {'make'})} itself"
    for other in ("pip install", "curl ", "wget ", "snap install"):
        assert other not in text, f"the Vagrantfile installs something itself ({other.strip()})"


# -- make setup is the project's setup step -----------------------------------------------


def test_make_setup_runs_setup_install_sh() -> None:
    _, recipe = _make_recipe("setup")
    assert any(re.search(r"(^|[\s@])(bash\s+)?(\./)?setup/install\.sh\b", line) for line in recipe), (
        f"`make setup` should run setup/install.sh; its recipe is {recipe}"
    )


@pytest.mark.parametrize("target", ["run", "test"])
def test_make_run_and_test_start_with_the_same_setup(target: str) -> None:
    prerequisites, _ = _make_recipe(target)
    assert "setup" in prerequisites.split(), f"`make {target}` should depend on `setup`"


def test_make_setup_installs_vagrant() -> None:
    """The message of the validate test says `run make setup`: so make setup must install it."""
    text = _without_comments(INSTALL_SH.read_text())
    match = re.search(r"^PACKAGES=\((.*?)\)", text, re.MULTILINE | re.DOTALL)
    assert match, "setup/install.sh has no PACKAGES=(...) list"
    assert "vagrant" in match.group(1).split()
