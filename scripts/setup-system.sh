#!/usr/bin/env bash
# Installs the Debian packages PF-EPO's demo and tests need. Idempotent: skips apt when all are present.
set -euo pipefail
PKGS="openvswitch-switch mininet iptables ethtool iproute2 iputils-ping influxdb victoria-metrics iperf3 curl etcd-server etcd-client chromium chromium-driver"
# chromium + chromium-driver: the console's browser tests (tests/console, Selenium; no browser is downloaded)
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup-system: installing$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
