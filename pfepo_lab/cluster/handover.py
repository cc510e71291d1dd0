"""Kill -9 handover lab and benchmark: controllers as real `pfepo run` processes on real OVS bridges.

``python -m pfepo_lab.cluster.handover --kills 20`` (root, OVS running, etcd installed; run it under
``flock /tmp/pfepo-ovs.lock``) starts its own etcd, one bridge per switch of the demo topology (no hosts),
two controllers (regions eu and us), then repeatedly kill -9s the eu switch's MASTER and measures until
the peer logs its MASTER role request for that switch; the killed controller is restarted and gets its
region's switch back before the next kill. Prints median/p99/max. Tears everything down by PID/name.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import yaml

from mininet_topologies.multiregion import TopoSpec
from pfepo.cluster.etcd import EtcdCoordinator
from pfepo_lab.bench.history import free_port

ROOT = Path(__file__).resolve().parents[2]  # the repository


def vsctl(*args: str) -> str:
    return subprocess.run(["ovs-vsctl", *args], check=True, capture_output=True, text=True).stdout.strip()


def dump_groups(bridge: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", bridge], check=True,
                          capture_output=True, text=True).stdout


def logged_after(log: Path, needle: str, since: float) -> float | None:
    """Seconds from ``since`` (wall clock) to the first daemon log line containing ``needle`` after it."""
    for line in log.read_text(errors="replace").splitlines():
        if needle in line:
            try:
                ts = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue
            if ts >= since - 0.001:
                return ts - since
    return None


class ClusterLab:
    """Bridges for every switch of the demo topology, each connected to every controller; controllers are
    `pfepo run` processes (ours: stopped by PID); bridges deleted by the names we gave them."""

    def __init__(self, etcd_endpoint: str, workdir: Path, ttl_s: int = 3,
                 controllers: dict[str, str] | None = None):
        self.spec = TopoSpec(weights={"eu": 50, "us": 30, "ap": 20})
        self.base = self.spec.config()
        self.etcd_endpoint = etcd_endpoint
        self.workdir = Path(workdir)
        self.ttl_s = ttl_s
        tag = uuid.uuid4().hex[:6]
        self.bridges = {sw["name"]: f"pfk{tag}{i}" for i, sw in enumerate(self.base["switches"])}
        self.dpids = {sw["name"]: sw["dpid"] for sw in self.base["switches"]}
        self.ctl = {cid: (region, free_port(), free_port())
                    for cid, region in (controllers or {"c-eu": "eu", "c-us": "us"}).items()}
        self.procs: dict[str, subprocess.Popen] = {}
        self.watcher = EtcdCoordinator(etcd_endpoint, "lab", "observer")

    @property
    def names(self) -> list[str]:
        return list(self.bridges)

    def log(self, cid: str) -> Path:
        return self.workdir / cid / "daemon.log"

    def start(self) -> ClusterLab:
        for name, br in self.bridges.items():
            vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "protocols=OpenFlow13",
                  "fail-mode=secure", f"other-config:datapath-id={self.dpids[name]:016x}")
            vsctl("set-controller", br, *[f"tcp:127.0.0.1:{of}" for _, of, _ in self.ctl.values()])
        for cid in self.ctl:
            self.start_controller(cid)
        return self

    def start_controller(self, cid: str) -> None:
        region, of_port, rest_port = self.ctl[cid]
        work = self.workdir / cid
        work.mkdir(parents=True, exist_ok=True)
        cfg = self.spec.config(of_port=of_port, rest_port=rest_port, state_dir=str(work / "state"),
                               history_path=str(work / "h.sqlite"))
        cfg["policy"] = {"paths": [str(ROOT / "policies" / "default.yaml")]}
        cfg["predict"] = {"enabled": False}
        cfg["probes"] = {"enabled": False}
        cfg["rest"]["open_reads"] = True  # loopback lab: /metrics readable without a token
        cfg["cluster"] = {"endpoints": [self.etcd_endpoint], "name": "lab", "controller_id": cid,
                          "region": region, "lease_ttl_s": self.ttl_s}
        (work / "pfepo.yaml").write_text(yaml.safe_dump(cfg))
        with open(self.log(cid), "ab") as log:
            self.procs[cid] = subprocess.Popen([sys.executable, "-m", "pfepo.cli", "run", "--config", "pfepo.yaml"],
                                               cwd=work, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, cid: str) -> float:
        """kill -9; returns the wall-clock time of the kill."""
        t = time.time()
        self.procs[cid].send_signal(signal.SIGKILL)
        self.procs[cid].wait(5)
        return t

    def owner(self, switch: str) -> str | None:
        o = self.watcher.owners().get(switch)
        return o.owner if o else None

    def bridge_roles(self, switch: str) -> dict[str, str]:
        """controller id -> role OVSDB reports on ``switch``'s bridge (refreshed by ovs-vswitchd periodically)."""
        out = {}
        for uuid_ in vsctl("--bare", "get", "bridge", self.bridges[switch], "controller").strip("[]").split(", "):
            target = vsctl("--bare", "get", "controller", uuid_, "target").strip('"')
            role = vsctl("--bare", "get", "controller", uuid_, "role")
            out[next(c for c, (_, p, _) in self.ctl.items() if target.endswith(f":{p}"))] = role
        return out

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        for br in self.bridges.values():
            subprocess.run(["ovs-vsctl", "--if-exists", "del-br", br], check=False)


def _wait(pred, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def bench(kills: int, ttl_s: int) -> dict:
    from pfepo_lab.cluster.localetcd import LocalEtcd

    with tempfile.TemporaryDirectory(prefix="pfepo-handover-") as tmp, LocalEtcd() as etcd:
        lab = ClusterLab(etcd.endpoint, Path(tmp), ttl_s)
        try:
            lab.start()
            sw = lab.spec.region_switch(0)  # eu's switch: c-eu owns it while alive
            needle = f"role request MASTER to dpid={lab.dpids[sw]:#x}"
            times, lease, ours = [], [], []
            for _ in range(kills):
                _wait(lambda: lab.owner(sw) == "c-eu", 60, "c-eu owns the eu switch")
                _wait(lambda: logged_after(lab.log("c-eu"), needle, 0) is not None, 30, "c-eu MASTER")
                t_kill = lab.kill("c-eu")
                # etcd's part: the owner key goes with c-eu's lease (read every 10 ms: up to ~10 ms late)
                t_gone = _wait(lambda: lab.owner(sw) != "c-eu" and time.time(), ttl_s + 10, "c-eu's lease gone", 0.01)
                t = _wait(lambda t_kill=t_kill: logged_after(lab.log("c-us"), needle, t_kill), ttl_s + 10,
                          "c-us MASTER role request")
                times.append(t)
                lease.append(t_gone - t_kill)
                ours.append(t_kill + t - t_gone)  # c-us: notice, claim, role request (its log line)
                lab.start_controller("c-eu")
                # c-eu must log a fresh MASTER line after its restart before the next kill
                _wait(lambda t_kill=t_kill: logged_after(lab.log("c-eu"), needle, t_kill) is not None, 60,
                      "c-eu back as MASTER")
        finally:
            lab.stop()
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return {"kills": kills, "lease_ttl_s": ttl_s, "median_s": round(statistics.median(times), 3),
            "p99_s": round(p99, 3), "max_s": round(max(times), 3), "min_s": round(min(times), 3),
            "within_ttl_plus_1s": sum(t <= ttl_s + 1 for t in times), "load_avg_1m": round(os.getloadavg()[0], 2),
            # kill -> lease gone in etcd (TTL left at the kill + etcd's 500 ms expiry sweep), then gone -> the
            # peer's MASTER role request (our part: watch or member poll, one read, one transaction, the app)
            "lease_gone_s": {"median": round(statistics.median(lease), 3), "max": round(max(lease), 3)},
            "gone_to_master_s": {"median": round(statistics.median(ours), 3), "max": round(max(ours), 3)},
            "all_s": [round(t, 3) for t in times]}


def story(ttl_s: int = 3, say=print) -> dict:
    """The demo's optional step (``make demo DEMO_KILL_CONTROLLER=1``): one kill -9, told as it happens.

    Two controllers share the demo topology's switches (each bridge connected to both); c-eu, MASTER of
    region eu's switches, is killed with SIGKILL; c-us takes MASTER of them after the lease expires, the
    groups OVS holds on every bridge are the same before and after (the switches kept forwarding), and
    c-eu, restarted, takes its region back. Returns the figures it printed."""
    from pfepo_lab.cluster.localetcd import LocalEtcd

    with tempfile.TemporaryDirectory(prefix="pfepo-demo-kill-") as tmp, LocalEtcd() as etcd:
        lab = ClusterLab(etcd.endpoint, Path(tmp), ttl_s)
        try:
            say(f"cluster: local etcd {etcd.endpoint}, controllers c-eu and c-us (lease TTL {ttl_s} s), "
                f"{len(lab.bridges)} OVS bridges each connected to both")
            lab.start()
            sw = lab.spec.region_switch(0)
            needle = f"role request MASTER to dpid={lab.dpids[sw]:#x}"
            _wait(lambda: lab.owner(sw) == "c-eu" and logged_after(lab.log("c-eu"), needle, 0) is not None, 60,
                  "c-eu MASTER of the eu switch")
            _wait(lambda: all(lab.owner(n) for n in lab.names), 30, "an owner for every switch")
            say("owners: " + ", ".join(f"{n} -> {lab.owner(n)}" for n in lab.names))
            before = {n: dump_groups(br) for n, br in lab.bridges.items()}
            t_kill = lab.kill("c-eu")
            say("kill -9 c-eu")
            t = _wait(lambda: logged_after(lab.log("c-us"), needle, t_kill), ttl_s + 10, "c-us MASTER role request")
            say(f"c-us MASTER of {sw} after {t:.2f} s (lease TTL {ttl_s} s; target TTL + 1 s)")
            say("owners: " + ", ".join(f"{n} -> {lab.owner(n)}" for n in lab.names))
            same = all(dump_groups(br) == before[n] for n, br in lab.bridges.items())
            say("groups on every bridge unchanged through the handover: " + ("yes" if same else "NO"))
            lab.start_controller("c-eu")
            _wait(lambda: lab.owner(sw) == "c-eu" and logged_after(lab.log("c-eu"), needle, t_kill) is not None,
                  60, "c-eu back as MASTER")
            say(f"c-eu restarted: MASTER of {sw} again (fail-back)")
        finally:
            lab.stop()
    return {"handover_s": round(t, 3), "lease_ttl_s": ttl_s, "groups_unchanged": same}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--ttl", type=int, default=3, help="lease TTL in seconds")
    ap.add_argument("--story", action="store_true", help="one kill -9 told step by step (the demo's optional step)")
    args = ap.parse_args(argv)
    if args.story:
        return 0 if story(args.ttl)["groups_unchanged"] else 1
    print(json.dumps(bench(args.kills, args.ttl), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
