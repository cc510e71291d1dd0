"""Three regions, each with its own clients, client-side switch, servers and controller (issue 15 lab).

    eu clients -- cEU --(1)-- rEU -- eu-1, eu-2          every client-side switch splits the service
                  |  \\                                  over the three regions: its own region through
                (11) (12)                                port 1, the others through inter-region links
                  |     \\                               (port 10 + j leads to region j's client switch)
    us clients -- cUS --- cAP -- ap clients              each region switch rX has its servers on 2, 3
                  |        |
                 rUS      rAP

The inter-region links form a triangle, so the one-hop rule (pfepo.openflow.desired) is what keeps it
loop-free: traffic arriving on an inter-region port is delivered to the local region or dropped, and a
broadcast never crosses more than one link. Servers therefore get static neighbour entries for the
other regions' clients (their ARP requests do not cross regions).

``config(i)`` is controller i's daemon config: every controller describes every switch the same way
(its own client switch is its primary uplink switch, the others are ``cluster.ingress``), so a peer
that takes a switch over computes the same desired state for it. Userspace OVS, OpenFlow 1.3, every
switch connected to every controller, fail-mode secure. Built through Mininet's Python API only;
``stop()`` removes exactly what it created.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mininet_topologies.multiregion import del_bridges, remote_controller, run_load_client, stop_processes

REGIONS = ("eu", "us", "ap")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Regions3:
    regions: tuple[str, ...] = REGIONS
    servers_per_region: int = 2
    clients_per_region: int = 1
    prefix: str = "p3"
    vip: str = "10.0.100.1"
    vip_mac: str = "02:00:00:00:00:64"
    service_port: int = 80
    link_mbps: float = 100.0

    def client_switch(self, i: int) -> str:
        return f"{self.prefix}c{i + 1}"

    def region_switch(self, i: int) -> str:
        return f"{self.prefix}r{i + 1}"

    def dpid(self, name: str) -> int:
        kind, i = name[len(self.prefix)], int(name[len(self.prefix) + 1:]) - 1
        return (0x21 if kind == "c" else 0x11) + i

    def server(self, i: int, j: int) -> tuple[str, str, str]:
        return f"{self.regions[i]}-{j + 1}", f"10.0.{i + 1}.{j + 1}", f"00:00:00:00:{i + 1:02x}:{j + 1:02x}"

    def client(self, i: int, k: int) -> tuple[str, str, str]:
        return f"{self.regions[i]}c{k + 1}", f"10.0.{i + 11}.{k + 1}", f"00:00:00:00:{i + 0x11:02x}:{k + 1:02x}"

    @staticmethod
    def port_to(i: int, j: int) -> int:
        """Port of client switch i that leads to region j (1: its own region switch)."""
        return 1 if i == j else 10 + j

    def switches(self) -> list[str]:
        n = len(self.regions)
        return [self.client_switch(i) for i in range(n)] + [self.region_switch(i) for i in range(n)]

    def config(self, i: int, of_port: int = 6653, rest_port: int = 8080, state_dir: str = "var/state",
               history_path: str = "var/history.sqlite", etcd: str = "http://127.0.0.1:2379",
               cluster: str = "lab3", ttl_s: int = 3, capacity_mbps: dict[str, float] | None = None,
               demand_mbps: float | None = None) -> dict:
        """Controller ``i`` (region ``regions[i]``): daemon config as plain data."""
        n = len(self.regions)
        regions = [{
            "name": r, "switch": self.region_switch(j),
            "uplink": {"switch": self.client_switch(i), "port": self.port_to(i, j), "capacity_mbps": self.link_mbps},
            "endpoints": [{"name": name, "ip": ip, "mac": mac, "port": k + 2}
                          for k in range(self.servers_per_region) for name, ip, mac in [self.server(j, k)]],
        } for j, r in enumerate(self.regions)]
        cl = {
            "endpoints": [etcd], "name": cluster, "controller_id": f"c-{self.regions[i]}", "region": self.regions[i],
            "lease_ttl_s": ttl_s, "timeout_s": 1.0,
            "ingress": {self.client_switch(k): {r: self.port_to(k, j) for j, r in enumerate(self.regions)}
                        for k in range(n) if k != i},
            "switch_regions": {**{self.client_switch(k): r for k, r in enumerate(self.regions)},
                               **{self.region_switch(k): r for k, r in enumerate(self.regions)}},
            "inter_region_ports": {self.client_switch(k): [10 + j for j in range(n) if j != k] for k in range(n)},
        }
        if capacity_mbps:
            cl["capacity_mbps"] = capacity_mbps
        if demand_mbps:
            cl["demand_mbps"] = {"web": demand_mbps}
        return {
            "openflow": {"listen_host": "127.0.0.1", "listen_port": of_port},
            "rest": {"host": "127.0.0.1", "port": rest_port, "open_reads": True},
            "poll_interval_s": 1.0,
            "state_dir": state_dir,
            "history": {"backend": "sqlite", "path": history_path},
            "probes": {"enabled": False},
            "predict": {"enabled": False},
            "switches": [{"name": s, "dpid": self.dpid(s)} for s in self.switches()],
            "regions": regions,
            "services": [{"name": "web", "vip": self.vip, "vip_mac": self.vip_mac, "port": self.service_port,
                          "protocol": "tcp", "weights": {r: 1.0 for r in self.regions}, "priority": "high",
                          "application": "web", "sla": {"latency_ms": 200, "availability_pct": 99.9, "weight": 2.0}}],
            "cluster": cl,
        }


class Regions3Net:
    """Builds, runs and tears down the topology. Needs root, OVS running, Mininet installed."""

    def __init__(self, spec: Regions3 | None = None, controller_ports: list[int] | None = None,
                 workdir: str | None = None):
        self.spec = spec or Regions3()
        self.controller_ports = controller_ports or [6653]
        self.workdir = Path(workdir or f"/tmp/{self.spec.prefix}-topo-{os.getpid()}")
        self.net = None
        self._procs: list = []

    def build(self) -> None:
        from mininet.link import TCULink
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch

        setLogLevel("warning")
        s = self.spec
        self.workdir.mkdir(parents=True, exist_ok=True)
        net = Mininet(build=False, controller=None, autoSetMacs=False, cleanup=False, link=TCULink)
        self.net = net
        controller = remote_controller()
        for k, port in enumerate(self.controller_ports):
            net.addController(f"ctl{k}", controller=controller, ip="127.0.0.1", port=port)
        opts = {"cls": OVSSwitch, "datapath": "user", "protocols": "OpenFlow13", "failMode": "secure"}
        sw = {name: net.addSwitch(name, dpid=f"{s.dpid(name):016x}", **opts) for name in s.switches()}
        n = len(s.regions)
        for i in range(n):
            c, r = sw[s.client_switch(i)], sw[s.region_switch(i)]
            net.addLink(c, r, port1=1, port2=1)
            for j in range(s.servers_per_region):
                name, ip, mac = s.server(i, j)
                net.addLink(net.addHost(name, ip=f"{ip}/16", mac=mac), r, port2=j + 2)
            for k in range(s.clients_per_region):
                name, ip, mac = s.client(i, k)
                net.addLink(net.addHost(name, ip=f"{ip}/16", mac=mac), c, port2=21 + k)
        for i in range(n):
            for j in range(i + 1, n):
                net.addLink(sw[s.client_switch(i)], sw[s.client_switch(j)], port1=10 + j, port2=10 + i)
        net.build()

    def start(self) -> None:
        self.build()
        for h in self.net.hosts:
            h.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
        s = self.spec
        clients = [s.client(i, k) for i in range(len(s.regions)) for k in range(s.clients_per_region)]
        for i in range(len(s.regions)):
            for j in range(s.servers_per_region):
                h = self.host(s.server(i, j)[0])
                for _name, ip, mac in clients:  # ARP does not cross regions (one-hop rule)
                    h.cmd(f"ip neigh replace {ip} lladdr {mac} dev {h.defaultIntf().name} nud permanent")
                self.start_http(h.name)
        self.net.start()

    def host(self, name: str):
        return self.net.get(name)

    def start_http(self, name: str):
        h = self.host(name)
        log = open(self.workdir / f"{name}-http.log", "w")  # noqa: SIM115 - lives as long as the process
        p = h.popen([sys.executable, "-m", "mininet_topologies.httpserver", "--name", name,
                     "--port", str(self.spec.service_port)], stdout=log, stderr=log, cwd=str(ROOT))
        self._procs.append(p)
        return p

    def run_client(self, client: str, args: list[str], timeout: float = 60.0) -> dict:
        return run_load_client(self.host(client), args, timeout)

    def stop(self) -> None:
        stop_processes(self._procs)
        if self.net is not None:
            try:
                self.net.stop()
            finally:
                del_bridges(self.spec.switches())
            self.net = None


def wait_servers(net: Regions3Net, timeout: float = 10.0) -> None:
    s = net.spec
    deadline = time.monotonic() + timeout
    for i in range(len(s.regions)):
        for j in range(s.servers_per_region):
            name, ip, _ = s.server(i, j)
            while "server" not in net.host(name).cmd(f"curl -s -m 1 http://{ip}:{s.service_port}/"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"HTTP service on {name} did not come up")
                time.sleep(0.1)


class Controllers:
    """One ``pfepo run`` per region (processes we own: stopped by PID), configured by ``Regions3.config``.

    ``etcd[i]`` is controller i's etcd endpoint (a test may put a proxy in between to cut it off);
    ``extra`` is merged into every config (policy paths, signals token...)."""

    def __init__(self, spec: Regions3, workdir: Path, etcd: list[str], extra: dict | None = None, **config_kw):
        from pfepo_lab.bench.history import free_port

        self.spec = spec
        self.workdir = Path(workdir)
        self.etcd = etcd
        self.extra = extra or {}
        self.config_kw = config_kw
        n = len(spec.regions)
        self.of_ports = [free_port() for _ in range(n)]
        self.rest_ports = [free_port() for _ in range(n)]
        self.procs: dict[int, subprocess.Popen] = {}

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.rest_ports[i]}"

    def log(self, i: int) -> Path:
        return self.workdir / f"c-{self.spec.regions[i]}" / "daemon.log"

    def start(self, i: int) -> subprocess.Popen:
        import yaml

        work = self.workdir / f"c-{self.spec.regions[i]}"
        work.mkdir(parents=True, exist_ok=True)
        cfg = self.spec.config(i, of_port=self.of_ports[i], rest_port=self.rest_ports[i], state_dir=str(work / "state"),
                               history_path=str(work / "h.sqlite"), etcd=self.etcd[i], **self.config_kw)
        for k, v in self.extra.items():
            cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
        (work / "pfepo.yaml").write_text(yaml.safe_dump(cfg))
        with open(self.log(i), "ab") as log:
            p = subprocess.Popen([sys.executable, "-m", "pfepo.cli", "run", "--config", "pfepo.yaml"], cwd=work,
                                 stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                                             "OPENBLAS_NUM_THREADS": "1"})
        self.procs[i] = p
        return p

    def kill(self, i: int) -> float:
        """kill -9; returns the wall-clock time of the kill."""
        import signal

        t = time.time()
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(5)
        return t

    def stop(self) -> None:
        import signal

        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def group_weights(bridge: str, port_region: dict[int, str], group_id: int = 1) -> dict[str, int]:
    """Bucket weights of a SELECT group as OVS holds it, by region (from each bucket's watch_port)."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", bridge], capture_output=True, text=True,
                         check=True).stdout
    import re

    for line in out.splitlines():
        if f"group_id={group_id}," in line:
            out = {}
            for bucket in line.split("bucket=")[1:]:
                w, p = re.search(r"weight:(\d+)", bucket), re.search(r"watch_port:(\d+)", bucket)
                if w and p:
                    out[port_region[int(p.group(1))]] = int(w.group(1))
            if not out:
                raise ValueError(f"no weighted buckets in: {line}")
            return out
    return {}


def flow_packets(bridge: str, *needles: str) -> int:
    """Sum of n_packets over the flows whose dump-flows line contains every needle (e.g. "in_port=10,")."""
    import re

    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge], capture_output=True, text=True,
                         check=True).stdout
    return sum(int(m.group(1)) for line in out.splitlines() if all(n in line for n in needles)
               for m in [re.search(r"n_packets=(\d+)", line)] if m)
