"""``pfepo demo``: the whole loop on a real (Mininet + userspace OVS) multi-region network.

Builds the topology, starts the daemon as a separate process, drives client load at the service VIP,
changes the weights once through the REST API, shows a live table and a final summary comparing the
measured split with the weights. Needs root and Open vSwitch (``make demo`` sets both up).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on a Mininet multi-region network (root)",
                       description=__doc__)
    p.add_argument("--phase-s", type=float, default=15.0, help="seconds per weight phase (default 15)")
    p.add_argument("--concurrency", type=int, default=6, help="concurrent requests per client (default 6)")
    p.add_argument("--workdir", help="keep logs, config and history here (default: a temp dir)")
    p.add_argument("--json", metavar="OUT", help="write the summary as JSON")
    p.set_defaults(func=_demo)


def _region_rates(lab) -> dict[str, tuple[float, float]]:
    """(to-region, from-region) bit rates per region measured on the core switch's uplink ports."""
    sw = next(s for s in lab.api.get("/api/v1/switches").json()["switches"] if s["name"] == lab.spec.core())
    out = {}
    for i, r in enumerate(lab.spec.regions):
        rates = (sw["ports"].get(str(i + 1)) or {}).get("rates") or {}
        out[r] = (rates.get("tx_bps", 0.0), rates.get("rx_bps", 0.0))
    return out


def _print_row(t: float, lab, weights: dict[str, int]) -> None:
    rates = _region_rates(lab)
    total = sum(a + b for a, b in rates.values()) or 1.0
    cells = []
    for r in lab.spec.regions:
        tx, rx = rates[r]
        cells.append(f"{r} w={weights.get(r, 0):2d} share={100 * (tx + rx) / total:5.1f}% "
                     f"rx={rx / 1e6:6.2f} tx={tx / 1e6:5.2f}")
    print(f"t={t:5.1f}s | " + " | ".join(cells), flush=True)


def _shares(log_path: Path, t0: float, t1: float, regions) -> tuple[dict[str, float], int, int]:
    counts = {r: 0 for r in regions}
    failed = total = 0
    for line in log_path.read_text().splitlines():
        rec = json.loads(line)
        if not (t0 <= rec["ts"] < t1):
            continue
        total += 1
        if rec["server"] is None:
            failed += 1
        else:
            counts[rec["server"].rsplit("-", 1)[0]] += 1
    ok = total - failed
    return {r: (n / ok if ok else 0.0) for r, n in counts.items()}, total, failed


def _demo(args) -> int:
    from mininet_topologies.lab import Lab, check_environment

    try:
        check_environment()
    except RuntimeError as exc:
        print(f"pfepo demo: {exc}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pfepo-demo-"))
    started = time.monotonic()
    print(f"PF-EPO demo: workdir {workdir}")
    print("building 3-region Mininet topology (userspace OVS) and starting the daemon ...", flush=True)
    lab = Lab(workdir)
    phases = []
    try:
        lab.start()
        print(f"ready in {time.monotonic() - started:.1f}s: 4 switches connected, 6 servers, VIP {lab.spec.vip}:80")
        print("columns: weight (of 64 hash slots), share of bytes on the core uplinks, rx/tx Mbit/s\n")
        client_log = workdir / "requests.jsonl"
        total_s = 2 * args.phase_s + 2
        for c in ("c1", "c2"):
            lab.net.start_client(c, ["--url", f"http://{lab.spec.vip}/blob?size=200000", "--duration",
                                     str(total_s), "--concurrency", str(args.concurrency), "--log", str(client_log)])
        plan = [({"eu": 50, "us": 30, "ap": 20}, "initial weights from configs"),
                ({"eu": 10, "us": 30, "ap": 60}, "operator override via PUT /api/v1/services/web/weights")]
        t_start = time.time()
        for i, (weights, why) in enumerate(plan):
            if i > 0:
                r = lab.set_weights(weights)
                print(f"\n>>> {why}: {weights} -> HTTP {r.status_code}\n", flush=True)
            p0 = time.time()
            while time.time() - p0 < args.phase_s:
                time.sleep(1.0)
                _print_row(time.time() - t_start, lab, lab.service()["bucket_weights"])
            phases.append({"weights": weights, "bucket_weights": lab.service()["bucket_weights"],
                           "t0": p0 + 2.0, "t1": time.time()})  # skip 2 s while the change settles
        time.sleep(2.5)
        print("\nsummary (requests answered per region vs weights):")
        summary = {"workdir": str(workdir), "phases": []}
        for ph in phases:
            shares, total, failed = _shares(client_log, ph["t0"], ph["t1"], lab.spec.regions)
            want = {r: w / sum(ph["weights"].values()) for r, w in ph["weights"].items()}
            print(f"  weights {ph['weights']}: {total} requests, {failed} failed")
            for r in lab.spec.regions:
                print(f"    {r}: weight {100 * want[r]:5.1f}%  measured {100 * shares[r]:5.1f}%")
            summary["phases"].append({"weights": ph["weights"], "bucket_weights": ph["bucket_weights"],
                                      "requests": total, "failed": failed, "measured_share": shares})
        summary["duration_s"] = round(time.monotonic() - started, 1)
        print(f"\ndemo finished in {summary['duration_s']}s; daemon log: {workdir}/daemon.log")
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
        return 0
    finally:
        lab.stop()
