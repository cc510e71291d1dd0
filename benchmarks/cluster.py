"""Cluster benchmark (issue 15): kill -9 handover time and policy propagation time, real processes.

Handover: ``pfepo_lab.cluster.handover.bench`` (two `pfepo run` controllers on real OVS bridges, the eu
switch's MASTER killed with -9 ``--kills`` times; time to the peer's MASTER role request, from its log).
Propagation: the same two controllers (no switches needed); each of ``--revisions`` policy revisions is
stored in etcd (what `pfepo policy apply` does after validating) and timed until EVERY controller's
/metrics reports it as the revision in force (polled every 5 ms, so the figure includes up to 5 ms of
polling). ``--kills 0`` measures propagation only (etcd, no OVS). ``--scaleout N``: the scale-out bench (fake switches
shared by 4 controllers by role; ``python -m pfepo_lab.cluster.scaleout`` has every option).
Handover needs OVS and etcd; run under the lock:
``flock /tmp/pfepo-ovs.lock .venv/bin/python benchmarks/cluster.py --kills 20 --revisions 20``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pfepo_lab.cluster.handover import ClusterLab, _wait, bench  # noqa: E402
from pfepo_lab.cluster.localetcd import LocalEtcd  # noqa: E402


def _revision(url: str) -> int:
    """The policy revision a controller reports in force (-2: not answering yet)."""
    try:
        text = httpx.get(url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return -2
    m = re.search(r"^pfepo_cluster_policy_revision (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else -1


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def propagation(revisions: int, ttl_s: int = 3) -> dict:
    base = (ROOT / "policies" / "default.yaml").read_text()
    with tempfile.TemporaryDirectory(prefix="pfepo-propagation-") as tmp, LocalEtcd() as etcd:
        lab = ClusterLab(etcd.endpoint, Path(tmp), ttl_s)
        try:
            for cid in lab.ctl:  # controllers only: propagation does not involve switches (no OVS needed)
                lab.start_controller(cid)
            urls = [f"http://127.0.0.1:{rest}" for _, _, rest in lab.ctl.values()]
            _wait(lambda: all(_revision(u) >= 0 for u in urls), 60, "both controllers serve /metrics")
            times = []
            for i in range(revisions):
                text = base.replace("thresholds: {warn: 0.2, act: 0.4}", f"thresholds: {{warn: 0.2, act: 0.{4 + i % 5}}}")
                t0 = time.monotonic()
                rev = lab.watcher.put_policy({"000-default.yaml": text})
                _wait(lambda rev=rev: all(_revision(u) == rev for u in urls), 10, f"revision {rev} everywhere", 0.005)
                times.append(time.monotonic() - t0)
        finally:
            lab.stop()
    return {"revisions": revisions, "controllers": 2, "median_ms": round(statistics.median(times) * 1000, 1),
            "p99_ms": round(_pct(times, 0.99) * 1000, 1), "max_ms": round(max(times) * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--revisions", type=int, default=20)
    ap.add_argument("--ttl", type=int, default=3, help="lease TTL in seconds")
    ap.add_argument("--scaleout", type=int, default=0, metavar="N",
                    help="also: N fake switches x 48 ports at 1 s on 4 controllers (pfepo_lab/cluster/scaleout.py; "
                    "etcd only, CPU-heavy)")
    args = ap.parse_args(argv)
    out = {"propagation": propagation(args.revisions, args.ttl)} if args.revisions else {}
    if args.kills:
        out["handover"] = bench(args.kills, args.ttl)
    if args.scaleout:
        import asyncio

        from pfepo_lab.cluster.scaleout import run_point

        out["scaleout"] = asyncio.run(run_point(args.scaleout, 48, 1.0, 4, window=30.0, warmup=5.0, ttl_s=30))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
