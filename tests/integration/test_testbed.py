"""The real testbed, started once for this module: the network, replication and the VIP work."""

import json
import os
import subprocess
import time

import pytest

from experiments.testbed.testbed import Testbed
from tests.integration.conftest import leftovers
from topology.config import load_config

CONFIG = load_config()
VIP = CONFIG.network.vip


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    trial_dir = tmp_path_factory.mktemp("testbed")
    with Testbed(CONFIG, trial_dir) as running:
        yield running
    assert leftovers() == []
    pids = [p.pid for p in running.runner.processes.values()]
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []
    assert json.loads((trial_dir / "state.json").read_text())["processes"] == {}


def curl(testbed, host, args):
    return testbed.host(host).cmd(f"curl -s --max-time 2 {args}")


@pytest.mark.parametrize("server", [s.name for s in CONFIG.servers])
def test_each_server_answers_http_through_the_switch(testbed, server):
    plan = CONFIG.server(server)
    body = json.loads(curl(testbed, "monitor", f"http://{plan.ip}/health"))
    assert (body["node"], body["db"]) == (server, "up")
    # Fencing: only the database of the server holding the VIP is writable.
    assert body["read_only"] is (server != CONFIG.servers[0].name)
    assert "1 received" in testbed.host("client").cmd(f"ping -c1 -W1 {plan.ip}")


def test_the_vip_reaches_the_primary_with_served_by_header(testbed):
    headers = curl(testbed, "client", f"-D - -o /dev/null http://{VIP}/")
    assert "200 OK" in headers
    assert "X-Served-By: primary" in headers


def test_writes_through_the_vip_get_ids_and_can_be_read_back(testbed):
    created = json.loads(curl(
        testbed, "client",
        f"-X POST -H 'Content-Type: application/json' -d '{{\"write_id\": \"it-1\"}}' http://{VIP}/api/items",
    ))
    assert created["served_by"] == "primary"
    item = json.loads(curl(testbed, "client", f"http://{VIP}/api/items/{created['id']}"))
    assert item["write_id"] == "it-1"
    assert json.loads(curl(testbed, "client", f"http://{VIP}/api/items/999999"))["error"]


def wait_for_row(db, write_id, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if write_id in db.write_ids():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("source, target", [("primary", "secondary"), ("secondary", "primary")])
def test_rows_replicate_both_ways(testbed, source, target):
    write_id = f"repl-{source}-{time.time_ns()}"
    testbed.databases[source].execute(
        f"INSERT INTO app.items (write_id, served_by) VALUES ('{write_id}', '{source}')"
    )
    assert wait_for_row(testbed.databases[target], write_id), f"{write_id} never reached {target}"


def test_a_peer_drops_its_dump_session_to_a_replica_and_the_replica_reconnects(testbed):
    """What `Testbed.start_database` has each peer do before a crashed database starts again:
    close the binlog dump session it holds for that server, so that a zombie one cannot hold up
    the new one. Here the replica is alive: it reconnects within its retry of 1 s, and rows flow."""
    primary, secondary = testbed.databases["primary"], testbed.databases["secondary"]
    assert secondary.drop_replica_sessions(primary.plan.ip) == 1  # the primary's replica thread
    write_id = f"after-drop-{time.time_ns()}"
    secondary.execute(f"INSERT INTO app.items (write_id, served_by) VALUES ('{write_id}', 'secondary')")
    assert wait_for_row(primary, write_id, timeout=10), "the primary's replica never came back"
    assert secondary.drop_replica_sessions("10.0.0.99") == 0  # no one there: nothing closed


def test_auto_increment_offsets_keep_ids_apart(testbed):
    ids = {}
    for name, db in testbed.databases.items():
        db.execute(f"INSERT INTO app.items (write_id, served_by) VALUES ('ids-{name}', '{name}')")
        ids[name] = db.query("SELECT id FROM app.items WHERE write_id = %s", (f"ids-{name}",))[0][0]
    assert ids["primary"] % 2 == 1 and ids["secondary"] % 2 == 0


def test_each_running_server_keeps_its_temporary_files_to_itself(testbed):
    """A server starting deletes the `#sql*` files in its tmpdir: a shared one broke installs."""
    tmpdirs = {name: db.query("SELECT @@tmpdir")[0][0] for name, db in testbed.databases.items()}
    for name, db in testbed.databases.items():
        assert tmpdirs[name] == str(db.tmpdir) and db.tmpdir.is_dir()
    assert len(set(tmpdirs.values())) == len(tmpdirs)


def test_replication_user_has_only_replication_slave(testbed):
    grants = testbed.databases["primary"].query("SHOW GRANTS FOR 'repl'@'10.0.0.12'")
    assert len(grants) == 1 and grants[0][0].startswith("GRANT REPLICATION SLAVE ON *.*")


def test_the_weaker_secondary_runs_in_its_cpu_cgroup(testbed):
    for name in ("mariadb-secondary", "web-secondary"):
        pid = testbed.runner.processes[name].pid
        cgroups = open(f"/proc/{pid}/cgroup").read().splitlines()
        # `cpu` may be its own hierarchy or joined with `cpuacct`, depending on the machine.
        assert any(line.split(":")[1:] in (["cpu", "/secondary"], ["cpu,cpuacct", "/secondary"])
                   for line in cgroups), cgroups
    quota = int(open("/sys/fs/cgroup/cpu/secondary/cpu.cfs_quota_us").read())
    period = int(open("/sys/fs/cgroup/cpu/secondary/cpu.cfs_period_us").read())
    cores = os.cpu_count()
    share = next(s.cpu for s in CONFIG.servers if s.name == "secondary")
    assert quota / period == pytest.approx(share * cores, rel=0.01)


def test_the_app_account_cannot_write_to_a_fenced_database(testbed):
    import pymysql

    password = (testbed.secrets_dir / "app.password").read_text()
    conn = pymysql.connect(unix_socket=str(testbed.databases["secondary"].socket), user="app",
                           password=password, database="app", autocommit=True)
    with conn, conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as error:
        cur.execute("INSERT INTO items (write_id, served_by) VALUES ('fenced', 'test')")
    assert error.value.args[0] == 1290  # ER_OPTION_PREVENTS_STATEMENT: --read-only


def test_status_endpoint_answers_on_loopback_only(testbed):
    body = testbed.control.status()  # raises unless it answers 200
    assert body["active"] == "primary"
    assert body["servers"]["secondary"]["last_probe_ok"] is True
    assert body["servers"]["primary"]["last_probe_latency_ms"] > 0
    # The controller listens on the root namespace's loopback only ...
    ports = (CONFIG.network.status_port, CONFIG.network.controller_port)
    assert controller_listens_on(testbed) == {("127.0.0.1", port) for port in ports}
    # ... so no Mininet host reaches it: not by its own loopback (another namespace), nor by
    # any address of the root namespace.
    addresses = ["127.0.0.1", *root_addresses()]
    for host in ("client", "monitor", "primary"):
        for address in addresses:
            for port in ports:
                probe = f"timeout 1 bash -c 'echo > /dev/tcp/{address}/{port}' 2>/dev/null"
                probe += " && echo open || echo closed"
                reached = testbed.host(host).cmd(probe).strip().endswith("open")
                assert not reached, f"{host} reached {address}:{port}"


def controller_listens_on(testbed) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the controller process listens on, from `ss`."""
    pid = testbed.runner.processes["controller"].pid
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            address, _, port = line.split()[3].rpartition(":")
            found.add((address.strip("[]"), int(port)))
    return found


def root_addresses() -> list[str]:
    """The root namespace's own IPv4 addresses but loopback's (where the machine is reached)."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in addresses if not a.startswith("127.")]


def test_a_command_without_the_token_is_refused(testbed):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{CONFIG.network.status_port}/command/failover",
                                     data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    assert error.value.code == 401
    assert testbed.control.status()["active"] == "primary"
