"""Start the failover controller: `python -m controller --config RUN/config.json --run-dir RUN`.

os-ken 4 ships no `osken-manager` command, so this small launcher does its work: it sets
os-ken's options (OpenFlow on loopback only, the port from the config), adds the testbed's
own options, configures logging (os-ken's handler exceptions are invisible without it)
and runs the app in `controller/app.py`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from topology.config import ConfigError, TestbedConfig


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m controller", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="resolved config (JSON) of the run")
    parser.add_argument("--run-dir", type=Path, required=True, help="the run folder (event log)")
    parser.add_argument("--probe-socket", type=Path, required=True, help="UNIX socket the prober reports to")
    parser.add_argument("--socket-dir", type=Path, required=True, help="folder of the databases' sockets")
    parser.add_argument("--token-file", type=Path, required=True, help="file with the token commands need")
    parser.add_argument(
        "--prober-pid-file", type=Path,
        help="file holding the prober's PID (one line, decimal), written once the prober runs: only "
             "that process's probe reports are heard, read again when another PID sends. Without "
             "it, any sender is heard",
    )
    args = parser.parse_args()
    try:
        config = TestbedConfig.from_file(args.config)
    except ConfigError as exc:
        print(f"controller: cannot use {args.config}: {exc}", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    import controller.app  # noqa: F401 - registers the app's own options before they are parsed

    options = [
        "--ofp-listen-host", "127.0.0.1",
        "--ofp-tcp-listen-port", str(config.network.controller_port),
        "--testbed-config", str(args.config),
        "--testbed-run-dir", str(args.run_dir),
        "--testbed-probe-socket", str(args.probe_socket),
        "--testbed-socket-dir", str(args.socket_dir),
        "--testbed-token-file", str(args.token_file),
    ]
    if args.prober_pid_file is not None:
        options += ["--testbed-prober-pid-file", str(args.prober_pid_file)]
    cfg.CONF(args=options, project="os_ken")
    AppManager.run_apps(["controller.app"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
