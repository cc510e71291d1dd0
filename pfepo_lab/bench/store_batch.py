"""``pfepo bench store-batch``: port-rate batches into SQLite and DuckDB, long rows vs columnar/wide.

What the history path costs per second of a fleet's port rates (switches x ports x 7 metrics at 1 s),
measured on the store alone: the old way (a ``Sample`` per value, ``write``) and the batch way
(``write_batches``: SQLite wide rows, one per port, behind a view; DuckDB one columnar append). CPU
seconds per second of data is what the daemon would give up to history on its shared GIL.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from pfepo.telemetry.rates import PORT_METRICS
from pfepo.telemetry.samples import SampleBatch, expand


def fleet_batches(switches: int, ports: int, seconds: int, t0: float = 1.8e9) -> list[list[SampleBatch]]:
    """One list of per-switch batches per second."""
    rng = np.random.default_rng(1)
    tags = [tuple((("kind", "port"), ("port", str(p)), ("switch", f"s{s}")) for p in range(1, ports + 1))
            for s in range(switches)]
    subjects = [tuple(f"s{s}:{p}" for p in range(1, ports + 1)) for s in range(switches)]
    return [[SampleBatch(t0 + t + s * 1e-4, subjects[s], tags[s], PORT_METRICS,
                         rng.random((ports, len(PORT_METRICS))) * 1e6) for s in range(switches)]
            for t in range(seconds)]


def _measure(store, seconds_of_data: list[list[SampleBatch]], columnar: bool) -> dict:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    n = 0
    for sec in seconds_of_data:
        for i in range(0, len(sec), 15):  # the writer's batch_size of 5000 samples is ~15 switch replies
            chunk = sec[i:i + 15]
            n += sum(len(b) for b in chunk)
            if columnar:
                store.write_batches(chunk)
            else:
                store.write(expand(chunk))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"samples": n, "samples_per_s": round(n / wall), "cpu_s_per_data_s": round(cpu / len(seconds_of_data), 3),
            "wall_s": round(wall, 2)}


def run(switches: int, ports: int, seconds: int) -> list[dict]:
    from pfepo.store.duckdb import DuckDBStore
    from pfepo.store.sqlite import SQLiteStore

    data = fleet_batches(switches, ports, seconds)
    out = []
    with tempfile.TemporaryDirectory(prefix="pfepo-store-batch-") as tmp:
        for name, cls, columnar in (("sqlite long rows (Sample per value)", SQLiteStore, False),
                                    ("sqlite wide rows (write_batches)", SQLiteStore, True),
                                    ("duckdb long rows (Sample per value)", DuckDBStore, False),
                                    ("duckdb columnar (write_batches)", DuckDBStore, True)):
            path = Path(tmp) / f"{len(out)}.db"
            store = cls(path)
            try:
                r = _measure(store, data, columnar)
                t = time.perf_counter()
                got = len(store.last("s7:3", "rx_bps", n=100))
                r["last100_ms"] = round(1000 * (time.perf_counter() - t), 2)
                r["last100_rows"] = got
            finally:
                store.close()
            r["file_mb"] = round(sum(f.stat().st_size for f in Path(tmp).glob(f"{len(out)}.db*")) / 1e6, 1)
            r["store"] = name
            out.append(r)
    return out


def _handler(args) -> int:
    rows = run(args.switches, args.ports, args.seconds)
    print(f"{args.switches} switches x {args.ports} ports x {len(PORT_METRICS)} metrics, {args.seconds} s of data "
          f"(load {os.getloadavg()[0]:.2f})")
    for r in rows:
        print(f"{r['store']:40s} {r['samples_per_s']:>10,} samples/s  {r['cpu_s_per_data_s']:.3f} CPU s per s of data"
              f"  last-100 {r['last100_ms']} ms  {r['file_mb']} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"switches": args.switches, "ports": args.ports,
                                               "seconds": args.seconds, "results": rows}, indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser("store-batch", help="history cost of a fleet's port rates: SQLite/DuckDB, long vs batch",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("--switches", type=int, default=300)
    p.add_argument("--ports", type=int, default=48)
    p.add_argument("--seconds", type=int, default=5, help="seconds of data (default 5)")
    p.add_argument("--json", metavar="OUT")
    p.set_defaults(func=_handler)
