"""Two `pfepo run` controllers share four real OVS bridges through etcd: one MASTER per switch, and after a
kill -9 the peer takes MASTER of the dead controller's switch. Needs OVS and etcd; run under the lock:
``flock /tmp/pfepo-ovs.lock .venv/bin/pytest -s -m ovs tests/cluster/test_handover_ovs.py``.
"""

from __future__ import annotations

import time

import httpx
import pytest

from pfepo_lab.cluster.handover import ClusterLab, dump_groups, logged_after
from tests.waiting import wait_until

pytestmark = [pytest.mark.ovs, pytest.mark.etcd]
TTL = 3


def test_one_master_per_switch_and_kill_9_handover(etcd, tmp_path):
    lab = ClusterLab(etcd.endpoint, tmp_path, TTL)
    try:
        lab.start()
        names = lab.names
        eu_sw, us_sw = lab.spec.region_switch(0), lab.spec.region_switch(1)
        other = {"c-eu": "c-us", "c-us": "c-eu"}
        # whichever joined first may hold everything for a moment; each region's controller then gets its own
        wait_until(lambda: (o := lab.watcher.owners()) and set(o) == set(names) and o[eu_sw].owner == "c-eu"
                   and o[us_sw].owner == "c-us", timeout=30, message="an owner for every switch, region-local")

        def consistent() -> bool:  # every bridge: the etcd owner's connection MASTER, the other SLAVE
            cur = lab.watcher.owners()
            return all(lab.bridge_roles(n) == {cur[n].owner: "master", other[cur[n].owner]: "slave"}
                       for n in names)

        wait_until(consistent, timeout=30, message="OVSDB roles = etcd owners on every bridge", interval=0.5)
        core = lab.bridges[lab.spec.core()]
        wait_until(lambda: "group_id=1," in dump_groups(core), timeout=30, message="groups installed")
        groups_before = {n: dump_groups(lab.bridges[n]) for n in names}
        # kill -9 the eu controller: c-us must take its switch within TTL + 1 s (etcd), then on the switch
        t0 = time.monotonic()
        wall0 = lab.kill("c-eu")
        wait_until(lambda: lab.owner(eu_sw) == "c-us", timeout=TTL + 5, message="c-us owns the eu switch",
                   interval=0.01)
        t_etcd = time.monotonic() - t0
        wait_until(lambda: lab.bridge_roles(eu_sw).get("c-us") == "master", timeout=20,
                   message="OVSDB shows c-us MASTER of the eu switch", interval=0.05)
        t_ovsdb = time.monotonic() - t0
        t_role = logged_after(lab.log("c-us"), f"role request MASTER to dpid={lab.dpids[eu_sw]:#x}", wall0)
        print(f"\nkill -9 handover: etcd owner changed after {t_etcd:.2f} s, c-us sent its MASTER role request "
              f"after {t_role:.2f} s, OVSDB (refreshed periodically) showed it after {t_ovsdb:.2f} s "
              f"(lease TTL {TTL} s)")
        assert t_etcd <= TTL + 1 and t_role is not None and t_role <= TTL + 1
        assert lab.procs["c-us"].poll() is None
        metrics = httpx.get(f"http://127.0.0.1:{lab.ctl['c-us'][2]}/metrics", timeout=5).text
        assert "pfepo_cluster_etcd_up 1.0" in metrics
        assert f'pfepo_cluster_switches{{role="master"}} {float(len(names))}' in metrics  # all four now
        assert {n: dump_groups(lab.bridges[n]) for n in names} == groups_before  # no weight jolt on any switch
    finally:
        lab.stop()
