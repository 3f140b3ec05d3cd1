"""keepalived on a server host: VRRPv3, the classic answer to "keep one address alive".

With `failover.mechanism = "vrrp"` there is no controller: the switch is a plain learning
switch, and each server host runs its own keepalived. The master holds the virtual IP as a
real address on its interface and answers ARP for it; a backup that hears no advertisement
for three advertisement intervals (plus a skew that favours the higher priority) takes the
address and sends gratuitous ARPs, so that the client's ARP cache and the switch's MAC table
learn where it went. Each keepalived also checks its own server: its interface (a link down
puts it in FAULT at once) and `/health` (a script that fails puts it in FAULT too, and it
gives the address up).

Every instance starts as BACKUP. With `failover.failback = "never"` each has `nopreempt`: the
server that holds the address keeps it when an earlier one comes back, as with the
controller; with "auto", a higher-priority server that is back takes it again after
`failover.hold_down_s` (`preempt_delay`).

The databases follow each server's VRRP state: keepalived writes every change of state to a
FIFO (`vrrp_notify_fifo`), which `controller/follower.py` reads; MASTER makes that server's
database writable, any other state read-only (the notify scripts of a classic set-up, in one
process that is already running: a script started per change costs a process start).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from topology.config import HostPlan, TestbedConfig

VIRTUAL_ROUTER_ID = 51
INSTANCE = "VIP"  # the VRRP instance's name, as the FIFO's lines name it
TOP_PRIORITY = 150  # the first server's; each next one 10 lower


@dataclass(frozen=True)
class VrrpTiming:
    """How fast keepalived notices: its advertisements, and its check of `/health`."""

    advert_int_s: float  # VRRPv3: in steps of 10 ms
    check_interval_s: int  # keepalived 2.2.7 runs a check script at most once a second
    check_timeout_s: int  # whole seconds as well
    fall: int
    rise: int
    # How long curl waits for /health (it takes fractions of a second, the script's own
    # time-out does not).
    http_timeout_s: float


PRESETS = {
    # As shipped: keepalived's defaults (advert_int 1, a script every second, fall and rise 1).
    "defaults": VrrpTiming(advert_int_s=1.0, check_interval_s=1, check_timeout_s=1, fall=1, rise=1,
                           http_timeout_s=1.0),
    # The fastest that gave no false failover in 60 s of load without a fault (docs/presets.md).
    "tuned": VrrpTiming(advert_int_s=0.01, check_interval_s=1, check_timeout_s=1, fall=1, rise=2,
                        http_timeout_s=0.2),
}


def notify_fifo(socket_dir: Path, server: str) -> Path:
    """Where `server`'s keepalived writes its state changes (in the run's private folder)."""
    return socket_dir / f"vrrp-{server}.fifo"


class Keepalived:
    """One server host's keepalived: renders its config and gives its command."""

    def __init__(self, config: TestbedConfig, plan: HostPlan, interface: str, run_dir: Path,
                 socket_dir: Path) -> None:
        self.config = config
        self.plan = plan
        self.interface = interface
        self.timing = PRESETS[config.failover.preset]
        self.dir = run_dir / plan.name / "keepalived"
        self.config_file = self.dir / "keepalived.conf"
        # The FIFO and the pid files in the run's private folder: no other account may write them.
        self.fifo = notify_fifo(socket_dir, plan.name)
        self.pid_files = [socket_dir / f"keepalived-{plan.name}{part}.pid" for part in ("", "-vrrp")]

    @property
    def name(self) -> str:
        return f"keepalived-{self.plan.name}"

    @property
    def priority(self) -> int:
        return TOP_PRIORITY - 10 * [p.name for p in self.config.server_plans].index(self.plan.name)

    def render_config(self) -> str:
        t = self.timing
        peers = "\n".join(f"    {p.ip}" for p in self.config.server_plans if p.name != self.plan.name)
        health = f"http://{self.plan.ip}:{self.config.web.port}/health"
        return f"""# keepalived for {self.plan.name}: failover.preset = "{self.config.failover.preset}"
global_defs {{
  router_id {self.plan.name}
  vrrp_version 3
  script_user root
  enable_script_security
  vrrp_notify_fifo {self.fifo}
}}

vrrp_script web_health {{
  script "/usr/bin/curl --silent --fail --output /dev/null --max-time {t.http_timeout_s:g} {health}"
  interval {t.check_interval_s}
  timeout {t.check_timeout_s}
  fall {t.fall}
  rise {t.rise}
}}

vrrp_instance {INSTANCE} {{
  state BACKUP
  {self._preemption()}
  interface {self.interface}
  virtual_router_id {VIRTUAL_ROUTER_ID}
  priority {self.priority}
  advert_int {t.advert_int_s:g}
  unicast_src_ip {self.plan.ip}
  unicast_peer {{
{peers}
  }}
  virtual_ipaddress {{
    {self.config.network.vip}/{self.config.prefix_len} dev {self.interface}
  }}
  track_script {{
    web_health
  }}
}}
"""

    def _preemption(self) -> str:
        failover = self.config.failover
        if failover.failback == "never":
            return "nopreempt"
        return f"preempt_delay {failover.hold_down_s:g}"

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.render_config())

    def start_command(self) -> list[str]:
        """In the foreground (its PID is the one recorded), logging to stdout, VRRP only."""
        main_pid, vrrp_pid = self.pid_files
        return ["keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
                "--use-file", str(self.config_file), "--pid", str(main_pid), "--vrrp_pid", str(vrrp_pid)]


def parse_notify_line(line: str) -> tuple[str, str] | None:
    """(instance, state) from a line of keepalived's notify FIFO, `INSTANCE "VIP" MASTER 150`;
    None for any other line (a sync group's, a blank one, junk)."""
    parts = line.split()
    if len(parts) < 3 or parts[0] != "INSTANCE":
        return None
    instance = parts[1].strip('"')
    if not instance:
        return None
    return instance, parts[2]
