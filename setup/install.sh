#!/usr/bin/env bash
# Install and start what the testbed needs, on Debian 12, idempotently (run as root):
# the Debian packages, the web service's account, a running Open vSwitch, and the Python
# venv in .venv.
# `make run` and `make test` call this first; running it again changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# openssh-server: the sshd of a second machine simulated on this one (servers on other machines,
# experiments/testbed/simulated_machine.py); like every package here, never started as a service.
PACKAGES=(mininet openvswitch-switch mariadb-server mariadb-client cgroup-tools ethtool
          iproute2 iputils-ping curl procps python3-venv vagrant wrk tmux keepalived haproxy chromium
          openssh-server openssh-client
          python3-wheel)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (sudo make ...): it installs packages and starts Open vSwitch" >&2
  exit 2
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # Packages must not start their own services (a system MariaDB, Open vSwitch via init
  # scripts): the testbed starts exactly what it needs. policy-rc.d is Debian's switch for that.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    added_policy=yes
  fi
  trap '[ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The account the web service's workers run as (mariadbd runs as `mysql`, which
# mariadb-server creates): a system account with no home and no login.
if ! id -u hatb-web >/dev/null 2>&1; then
  echo "setup: creating the system account hatb-web"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hatb-web
fi

# Open vSwitch: there is no systemd here, so start it ourselves when it does not answer.
if ! ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
  echo "setup: starting Open vSwitch"
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  ovs-vsctl --timeout=10 show >/dev/null || { echo "setup: Open vSwitch did not start" >&2; exit 1; }
fi

# The venv: from Debian's python3 (the only one that sees the Debian mininet module).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import mininet' 2>/dev/null; then
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
# Every package of the tree at the version constraints.txt pins, not only the top ones.
if [ ! -f .venv/.requirements ] || ! cat requirements.txt constraints.txt | cmp -s - .venv/.requirements; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
  cat requirements.txt constraints.txt > .venv/.requirements
fi
# The project itself, editable (the code runs from here): its command, .venv/bin/sdn-ha.
if [ ! -x .venv/bin/sdn-ha ] || ! cmp -s pyproject.toml .venv/.pyproject; then
  echo "setup: installing the sdn-ha command into .venv"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  cp pyproject.toml .venv/.pyproject
fi
