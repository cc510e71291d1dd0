"""Two `pfepo run` controllers share four real OVS bridges through etcd: one MASTER per switch, and after a
kill -9 the peer takes MASTER of the dead controller's switch. Needs OVS and etcd; run under the lock:
``flock /tmp/pfepo-ovs.lock .venv/bin/pytest -s -m ovs tests/cluster/test_handover_ovs.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from mininet_topologies.multiregion import TopoSpec
from pfepo.bench.history import free_port
from pfepo.cluster.etcd import EtcdCoordinator
from tests.waiting import wait_until

pytestmark = [pytest.mark.ovs, pytest.mark.etcd]
ROOT = Path(__file__).resolve().parents[2]
TTL = 3


def _vsctl(*args: str) -> str:
    return subprocess.run(["ovs-vsctl", *args], check=True, capture_output=True, text=True).stdout.strip()


def _role(port: int) -> str:
    return _vsctl("--bare", "--columns=role", "find", "controller", f'target="tcp:127.0.0.1:{port}"')


def _groups(bridge: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", bridge], check=True,
                          capture_output=True, text=True).stdout


def _logged_after(log: Path, needle: str, since: float) -> float:
    """Seconds from ``since`` (wall clock) to the first daemon log line containing ``needle`` after it."""
    from datetime import datetime

    for line in log.read_text(errors="replace").splitlines():
        if needle in line:
            ts = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if ts >= since - 0.001:
                return ts - since
    raise AssertionError(f"{needle!r} not in {log} after the kill")


def test_one_master_per_switch_and_kill_9_handover(etcd, tmp_path):
    spec = TopoSpec(weights={"eu": 50, "us": 30, "ap": 20})
    tag = uuid.uuid4().hex[:6]
    ctl = {"c-eu": ("eu", free_port(), free_port()), "c-us": ("us", free_port(), free_port())}
    base = spec.config()
    bridges = {sw["name"]: f"pfk{tag}{i}" for i, sw in enumerate(base["switches"])}
    procs: dict[str, subprocess.Popen] = {}
    try:
        for sw in base["switches"]:
            br = bridges[sw["name"]]
            _vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "protocols=OpenFlow13",
                   "fail-mode=secure", f"other-config:datapath-id={sw['dpid']:016x}")
            _vsctl("set-controller", br, *[f"tcp:127.0.0.1:{of}" for _, of, _ in ctl.values()])
        for cid, (region, of_port, rest_port) in ctl.items():
            work = tmp_path / cid
            work.mkdir()
            cfg = spec.config(of_port=of_port, rest_port=rest_port, state_dir=str(work / "state"),
                              history_path=str(work / "h.sqlite"))
            cfg["policy"] = {"paths": [str(ROOT / "policies" / "default.yaml")]}
            cfg["predict"] = {"enabled": False}
            cfg["probes"] = {"enabled": False}
            cfg["cluster"] = {"endpoints": [etcd.endpoint], "name": "lab", "controller_id": cid, "region": region,
                              "lease_ttl_s": TTL}
            (work / "pfepo.yaml").write_text(yaml.safe_dump(cfg))
            procs[cid] = subprocess.Popen([sys.executable, "-m", "pfepo.cli", "run", "--config", "pfepo.yaml"],
                                          cwd=work, stdout=open(work / "daemon.log", "wb"), stderr=subprocess.STDOUT)
        watcher = EtcdCoordinator(etcd.endpoint, "lab", "test")
        names = [sw["name"] for sw in base["switches"]]
        eu_sw, us_sw = spec.region_switch(0), spec.region_switch(1)
        # whichever joined first may hold everything for a moment; each region's controller then gets its own
        wait_until(lambda: (o := watcher.owners()) and set(o) == set(names) and o[eu_sw].owner == "c-eu"
                   and o[us_sw].owner == "c-us", timeout=30, message="an owner for every switch, region-local")
        port_of = {cid: of for cid, (_, of, _) in ctl.items()}
        other = {"c-eu": "c-us", "c-us": "c-eu"}

        # every switch: its owner's connection is MASTER and the other one SLAVE (OVSDB, per bridge)
        def bridge_roles(bridge: str) -> dict[str, str]:
            out = {}
            for uuid_ in _vsctl("--bare", "get", "bridge", bridge, "controller").strip("[]").split(", "):
                target = _vsctl("--bare", "get", "controller", uuid_, "target").strip('"')
                role = _vsctl("--bare", "get", "controller", uuid_, "role")
                out[next(c for c, p in port_of.items() if target.endswith(f":{p}"))] = role
            return out

        def consistent() -> bool:
            cur = watcher.owners()
            return all(bridge_roles(bridges[n]) == {cur[n].owner: "master", other[cur[n].owner]: "slave"}
                       for n in names)

        wait_until(consistent, timeout=30, message="OVSDB roles = etcd owners on every bridge", interval=0.5)
        wait_until(lambda: "group_id=1," in _groups(bridges[spec.core()]), timeout=30, message="groups installed")
        groups_before = {n: _groups(bridges[n]) for n in names}
        # kill -9 the eu controller: c-us must take its switch within TTL + 1 s (etcd), then on the switch
        t0, wall0 = time.monotonic(), time.time()
        procs["c-eu"].send_signal(signal.SIGKILL)
        procs["c-eu"].wait(5)
        wait_until(lambda: watcher.owners().get(eu_sw, None) is not None and watcher.owners()[eu_sw].owner == "c-us",
                   timeout=TTL + 5, message="c-us owns the eu switch", interval=0.01)
        t_etcd = time.monotonic() - t0
        wait_until(lambda: bridge_roles(bridges[eu_sw]).get("c-us") == "master", timeout=20,
                   message="OVSDB shows c-us MASTER of the eu switch", interval=0.05)
        t_ovsdb = time.monotonic() - t0
        eu_dpid = next(sw["dpid"] for sw in base["switches"] if sw["name"] == eu_sw)
        t_role = _logged_after(tmp_path / "c-us" / "daemon.log", f"role request MASTER to dpid={eu_dpid:#x}", wall0)
        print(f"\nkill -9 handover: etcd owner changed after {t_etcd:.2f} s, c-us sent its MASTER role request "
              f"after {t_role:.2f} s, OVSDB (refreshed periodically) showed it after {t_ovsdb:.2f} s "
              f"(lease TTL {TTL} s)")
        assert t_role <= TTL + 1
        assert t_etcd <= TTL + 1
        assert procs["c-us"].poll() is None
        metrics = httpx.get(f"http://127.0.0.1:{ctl['c-us'][2]}/metrics", timeout=5).text
        assert "pfepo_cluster_etcd_up 1.0" in metrics
        assert f'pfepo_cluster_switches{{role="master"}} {float(len(names))}' in metrics  # all four now
        assert {n: _groups(bridges[n]) for n in names} == groups_before  # no weight jolt on any switch
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        for br in bridges.values():
            subprocess.run(["ovs-vsctl", "--if-exists", "del-br", br], check=False)
