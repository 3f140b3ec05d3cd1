"""The flow table does not grow with the number of clients: 64 client hosts (the most the config
allows: a switch with 67 ports, whose ovs-vsctl command is longer than a shell's 4,096-character
line, so Mininet must run it from the root namespace), same flows."""

import subprocess

from experiments.testbed.testbed import Testbed
from tests.integration.conftest import leftovers
from topology.config import TestbedConfig

CONFIG = TestbedConfig.from_dict({"network": {"clients": 64}})
VIP = CONFIG.network.vip


def flow_count():
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", CONFIG.network.switch],
                         capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if "cookie=" in line)


def served_by(testbed, host):
    out = testbed.host(host).cmd(f"curl -s --max-time 2 -D - -o /dev/null http://{VIP}/")
    return [line.split(": ")[1].strip() for line in out.splitlines() if line.startswith("X-Served-By")]


def test_64_clients_share_the_same_few_flows_and_all_fail_over(tmp_path):
    clients = ["client"] + [plan.name for plan in CONFIG.extra_clients]
    assert len(clients) == 64
    with Testbed(CONFIG, tmp_path) as testbed:
        for host in clients:
            assert served_by(testbed, host) == ["primary"], host
        # Every client has talked to the VIP: still 3 flows plus 4 per server (2 copy resets).
        assert flow_count() == 3 + 4 * len(CONFIG.servers)
        testbed.faults.link_down("primary")
        testbed.runner.wait_for("the VIP moves", lambda: testbed.control.active_server() == "secondary",
                                timeout=10)
        for host in clients:
            assert served_by(testbed, host) == ["secondary"], host
        assert flow_count() == 3 + 4 * len(CONFIG.servers)
    assert leftovers() == []
