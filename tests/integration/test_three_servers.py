"""Any number of servers: three in priority order, failing over to the next one that is up."""

import time

from experiments.testbed.testbed import Testbed
from tests.integration.conftest import leftovers
from topology.config import TestbedConfig

SERVERS = [
    {"name": "primary", "ip": "10.0.0.11"},
    {"name": "secondary", "ip": "10.0.0.12", "cpu": 0.5},
    {"name": "third", "ip": "10.0.0.13", "cpu": 0.5},
]
CONFIG = TestbedConfig.from_dict({"servers": SERVERS})


def served_by(testbed):
    out = testbed.host("client").cmd(f"curl -s --max-time 1 -D - -o /dev/null http://{CONFIG.network.vip}/")
    return [line.split(": ")[1].strip() for line in out.splitlines() if line.startswith("X-Served-By")]


def test_three_servers_fail_over_in_priority_order_and_replicate_in_a_ring(tmp_path):
    with Testbed(CONFIG, tmp_path) as testbed:
        assert served_by(testbed) == ["primary"]
        # A row written on the primary goes round the ring to the other two.
        primary = testbed.databases["primary"]
        primary.execute("INSERT INTO app.items (write_id, served_by) VALUES ('ring', 'x')")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(
            "ring" in testbed.databases[name].write_ids() for name in ("secondary", "third")
        ):
            time.sleep(0.05)
        assert all("ring" in testbed.databases[name].write_ids() for name in ("secondary", "third"))

        testbed.faults.link_down("primary")
        testbed.runner.wait_for("the VIP moves to secondary", lambda: served_by(testbed) == ["secondary"], 10)
        testbed.faults.link_down("secondary")
        testbed.runner.wait_for("the VIP moves to third", lambda: served_by(testbed) == ["third"], 10)
        status = testbed.control.status()
        assert status["active"] == "third"
        assert [s["up"] for s in status["servers"].values()] == [False, False, True]
    assert leftovers(cgroups=("secondary", "third")) == []
