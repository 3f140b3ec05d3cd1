"""The testbed's network in Mininet's own command line, with the project's controller: what the
lab guide has a student type into `mn`, typed into `mn`.

`sdn-ha controller` runs the controller alone; `mn --custom topology/mininet_custom.py` builds the
testbed's network and reads the CLI commands from its standard input, as a student would type
them: a web server on each server host, a request to the VIP, the primary's link down, the
request again. The controller must have moved the VIP, and Mininet and the controller must leave
nothing behind.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import ROOT, leftovers

VIP = "10.0.0.100"
CURL = f"curl -s -o /dev/null --max-time 3 -w '{{when}} %{{{{http_code}}}}\\n' http://{VIP}/"
COMMANDS = [
    "primary python3 -m http.server 80 > /dev/null 2>&1 &",
    "secondary python3 -m http.server 80 > /dev/null 2>&1 &",
    "sh sleep 1",
    "client " + CURL.format(when="before"),
    "link s1 primary down",
    "sh sleep 1",
    "client " + CURL.format(when="after"),
    "exit",
]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_mininets_own_cli_with_the_projects_controller_moves_the_vip(tmp_path: Path) -> None:
    controller = subprocess.Popen([sys.executable, "-m", "experiments", "controller", "--out", str(tmp_path)],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not listening(6653):
            assert controller.poll() is None, controller.stdout.read()
            assert time.monotonic() < deadline, "the controller never listened on 127.0.0.1:6653"
            time.sleep(0.2)
        mn = subprocess.run(["mn", "--custom", "topology/mininet_custom.py", "--topo", "testbed", "--host",
                             "testbed", "--switch", "testbed", "--controller", "testbed"],
                            input="\n".join(COMMANDS) + "\n", cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    finally:
        controller.send_signal(signal.SIGINT)  # Ctrl-C, as in a terminal
        said, _ = controller.communicate(timeout=30)
    typed = mn.stdout + mn.stderr  # Mininet prints the prompts on one, the hosts' output on the other
    assert mn.returncode == 0 and "before 200" in typed and "after 200" in typed, typed
    assert controller.returncode == 0 and "controller stopped" in said, said
    (log,) = tmp_path.glob("controller-*/controller-events.jsonl")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    moves = [e["server"] for e in events if e["kind"] == "vip_moved"]
    assert moves == ["secondary"], events
    assert not listening(6653)  # the controller is gone
    assert leftovers() == []
