"""The testbed's network in Mininet's own command line, to explore it with Mininet's commands.

    sudo .venv/bin/sdn-ha controller          # terminal 1: the project's controller, alone
    sudo mn --custom topology/mininet_custom.py --topo testbed --host testbed --switch testbed \\
            --controller testbed                            # terminal 2: Mininet's CLI

`--topo testbed` is the network of config/default.toml (or of the TOML file named by the
environment variable TESTBED_CONFIG): the client, the monitor and the servers on switch s1,
each on the port, with the IP and the MAC, the testbed gives it, so the controller finds each
server where it expects it. With `[network] topology = "two-tier"` or `"leaf-spine"` in that
file it is the fabric instead: every edge and core, each host on its edge, every cable
(`sdn-ha topology --config FILE` prints which host and cable is on which port), and the
controller serves every switch; `link edge2 core1 down` in Mininet's CLI cuts a cable.
`--switch testbed` is Open vSwitch as the testbed runs it
(userspace datapath, OpenFlow 1.3, fail-mode secure), `--host testbed` a host with TX
checksum offload off (TCP through the userspace datapath needs it: ../shared/ENVIRONMENT.md),
and `--controller testbed` the controller on 127.0.0.1 at the config's port (Mininet's own
`remote` checks the port in a way the controller's binary hello can crash).

The hosts run nothing of their own here (no web service, no database, no prober): that is
what `sdn-ha run` and `sdn-ha demo` add. In Mininet's CLI, for example:

    mininet> net                                  # the hosts and which switch port each is on
    mininet> dpctl dump-flows -O OpenFlow13       # the controller's flow table
    mininet> client arping -c1 10.0.0.100         # the controller answers for the VIP
    mininet> primary python3 -m http.server 80 &  # a web server on the primary, and one on
    mininet> secondary python3 -m http.server 80 &  # the secondary
    mininet> client curl -s -o /dev/null -w '%{http_code}\\n' http://10.0.0.100/
    mininet> link s1 primary down                 # the controller moves the VIP ...
    mininet> client curl -s -o /dev/null -w '%{http_code}\\n' http://10.0.0.100/   # ... served again
    mininet> exit                                 # Mininet stops what it started
"""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

# `mn --custom` runs this file with Debian's python3, from wherever mn was started, through
# exec() without a __file__: the file's name is its code's.
HERE = Path(globals().get("__file__") or sys._getframe().f_code.co_filename).resolve()
PROJECT = HERE.parent.parent
sys.path.insert(0, str(PROJECT))

from mininet.node import Host, OVSSwitch  # noqa: E402 - after the path the project needs
from mininet.topo import Topo  # noqa: E402

from topology.config import TestbedConfig, load_config  # noqa: E402
from topology.network import project_controller  # noqa: E402


def testbed_config() -> TestbedConfig:
    """config/default.toml, or the TOML file that TESTBED_CONFIG names."""
    path = os.environ.get("TESTBED_CONFIG")
    default = PROJECT / "config" / "default.toml"
    return load_config(Path(path) if path else default)


class TestbedTopo(Topo):
    """The config's switches (one, or a fabric's edges and cores with the datapath ids the
    controller expects), every host of its network plan on its own port, every cable."""

    def build(self) -> None:  # noqa: D102 - Mininet's name
        config = testbed_config()
        fabric = config.fabric
        for name in fabric.switches:
            self.addSwitch(name, dpid=f"{fabric.dpid(name):016x}")
        for plan in config.host_plans:
            host = self.addHost(plan.name, ip=f"{plan.ip}/{config.prefix_len}", mac=plan.mac)
            self.addLink(host, plan.switch, port2=plan.port)
        for link in fabric.links:
            self.addLink(link.edge, link.core, port1=link.edge_port, port2=link.core_port)


class TestbedHost(Host):
    """A host whose TX checksum offload is off: TCP through the userspace datapath needs it."""

    def config(self, **params):  # noqa: ANN001, ANN201 - Mininet's signature
        result = super().config(**params)
        for intf in self.intfList():
            if intf.name != "lo":
                self.cmd(f"ethtool -K {intf.name} tx off")
        return result


topos = {"testbed": TestbedTopo}
hosts = {"testbed": TestbedHost}
# batch: every bridge and port made in one ovs-vsctl run from the root namespace, split to fit
# (topology/network.py says why).
switches = {"testbed": partial(OVSSwitch, datapath="user", protocols="OpenFlow13", failMode="secure",
                               batch=True)}
controllers = {"testbed": partial(project_controller(), ip="127.0.0.1",
                                  port=testbed_config().network.controller_port)}
