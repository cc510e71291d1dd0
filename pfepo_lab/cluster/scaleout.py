"""Scale-out bench (issue 15 item 5): N fake switches x P ports shared by K `pfepo run` controllers via etcd.

Every fake switch connects to every controller (as OVS does with several ``set-controller`` targets), the
controllers share the switches by OpenFlow role (etcd owners, ``pfepo/cluster``), and each controller
polls, reads back and reconciles only the switches it masters. The switches and the single-process
measurement are issue 14's (``pfepo_lab/bench/_fakeswitches.py``, ``pfepo_lab/bench/controller.py``);
what this module adds is a fake switch with one connection per controller (``_Conn``: its siblings share
the switch's groups, meters, flows and port states; each remembers the role its controller asked for,
and, like OVS, a switch demotes the previous MASTER when another connection becomes MASTER and sends
packet-ins only to MASTER/EQUAL connections; a MASTER/SLAVE request with a generation id older than the
last one it accepted is refused as stale, as OpenFlow 1.3 specifies and OVS does, see
``tests/cluster/test_roles_ovs.py``).

Per K: a steady window after every switch was polled twice, then per controller its CPU, RSS, how many
switches it masters, the port-stats polls it sent (and how many of them to a switch it did not master:
must be 0), history samples written and dropped; overall, polls kept (stored / expected samples, as the
single-process bench) and the poll interval per switch. CPU-only; etcd is a throw-away ``LocalEtcd``.

``python -m pfepo_lab.cluster.scaleout --switches 1000 --controllers 1,4`` (also ``benchmarks/cluster.py
--scaleout``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from os_ken.ofproto import ofproto_v1_3 as ofp

from pfepo_lab.bench._fakeswitches import Fabric, FakeSwitch, _msg, intervals
from pfepo_lab.bench._point import bench_point
from pfepo_lab.bench.controller import (
    CLIENT_DPID,
    PORT_METRICS,
    REPO,
    Daemon,
    _wait,
    build_fabric,
    free_port,
    make_config,
    metric_value,
    other_samples,
    pct,
)
from pfepo_lab.cluster.localetcd import LocalEtcd


@dataclass
class _Conn(FakeSwitch):
    """One switch's connection to one controller; ``siblings`` are all of that switch's connections."""

    ctl: int = 0
    role: int = ofp.OFPCR_ROLE_EQUAL
    slave_polls: int = 0  # port-stats requests received while this connection was SLAVE (must stay 0)
    siblings: list = field(default_factory=list)

    generation: list = field(default_factory=lambda: [None])  # shared by the siblings: the switch's

    def _handle(self, mtype: int, xid: int, body: bytes) -> None:
        if mtype == ofp.OFPT_ROLE_REQUEST and len(body) >= 16:
            role, gen = struct.unpack_from(ofp.OFP_ROLE_REQUEST_PACK_STR, body)
            if role in (ofp.OFPCR_ROLE_MASTER, ofp.OFPCR_ROLE_SLAVE):  # OF 1.3 6.3.6: older generation = stale
                seen = self.generation[0]
                if seen is not None and ((gen - seen) & 0xFFFF_FFFF_FFFF_FFFF) >= 1 << 63:
                    self.send(_msg(ofp.OFPT_ERROR, xid, struct.pack(ofp.OFP_ERROR_MSG_PACK_STR,
                                                                    ofp.OFPET_ROLE_REQUEST_FAILED,
                                                                    ofp.OFPRRFC_STALE) + body[:64]))
                    return
                self.generation[0] = gen
            if role == ofp.OFPCR_ROLE_MASTER:  # OVS: the previous MASTER becomes SLAVE
                for s in self.siblings:
                    if s is not self and s.role == ofp.OFPCR_ROLE_MASTER:
                        s.role = ofp.OFPCR_ROLE_SLAVE
            if role != ofp.OFPCR_ROLE_NOCHANGE:
                self.role = role
        elif (mtype == ofp.OFPT_MULTIPART_REQUEST and self.role == ofp.OFPCR_ROLE_SLAVE and len(body) >= 2
              and struct.unpack_from("!H", body)[0] == ofp.OFPMP_PORT_STATS):
            self.slave_polls += 1
        super()._handle(mtype, xid, body)

    def packet_in(self, in_port: int, data: bytes) -> None:
        for s in self.siblings:
            if s.role != ofp.OFPCR_ROLE_SLAVE:
                FakeSwitch.packet_in(s, in_port, data)


def shared_fabric(n: int, ports: int, controllers: int) -> tuple[Fabric, dict[int, list[_Conn]]]:
    """The single-process bench's switches and links, each switch with one connection per controller."""
    fab = build_fabric(n, ports)  # same dpids and links; its switches are replaced by connection groups
    conns: dict[int, list[_Conn]] = {}
    for dpid in list(fab.switches):
        group = [_Conn(dpid, fab, ports, ctl=k) for k in range(controllers)]
        first = group[0]
        for c in group:
            c.siblings = group
            c.groups, c.meters, c.flows, c.port_down = first.groups, first.meters, first.flows, first.port_down
            c.generation = first.generation
            c._t0 = first._t0  # one set of counters, whoever reads them
        fab.switches[dpid] = first  # probes are looped back through it (to its MASTER/EQUAL connections)
        conns[dpid] = group
    return fab, conns


def cluster_config(n: int, ports: int, interval: float, tmp: Path, k: int, controllers: int, etcd: str,
                   ttl_s: int) -> dict:
    cfg = make_config(n, ports, interval, tmp, REPO, free_port(), free_port())
    cfg["rest"]["tokens"] = [{"name": "bench", "role": "admin", "token": secrets.token_hex(24)}]
    if controllers > 1:  # no region: the switches are spread by rendezvous hashing over the live controllers
        cfg["cluster"] = {"endpoints": [etcd], "name": "scale", "controller_id": f"c{k}", "lease_ttl_s": ttl_s}
    return cfg


async def run_point(n: int, ports: int, interval: float, controllers: int, window: float, warmup: float,
                    ttl_s: int = 5, keep: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"pfepo-scaleout-{n}x{controllers}-"))
    point: dict = {"switches": n, "ports": ports, "interval_s": interval, "controllers": controllers,
                   "window_s": window}
    daemons: list[Daemon] = []
    clients: list[httpx.AsyncClient] = []
    fab, conns = shared_fabric(n, ports, controllers)
    etcd = LocalEtcd(str(tmp)) if controllers > 1 else None  # its data dir: tmp/data
    async with bench_point(point, tmp, keep) as stack:
        stack.push_async_callback(_teardown, clients, fab, daemons, etcd)
        if etcd is not None:
            etcd.start()
        cfgs = []
        for k in range(controllers):
            d = tmp / f"c{k}"
            d.mkdir()
            cfg = cluster_config(n, ports, interval, d, k, controllers, etcd.endpoint if etcd else "", ttl_s)
            (d / "pfepo.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            cfgs.append(cfg)
            daemons.append(Daemon(d / "pfepo.yaml", d, None))
            clients.append(httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{cfg['rest']['port']}", timeout=60.0,  # overloaded: slow, not dead
                headers={"Authorization": f"Bearer {cfg['rest']['tokens'][0]['token']}"}))

        async def rest_up():
            for d, c in zip(daemons, clients, strict=True):
                if d.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited ({d.proc.returncode}); see {d.log_path}")
                try:
                    if (await c.get("/api/v1/health")).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
            return True

        await _wait(rest_up, 120, what="every controller's REST API")
        t_connect = time.monotonic()
        for group in conns.values():  # staggered, like a fleet coming up
            for c in group:
                fab.tasks.append(asyncio.create_task(c.run("127.0.0.1", cfgs[c.ctl]["openflow"]["listen_port"])))
            await asyncio.sleep(1.0 / 200)
        await _wait(lambda: _true(all(c.connected.is_set() for g in conns.values() for c in g)), 180,
                    what="every connection's features request")
        c0 = conns[CLIENT_DPID][0]

        settled_since: list[float] = []

        def one_poller_each() -> bool:
            """Every switch polled within the last two intervals, by one controller only: the start-up
            rebalance has handed each switch to its master (under load it can still be moving switches
            after every switch has been polled twice; measuring then counts a handover, not the steady state)."""
            since = time.perf_counter() - 2 * interval
            return all(len({c.ctl for c in g if c.poll_times and c.poll_times[-1] >= since}) == 1
                       for g in conns.values())

        async def ready():
            if any(d.proc.poll() is not None for d in daemons):
                raise RuntimeError(f"a daemon exited; see {tmp}")
            if not (all(c0.bucket_weight(p) for p in (1, 2, 3))
                    and all(sum(c.stats_replies for c in g) >= 2 for g in conns.values()) and one_poller_each()):
                settled_since.clear()
                return False
            if not settled_since:
                settled_since.append(time.monotonic())
            return time.monotonic() - settled_since[0] >= ttl_s  # three rebalance periods (lease_ttl_s / 3 each)

        try:  # an overloaded machine may never get there: measure anyway, and say so
            await _wait(ready, 120 + n * 0.2,
                        what="groups on c0, two polls of every switch, each by one controller for lease_ttl_s")
            point["ready"] = True
        except TimeoutError:
            point["ready"] = False
        point["ready_s"] = round(time.monotonic() - t_connect, 1)
        await asyncio.sleep(warmup)

        m0 = [r.text for r in await asyncio.gather(*(c.get("/metrics") for c in clients))]
        cpu0, t0, wall0 = [d.cpu_s() for d in daemons], time.perf_counter(), time.time()
        me0 = _self_cpu()
        slave0 = [sum(c.slave_polls for g in conns.values() for c in g if c.ctl == k) for k in range(controllers)]
        await asyncio.sleep(window)
        t1, wall1 = time.perf_counter(), time.time()
        cpu1, me1 = [d.cpu_s() for d in daemons], _self_cpu()
        m1 = [r.text for r in await asyncio.gather(*(c.get("/metrics") for c in clients))]
        await asyncio.sleep(3)  # the writers catch up on the window's rows

        per = []
        stored_total = dropped_total = 0
        for k, d in enumerate(daemons):
            masters = int(metric_value(m1[k], "pfepo_cluster_switches", '{role="master"}')) if controllers > 1 else n
            written = (metric_value(m1[k], "pfepo_history_samples", '{kind="written"}')
                       - metric_value(m0[k], "pfepo_history_samples", '{kind="written"}'))
            dropped = int(metric_value(m1[k], "pfepo_history_samples", '{kind="dropped"}')
                          - metric_value(m0[k], "pfepo_history_samples", '{kind="dropped"}'))
            stored = max(0, round(written - other_samples(tmp / f"c{k}" / "history.sqlite", wall0, wall1)))
            polls = sum(sum(1 for t in c.poll_times if t0 <= t < t1) for g in conns.values() for c in g if c.ctl == k)
            polled = sum(1 for g in conns.values() for c in g if c.ctl == k and any(t0 <= t < t1 for t in c.poll_times))
            slave = sum(c.slave_polls for g in conns.values() for c in g if c.ctl == k) - slave0[k]
            stored_total += stored
            dropped_total += dropped
            per.append({"controller": f"c{k}", "masters": masters, "switches_polled": polled,
                        "port_stats_polls": polls, "polls_as_slave": slave,
                        "cpu_pct": round(100 * (cpu1[k] - cpu0[k]) / (t1 - t0), 1),
                        "rss_mb": round(d.status("VmRSS") / 1024, 1), "threads": d.status("Threads"),
                        "samples_stored": stored, "samples_dropped": dropped})
        point["per_controller"] = per
        point["lease_lost_total"] = sum(int(metric_value(m, "pfepo_cluster_lease_lost_total")) for m in m1)
        pollers = [sum(1 for c in g if any(t0 <= t < t1 for t in c.poll_times)) for g in conns.values()]
        point["switches_polled_by_several"] = sum(1 for p in pollers if p > 1)
        point["switches_not_polled"] = sum(1 for p in pollers if p == 0)
        gaps = [x for g in conns.values()
                for x in intervals(sorted(t for c in g for t in c.poll_times), t0, t1)]
        point["poll_interval_p50_s"] = round(pct(gaps, 0.5) or 0, 3)
        point["poll_interval_p99_s"] = round(pct(gaps, 0.99) or 0, 3)
        expected = n * ports * len(PORT_METRICS) * (t1 - t0) / interval
        point["samples_expected"] = round(expected)
        point["samples_stored"] = stored_total
        point["samples_dropped"] = dropped_total
        point["polls_kept"] = round(min(1.0, stored_total / expected), 3) if expected else 0.0
        point["cpu_pct_total"] = round(sum(p["cpu_pct"] for p in per), 1)
        point["fake_switches_cpu_pct"] = round(100 * (me1 - me0) / (t1 - t0), 1)
        point["load_avg_1m"] = round(os.getloadavg()[0], 2)
        return point
    return point


async def _teardown(clients: list[httpx.AsyncClient], fab: Fabric, daemons: list[Daemon], etcd) -> None:
    for c in clients:
        await c.aclose()
    await fab.close()
    for d in daemons:
        d.stop()
    if etcd is not None:
        etcd.stop()


async def _true(v: bool) -> bool:
    return v


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--switches", type=int, default=1000)
    ap.add_argument("--ports", type=int, default=48)
    ap.add_argument("--interval", type=float, default=1.0, help="poll interval s")
    ap.add_argument("--controllers", default="4", help="comma-separated controller counts (1: no cluster)")
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--ttl", type=int, default=5, help="lease TTL s")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (configs, logs, history)")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    points = []
    for k in [int(x) for x in args.controllers.split(",")]:
        print(f"[{time.strftime('%H:%M:%S')}] {args.switches} switches on {k} controller(s) ...", file=sys.stderr,
              flush=True)
        points.append(asyncio.run(run_point(args.switches, args.ports, args.interval, k, args.window, args.warmup,
                                            args.ttl, args.keep)))
        print(json.dumps(points[-1]), file=sys.stderr, flush=True)
    out = {"points": points, "command": " ".join(sys.argv), "cpus": os.cpu_count(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 1 if any("error" in p for p in points) else 0


if __name__ == "__main__":
    sys.exit(main())
