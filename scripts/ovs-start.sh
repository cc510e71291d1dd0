#!/usr/bin/env bash
# Starts Open vSwitch (userspace datapath only on this kind of machine) unless it already runs.
set -euo pipefail
if ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# The OVS daemons live on after this script: they must not inherit our open files (a caller's
# `flock LOCKFILE make ...` would otherwise stay locked for as long as OVS runs).
for fd in $(ls /proc/$$/fd); do
  if [ "$fd" -gt 2 ] && [ "$fd" != 255 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
$SUDO /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/tmp/pfepo-ovs-start.log 2>&1 || {
  cat /tmp/pfepo-ovs-start.log; exit 1; }
ovs-vsctl --timeout=5 show >/dev/null
echo "ovs-start: Open vSwitch started"
