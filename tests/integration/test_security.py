"""Least privilege, secrets and a fuzzed controller, on the real testbed (issue 7, Hardening).

One testbed is started for the module. The tests show that:
- each database has no account a Mininet host could abuse: root only through the local
  socket, the replication user only from the peer with only REPLICATION SLAVE, the app user
  only through the local socket with data rights on the app schema (and SLAVE MONITOR), no
  anonymous user and no
  `test` database;
- mariadbd runs as `mysql` and the web workers as `hatb-web` (with its group alone), which
  can read its own database password and nothing else of the run;
- the run's passwords and controller token appear in no file of the run (logs, CSV, JSON,
  state, events, binary logs), on no command line or in no environment of its processes, and
  on neither stdout nor stderr of the command line;
- malformed OpenFlow sent to the controller's port (random bytes, bad lengths, a foreign
  switch with bogus packet-ins, port events and flow stats) neither crashes nor hangs it,
  nor makes it act: the client keeps being served, and a real failover still works.

The command-line run comes first (before the module's testbed starts: only one testbed may
run at a time); the fuzz test runs last: it ends with a failover.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pymysql
import pytest

from experiments.testbed.testbed import Testbed
from services.mariadb import DATABASE_USER
from services.secrets import RunSecrets
from services.web import WEB_USER
from tests.integration.conftest import leftovers, run_cli
from topology.config import load_config

CONFIG = load_config()
VIP = CONFIG.network.vip
SERVERS = [s.name for s in CONFIG.servers]
DATA_RIGHTS = {"SELECT", "INSERT", "UPDATE", "DELETE"}


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    trial_dir = tmp_path_factory.mktemp("security")
    with Testbed(CONFIG, trial_dir) as running:
        yield running
    assert leftovers() == []
    assert json.loads((trial_dir / "state.json").read_text())["processes"] == {}


# -- helpers: pure ------------------------------------------------------------------------


def mysql_error(output: str) -> int | None:
    """The server's error code the `mariadb` client printed (`ERROR 1045 (28000): ...`), or
    None. A client that wraps the server's answer in its own 2002 (an error before the TLS
    handshake) quotes the server's code after it: that is the one returned."""
    found = re.search(r"cannot be verified: (\d+)", output) or re.search(r"ERROR (\d+)", output)
    return int(found.group(1)) if found else None


def parse_grants(lines: Iterable[str]) -> dict[str, set[str]]:
    """SHOW GRANTS lines as {object: privileges}; `USAGE` (no privilege at all) is dropped."""
    grants: dict[str, set[str]] = {}
    for line in lines:
        found = re.match(r"GRANT (.+?) ON (\S+) TO ", line)
        assert found, f"not a privilege grant: {line}"  # e.g. a GRANT PROXY would land here
        privileges = {p.strip() for p in found.group(1).split(",")} - {"USAGE"}
        if privileges:
            grants.setdefault(found.group(2), set()).update(privileges)
    return grants


def login_methods(priv: dict) -> set[str]:
    """How an account can log in, from its mysql.global_priv JSON: "password" when some
    password matches (an empty one too), else the plugin's name (e.g. "unix_socket")."""
    methods = set()
    for way in [priv, *priv.get("auth_or", [])]:
        if not way:
            continue  # {} in `auth_or` stands for the top-level plugin, already counted
        plugin = way.get("plugin", "mysql_native_password")
        if plugin in ("mysql_native_password", "mysql_old_password", "ed25519"):
            # 'invalid' is what mariadb-install-db sets: no hash, so no password matches it.
            if way.get("authentication_string") != "invalid":
                methods.add("password")
        else:
            methods.add(plugin)
    return methods


def files_holding(folder: Path, secrets: dict[str, str], skip: Iterable[Path] = ()) -> list[str]:
    """Every regular file under `folder` (but under `skip`) that holds one of `secrets`,
    as `path: secret name`."""
    skip = [p.resolve() for p in skip]
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue  # sockets, FIFOs and folders hold no text
        if any(path.resolve().is_relative_to(s) for s in skip):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue  # removed meanwhile (a rotated relay log)
        found += [f"{path}: {name}" for name, value in secrets.items() if value.encode() in data]
    return found


def texts_holding(texts: dict[str, str | bytes], secrets: dict[str, str]) -> list[str]:
    """Which of `texts` (name -> content) hold which of `secrets`."""
    found = []
    for where, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        found += [f"{where}: {name}" for name, value in secrets.items() if value.encode() in data]
    return found


# -- helpers: effects ----------------------------------------------------------------------


def read_secrets(secrets_dir: Path) -> dict[str, str]:
    return {name: (secrets_dir / file).read_text().strip() for name, file in RunSecrets.FILES.items()}


def mariadb_from(testbed: Testbed, host: str, server: str, user: str, password_file: str = "") -> str:
    """Try `SELECT 1` on `server`'s database over TCP from inside `host`; the client's output.

    The password is read from its file by the host's shell into MYSQL_PWD: it never appears on
    a command line.
    """
    ip = CONFIG.server(server).ip
    pwd = f'MYSQL_PWD="$(cat {testbed.secrets_dir / password_file})" ' if password_file else ""
    return testbed.host(host).cmd(
        f"{pwd}mariadb --no-defaults --skip-ssl --protocol=tcp -h {ip} -u {user} --connect-timeout=3 "
        "-B -N -e 'SELECT 1' 2>&1; echo rc=$?"
    )


def app_connection(testbed: Testbed, server: str) -> pymysql.Connection:
    """The web service's own way in: the app user over the local socket."""
    return pymysql.connect(
        unix_socket=str(testbed.databases[server].socket), user="app",
        password=(testbed.secrets_dir / RunSecrets.FILES["app_password"]).read_text(),
        database="app", autocommit=True, connect_timeout=3,
    )


def peer(server: str) -> str:
    return next(name for name in SERVERS if name != server)


# -- first, a whole command-line run: before the module's testbed starts (one at a time) --


def test_a_command_line_run_prints_and_leaves_no_secret(tmp_path):
    """A whole CLI run: its secrets, read while it runs from the folder its state file names,
    are on neither its stdout nor its stderr, nor in any file the run leaves (its databases'
    data folders are removed by then, so nothing is skipped), and the secrets are gone."""
    out = tmp_path / "out"
    seen: dict[str, str] = {}
    done = threading.Event()

    def watch() -> None:
        # The run names its socket folder (which holds the secrets) in its state file.
        while not done.is_set() and not seen:
            for state_file in out.rglob("state.json"):
                try:
                    folders = json.loads(state_file.read_text())["folders"]
                    found = read_secrets(Path(folders[0]) / "secrets")
                except (OSError, ValueError, KeyError, IndexError):
                    continue
                if all(len(v) >= 20 for v in found.values()):
                    seen.update(found, folder=folders[0])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result, run_dir = run_cli("baseline", out, "--duration", "3", "--fault-at", "1")
    finally:
        done.set()
        watcher.join()
    folder = seen.pop("folder", None)
    assert set(seen) == set(RunSecrets.FILES), "the secrets were never seen while the run ran"
    assert not os.path.exists(folder)
    assert texts_holding({"stdout": result.stdout, "stderr": result.stderr}, seen) == []
    assert "requests sent" in result.stdout  # the run printed its summary: not a silent fail
    assert files_holding(run_dir, seen) == []
    assert any(run_dir.rglob("*.log")) and any(run_dir.rglob("binlog.0*"))


# -- database accounts ---------------------------------------------------------------------


@pytest.mark.parametrize("server", SERVERS)
def test_root_logs_in_only_through_the_local_socket(testbed, server):
    """Every root account is root@localhost with socket authentication, and a TCP login as
    root from the client, from the peer server and from the server's own host is refused by
    the database itself (an error code, not a network time-out)."""
    db = testbed.databases[server]
    rows = db.query("SELECT Host, Priv FROM mysql.global_priv WHERE User = 'root'")
    assert [host for host, _ in rows] == ["localhost"]
    assert login_methods(json.loads(rows[0][1])) == {"unix_socket"}, rows[0][1]
    for host in ("client", peer(server), server):
        output = mariadb_from(testbed, host, server, "root")
        # 1130: this host may not connect at all; 1045: access denied. Both are the server's.
        assert mysql_error(output) in (1045, 1130), f"root from {host}: {output}"
        assert output.strip().endswith("rc=1")


@pytest.mark.parametrize("server", SERVERS)
def test_the_replication_user_comes_only_from_the_peer(testbed, server):
    """The repl user exists only for the peer's address, holds only REPLICATION SLAVE, and
    its password works from the peer but not from the client. (test_testbed checks the
    grant line on the primary; this covers both servers and the address.)"""
    db = testbed.databases[server]
    peer_ip = CONFIG.server(peer(server)).ip
    assert db.query("SELECT Host FROM mysql.global_priv WHERE User = 'repl'") == [(peer_ip,)]
    grants = parse_grants(row[0] for row in db.query(f"SHOW GRANTS FOR 'repl'@'{peer_ip}'"))
    assert grants == {"*.*": {"REPLICATION SLAVE"}}
    password = RunSecrets.FILES["repl_password"]
    assert mariadb_from(testbed, peer(server), server, "repl", password).split() == ["1", "rc=0"]
    refused = mariadb_from(testbed, "client", server, "repl", password)
    assert mysql_error(refused) in (1045, 1130), refused


@pytest.mark.parametrize("server", SERVERS)
def test_the_app_user_has_only_data_rights_on_the_app_schema(testbed, server):
    """The app user exists once, for the local socket, with SELECT/INSERT/UPDATE/DELETE on
    `app`.* and SLAVE MONITOR (it reads how replication runs, for /health) and nothing else;
    with its password it cannot log in over TCP from the client."""
    db = testbed.databases[server]
    rows = db.query("SELECT Host, Priv FROM mysql.global_priv WHERE User = 'app'")
    assert [host for host, _ in rows] == ["localhost"]
    assert login_methods(json.loads(rows[0][1])) == {"password"}
    grants = parse_grants(row[0] for row in db.query("SHOW GRANTS FOR 'app'@'localhost'"))
    assert grants == {"`app`.*": DATA_RIGHTS, "*.*": {"SLAVE MONITOR"}}
    output = mariadb_from(testbed, "client", server, "app", RunSecrets.FILES["app_password"])
    assert mysql_error(output) in (1045, 1130), output


@pytest.mark.parametrize(
    "statement, error",
    [
        ("SELECT User FROM mysql.user", 1142),  # SELECT command denied on that table
        ("SELECT * FROM mysql.global_priv", 1142),
        ("CREATE USER 'intruder'@'%' IDENTIFIED BY 'x'", 1227),  # needs CREATE USER
        ("GRANT ALL ON app.* TO 'app'@'localhost'", 1044),  # cannot give itself more
        ("CREATE TABLE app.extra (id INT)", 1142),
        ("DROP TABLE app.items", 1142),
        ("CREATE DATABASE other", 1044),
        ("SELECT 1 INTO OUTFILE '/tmp/sdn-ha-security-outfile'", 1227),  # needs FILE
        ("SET GLOBAL read_only = OFF", 1227),  # fencing is the controller's, as root
    ],
)
def test_the_app_user_cannot_leave_its_data(testbed, statement, error):
    """What the app account is refused, each with the database's own error code; reading
    its own table works (so the refusals are about rights, not a broken connection)."""
    with app_connection(testbed, "primary") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM items")
        with pytest.raises(pymysql.err.MySQLError) as refused:
            cur.execute(statement)
    assert refused.value.args[0] == error, refused.value.args
    assert not os.path.exists("/tmp/sdn-ha-security-outfile")


@pytest.mark.parametrize("server", SERVERS)
def test_no_anonymous_user_and_no_test_database(testbed, server):
    """No account with an empty name, no `test` database, and no leftover rights on one."""
    db = testbed.databases[server]
    assert db.query("SELECT COUNT(*) FROM mysql.global_priv WHERE User = ''") == [(0,)]
    assert db.query("SELECT COUNT(*) FROM mysql.db WHERE User = '' OR Db LIKE 'test%%'") == [(0,)]
    databases = {row[0] for row in db.query("SHOW DATABASES")}
    assert "test" not in databases and "app" in databases
    # Every account a Mininet host could reach over TCP (any host but localhost):
    remote = set(db.query("SELECT User, Host FROM mysql.global_priv WHERE Host <> 'localhost'"))
    assert remote == {("repl", CONFIG.server(peer(server)).ip)}


# -- secrets -------------------------------------------------------------------------------


def run_processes(state: dict) -> dict[int, str]:
    """PID -> name of every process the run recorded, and of every process in their sessions
    (each is started in its own session: gunicorn's workers, the shells' children)."""
    recorded = {record["pid"]: name for kind in ("processes", "shells")
                for name, record in state[kind].items()}
    found = dict(recorded)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            session = int(stat.rsplit(")", 1)[1].split()[3])  # field 6, after the command name
            if session in recorded:
                found.setdefault(int(entry), f"{recorded[session]} (child)")
    return found


def test_secrets_are_kept_in_private_files(testbed):
    """The secrets folder is 0700 and each secret file 0600; the secrets are distinct and
    long enough not to be guessed."""
    assert testbed.secrets_dir.stat().st_mode & 0o777 == 0o700
    for file in RunSecrets.FILES.values():
        assert (testbed.secrets_dir / file).stat().st_mode & 0o777 == 0o600
    values = list(read_secrets(testbed.secrets_dir).values())
    assert len(set(values)) == 3 and min(len(v) for v in values) >= 20


def environment_of(pid: int) -> dict[str, str]:
    return dict(item.split("=", 1) for item in
                Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in item)


def web_secret_dirs(testbed) -> list[Path]:
    return [Path(environment_of(testbed.runner.processes[f"web-{server}"].pid)["TESTBED_SECRETS_DIR"])
            for server in SERVERS]


@pytest.mark.parametrize("server", SERVERS)
def test_a_web_server_gets_its_database_password_and_no_other_secret(testbed, server):
    """The folder the web service is told about holds its own password only, for the web
    account only: not the controller's token, not the replication password; and it is not in
    the secrets folder."""
    folder = Path(environment_of(testbed.runner.processes[f"web-{server}"].pid)["TESTBED_SECRETS_DIR"])
    assert sorted(p.name for p in folder.iterdir()) == ["app.password"]
    assert (folder / "app.password").read_text() == read_secrets(testbed.secrets_dir)["app_password"]
    assert folder.stat().st_mode & 0o777 == 0o500 and folder.stat().st_uid == pwd.getpwnam(WEB_USER).pw_uid
    assert testbed.secrets_dir not in folder.parents


def ids_of(pid: int) -> dict[str, list[int]]:
    """The real, effective, saved and file-system uids and gids of `pid`, and its groups."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: [int(n) for n in status[key].split()] for key in ("Uid", "Gid", "Groups")}


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except OSError:
            pass  # ended meanwhile
    return found


@pytest.mark.parametrize("server", SERVERS)
def test_the_databases_and_the_web_workers_run_as_unprivileged_accounts(testbed, server):
    """mariadbd runs as `mysql`; every gunicorn worker (what takes the requests) as the web
    account with its own group alone (not root's); only the master stays root."""
    mysql, web = pwd.getpwnam(DATABASE_USER), pwd.getpwnam(WEB_USER)
    database = ids_of(testbed.runner.processes[f"mariadb-{server}"].pid)
    assert database["Uid"] == [mysql.pw_uid] * 4 and database["Gid"] == [mysql.pw_gid] * 4
    workers = children_of(testbed.runner.processes[f"web-{server}"].pid)
    assert len(workers) == CONFIG.web.workers
    for worker in workers:
        ids = ids_of(worker)
        assert ids == {"Uid": [web.pw_uid] * 4, "Gid": [web.pw_gid] * 4, "Groups": [web.pw_gid]}, worker


def read_as(user: str, path: Path) -> bool:
    """Whether `user` (with its own group only) can read the file `path`."""
    account = pwd.getpwnam(user)
    return subprocess.run(["cat", str(path)], user=account.pw_uid, group=account.pw_gid, extra_groups=[],
                          capture_output=True).returncode == 0


def test_the_web_account_reads_its_password_and_nothing_else_of_the_run(testbed):
    """What a web worker broken into could read: its own password, and not the controller's
    token, the replication password, a database's files or another run file of root's."""
    own = web_secret_dirs(testbed)[0] / "app.password"
    assert read_as(WEB_USER, own)
    db = testbed.databases[SERVERS[0]]
    forbidden = [testbed.secrets_dir / f for f in RunSecrets.FILES.values()]
    forbidden += [db.datadir / "master.info", next(db.dir.glob("binlog.0*")), db.config_file]
    for path in forbidden:
        assert path.exists(), path
        assert not read_as(WEB_USER, path), f"{WEB_USER} can read {path}"
    assert subprocess.run(["ls", str(testbed.socket_dir)], user=WEB_USER, capture_output=True).returncode != 0


def test_secrets_appear_in_no_file_command_line_or_environment_of_the_run(testbed):
    """While the testbed runs (after some traffic, so that every log has something in it):
    no file of the run folder or of the socket folder but the secret files themselves holds
    a secret; the databases' own data folders are private to `mysql` and, of their files, only
    MariaDB's master.info holds one (the replication password, which the replica needs to
    reconnect); and no command line or environment of the run's processes holds one."""
    secrets = read_secrets(testbed.secrets_dir)
    for _ in range(20):
        assert testbed.http_status("client", f"http://{VIP}/") == 200
    datadirs = [db.datadir for db in testbed.databases.values()]
    assert files_holding(testbed.dir, secrets) == []
    assert files_holding(testbed.socket_dir, secrets,
                         skip=[testbed.secrets_dir, *web_secret_dirs(testbed), *datadirs]) == []
    for datadir in datadirs:
        assert datadir.stat().st_mode & 0o077 == 0, f"{datadir} is readable by others"
        assert datadir.stat().st_uid == pwd.getpwnam(DATABASE_USER).pw_uid
        assert files_holding(datadir, secrets) == [f"{datadir / 'master.info'}: repl_password"]

    state = json.loads((testbed.dir / "state.json").read_text())
    processes = run_processes(state)
    assert {"controller", "prober", "mariadb-primary", "web-secondary"} <= set(processes.values())
    texts = {}
    for pid, name in processes.items():
        for part in ("cmdline", "environ"):
            try:
                texts[f"{name} {pid} {part}"] = Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:
                pass  # a short-lived child ended meanwhile
    assert texts_holding(texts, secrets) == []


# -- a fuzzed controller -------------------------------------------------------------------

OFP_VERSION = 4  # OpenFlow 1.3
HELLO, FEATURES_REPLY, PACKET_IN, PORT_STATUS, MULTIPART_REPLY = 0, 6, 10, 12, 19
FOREIGN_DPID = 0xBAD0_0000_0000_0042  # not the testbed switch's (s1 -> 1)


def ofp(msg_type: int, body: bytes = b"", version: int = OFP_VERSION, length: int | None = None,
        xid: int = 0) -> bytes:
    """An OpenFlow message; `length` overrides the header's length field (a lie)."""
    real = 8 + len(body)
    return struct.pack("!BBHI", version, msg_type, real if length is None else length, xid) + body


def features_reply(dpid: int) -> bytes:
    return ofp(FEATURES_REPLY, struct.pack("!QIBB2xII", dpid, 0, 254, 0, 0, 0))


def multipart_reply(mp_type: int, body: bytes = b"") -> bytes:
    return ofp(MULTIPART_REPLY, struct.pack("!HH4x", mp_type, 0) + body)


def handshake(dpid: int = FOREIGN_DPID) -> bytes:
    """HELLO, FEATURES_REPLY and an empty PORT_DESC reply: what takes a switch to MAIN state."""
    return ofp(HELLO) + features_reply(dpid) + multipart_reply(13)


def packet_in(match: bytes, data: bytes, total_len: int | None = None) -> bytes:
    fixed = struct.pack("!IHBBQ", 0xFFFFFFFF, len(data) if total_len is None else total_len, 0, 0, 0)
    return ofp(PACKET_IN, fixed + match + b"\x00\x00" + data)


def oxm_match(fields: bytes, length: int | None = None) -> bytes:
    """An OXM match (type 1); `length` overrides its length field. Padded to 8 bytes."""
    real = 4 + len(fields)
    raw = struct.pack("!HH", 1, real if length is None else length) + fields
    return raw + b"\x00" * (-len(raw) % 8)


IN_PORT_1 = struct.pack("!HBBI", 0x8000, 0 << 1, 4, 1)  # OXM_OF_IN_PORT = 1


def arp_for_vip() -> bytes:
    """An ARP request for the VIP, as a client would send it (the one packet the app answers)."""
    mac = bytes.fromhex(CONFIG.client.mac.replace(":", ""))
    return (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac
            + socket.inet_aton(CONFIG.client.ip) + b"\x00" * 6 + socket.inet_aton(VIP))


def port_status_down(port_no: int) -> bytes:
    """OFPT_PORT_STATUS: `port_no` (a server's port on the real switch) is down."""
    port = struct.pack("!I4x6s2x16sIIIIIIII", port_no, b"\x02" * 6, b"s1-eth%d" % port_no,
                       1, 1, 0, 0, 0, 0, 0, 0)  # config PORT_DOWN, state LINK_DOWN
    return ofp(PORT_STATUS, struct.pack("!B7x", 2) + port)  # reason MODIFY


def vip_flow_stats(server_index: int) -> bytes:
    """A FLOW stats reply saying the VIP flow (priority 100) names server `server_index`."""
    from controller import flows

    stats = struct.pack("!HBxIIHHHH4xQQQ", 56, 0, 1, 0, flows.PRIORITY_VIP, 0, 0, 0,
                        flows.COOKIE_VIP + server_index, 1, 1) + oxm_match(b"")
    return multipart_reply(1, stats)


def fuzz_cases(rng: random.Random) -> dict[str, list[bytes]]:
    """Each case: the chunks sent on one connection, in order. Seeded: a failure reproduces."""
    garbage = bytes(rng.getrandbits(8) for _ in range(4096))
    return {
        "random bytes": [garbage],
        "random bytes with a 1.3 version byte": [bytes([4]) + garbage[1:200]],
        "truncated header": [b"\x04\x00\x00"],
        "length 0": [ofp(HELLO, length=0), ofp(HELLO, b"xxxx", length=0)],
        "length below the header": [ofp(HELLO, length=7), ofp(2, b"ab", length=3)],
        "length far beyond what is sent (held open)": [ofp(HELLO, b"\x00" * 8, length=0xFFFF)],
        "wrong version": [ofp(HELLO, version=0x99)],
        "an old version only": [ofp(HELLO, version=1)],
        "hello then garbage": [ofp(HELLO), garbage[:1000]],
        "many zero-length messages": [ofp(HELLO, length=0) * 5000],
        "unknown message type": [ofp(HELLO), ofp(200, b"\x01" * 20)],
        "foreign switch, truncated packet-ins": [
            handshake(),
            ofp(PACKET_IN, b"\x00" * 5),
            packet_in(oxm_match(IN_PORT_1), b"")[:30],
        ],
        "foreign switch, zero-length fields": [
            handshake(),
            packet_in(oxm_match(b""), b"", total_len=0),
            packet_in(oxm_match(IN_PORT_1), b"", total_len=0),
            packet_in(oxm_match(struct.pack("!HBB", 0x8000, 0, 0)), b""),  # an OXM of length 0
        ],
        "foreign switch, bogus match lengths": [
            handshake(),
            packet_in(oxm_match(IN_PORT_1, length=0), arp_for_vip()),
            packet_in(oxm_match(IN_PORT_1, length=2), arp_for_vip()),
            packet_in(oxm_match(IN_PORT_1, length=0xFFF0), arp_for_vip()),
            packet_in(oxm_match(struct.pack("!HBB", 0x8000, 0, 200) + b"\x00" * 4), garbage[:64]),
        ],
        "foreign switch, random packet-ins": [
            handshake(),
            *(packet_in(oxm_match(IN_PORT_1), garbage[i:i + rng.randrange(0, 200)])
              for i in range(0, 2000, 100)),
            *(ofp(PACKET_IN, garbage[i:i + rng.randrange(0, 80)]) for i in range(0, 2000, 100)),
        ],
        # What a foreign switch could make the controller do, if it listened to it: fail over
        # (its port 3 is "down"), hand the VIP to the secondary (its "VIP flow" names it) or
        # answer ARP for the VIP.
        "foreign switch says a server's port is down": [
            handshake(), *(port_status_down(plan.port) for plan in CONFIG.server_plans),
        ],
        "foreign switch names another VIP holder": [handshake(), vip_flow_stats(1)],
        "foreign switch asks for the VIP's MAC": [
            handshake(), packet_in(oxm_match(IN_PORT_1), arp_for_vip()),
        ],
        # Thousands of handshakes on a connection that never reads what the controller sends
        # back: whatever the controller sends to it must not block it.
        "foreign switch that never reads": [ofp(HELLO) + features_reply(FOREIGN_DPID) * 20000],
    }


def send_case(chunks: list[bytes], port: int) -> socket.socket:
    """Send `chunks` on a new connection; return it still open (the caller closes it).

    The controller may close the connection at any point: that is a right answer.
    """
    conn = socket.create_connection(("127.0.0.1", port), timeout=2)
    for chunk in chunks:
        try:
            conn.sendall(chunk)
        except OSError:  # reset or closed by the controller: it dropped us
            break
        time.sleep(0.02)
    return conn


def assert_still_serving(testbed: Testbed, case: str) -> None:
    process = testbed.runner.processes["controller"]
    assert process.running(), f"the controller died after {case!r}: {process.log_tail()}"
    try:
        body = testbed.control.status()  # answered by the app's own event loop: not hung
    except OSError as error:
        pytest.fail(f"the status endpoint did not answer 200 after {case!r}: {error}")
    assert body["active"] == "primary", f"the VIP moved after {case!r}: {body['recent_events'][-3:]}"
    assert testbed.http_status("client", f"http://{VIP}/health") == 200, f"client not served after {case!r}"


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_malformed_openflow_neither_crashes_nor_hangs_nor_moves_the_controller(testbed):
    """Each malformed input on its own connection, then all of them held open at once: the
    controller stays alive, its status endpoint answers, the VIP stays on the primary and the
    client is served; foreign switches are logged and dropped. Finally the real switch's
    port-down still moves the VIP to the secondary."""
    port = CONFIG.network.controller_port
    cases = fuzz_cases(random.Random(20261127))
    held = []
    try:
        for case, chunks in cases.items():
            held.append(send_case(chunks, port))
            time.sleep(0.1)  # let the controller's event loop handle what it was sent
            assert_still_serving(testbed, case)
            if "held open" not in case:
                held.pop().close()
        for chunks in cases.values():  # all at once, every connection left open
            held.append(send_case(chunks, port))
        time.sleep(0.5)
        assert_still_serving(testbed, "every case at once")
    finally:
        for conn in held:
            conn.close()
    events = [json.loads(line) for line in (testbed.dir / "controller-events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert "vip_moved" not in kinds and kinds.count("switch_connected") == 1
    assert {e.get("dpid") for e in events if e["kind"] == "foreign_switch_refused"} == {FOREIGN_DPID}

    testbed.faults.link_down("primary")
    moved = wait_until(lambda: testbed.control.active_server() == "secondary", timeout=5)
    assert moved, testbed.control.status()
    assert wait_until(lambda: testbed.http_status("client", f"http://{VIP}/health") == 200, timeout=5)
