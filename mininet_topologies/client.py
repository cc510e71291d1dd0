"""Load client run inside a Mininet client host: many short TCP requests, each a new flow.

Prints one JSON object: per-server counts, failures and latency percentiles. With --duration it keeps
going for that long (steady load); with --requests it stops after that many.
Run: python -m mininet_topologies.client --url http://VIP/ --requests 600 --concurrency 20
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlparse


def one_request(host: str, port: int, path: str, timeout: float) -> tuple[str | None, float, int, str | None]:
    """(server name or None on failure, latency s, bytes received, error)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = bytearray()
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, _ = bytes(data).partition(b"\r\n\r\n")
        server = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"x-server:"):
                server = line.split(b":", 1)[1].strip().decode()
        err = None
        if not head.startswith(b"HTTP/1.0 200"):
            server, err = None, "bad response: " + head[:40].decode(errors="replace")
        return server, time.monotonic() - t0, len(data), err
    except OSError as exc:
        return None, time.monotonic() - t0, 0, type(exc).__name__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--requests", type=int, default=0, help="stop after this many (0: use --duration)")
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--log", help="append one JSON line per request here (ts, server, latency_s)")
    args = ap.parse_args()
    u = urlparse(args.url)
    host, port, path = u.hostname, u.port or 80, (u.path or "/") + (f"?{u.query}" if u.query else "")
    counts: Counter[str] = Counter()
    lat: list[float] = []
    lock = threading.Lock()
    sent = [0]
    failed = [0]
    nbytes = [0]
    stop_at = time.monotonic() + args.duration if args.duration else None
    logf = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115

    def worker() -> None:
        while True:
            with lock:
                if args.requests and sent[0] >= args.requests:
                    return
                if stop_at and time.monotonic() >= stop_at:
                    return
                sent[0] += 1
            ts = time.time()
            server, dt, n, err = one_request(host, port, path, args.timeout)
            with lock:
                nbytes[0] += n
                if server is None:
                    failed[0] += 1
                else:
                    counts[server] += 1
                    lat.append(dt)
                if logf:
                    rec = {"ts": ts, "server": server, "latency_s": round(dt, 6)}
                    if err:
                        rec["error"] = err
                    logf.write(json.dumps(rec) + "\n")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    lat.sort()
    def pct(q):
        return (lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None)
    json.dump({
        "sent": sent[0], "failed": failed[0], "by_server": dict(counts), "elapsed_s": round(elapsed, 3),
        "bytes": nbytes[0], "latency_p50_s": pct(0.5), "latency_p99_s": pct(0.99),
        "latency_mean_s": statistics.fmean(lat) if lat else None,
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
