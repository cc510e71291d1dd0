"""Load client run inside a Mininet client host: many short TCP requests, each a new flow.

Prints one JSON object: per-server counts, failures and latency percentiles. With --duration it keeps
going for that long (steady load); with --requests it stops after that many. With --keepalive N it
instead holds N long-lived HTTP/1.1 connections, each sending a request every --interval seconds for
--duration; a failed request on a live connection counts as failed (and the connection is reopened),
and ``moved`` counts connections answered by more than one server (a remapped connection).
Run: python -m mininet_topologies.client --url http://VIP/ --requests 600 --concurrency 20
     python -m mininet_topologies.client --url http://VIP/ --keepalive 50 --interval 0.2 --duration 60
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlparse


def error_name(exc: OSError) -> str:
    """``ConnectionResetError``, ``TimeoutError``, ...; a plain OSError with its errno (``OSError(EHOSTUNREACH)``:
    the VIP's address did not resolve)."""
    name = type(exc).__name__
    if type(exc) is OSError and exc.errno:
        name += f"({errno.errorcode.get(exc.errno, exc.errno)})"
    return name


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
        if not (head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")):
            server, err = None, "bad response: " + head[:40].decode(errors="replace")
        return server, time.monotonic() - t0, len(data), err
    except OSError as exc:
        return None, time.monotonic() - t0, 0, error_name(exc)


def _read_response(f) -> tuple[int, str | None, bool]:
    """One HTTP/1.1 response from a buffered socket file: (status, X-Server, server asked to close)."""
    status_line = f.readline()
    if not status_line:
        raise ConnectionResetError("connection closed by peer")
    status = int(status_line.split()[1])
    length, server, close = 0, None, False
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode(errors="replace").partition(":")
        if k.lower() == "content-length":
            length = int(v.strip())
        elif k.lower() == "x-server":
            server = v.strip()
        elif k.lower() == "connection":
            close = v.strip().lower() == "close"
    if length:
        f.read(length)
    return status, server, close


def keepalive(host: str, port: int, path: str, n: int, interval: float, duration: float, timeout: float,
              logf=None) -> dict:
    """``n`` long-lived connections, one request each every ``interval`` s (see module docstring)."""
    lock = threading.Lock()
    sent, failed, reconnects, closed = [0], [0], [0], [0]
    servers: dict[int | str, set[str]] = {}
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    stop_at = time.monotonic() + duration

    def conn_loop(k: int) -> None:
        sock = f = None
        gen = 0  # reconnects after ``Connection: close``: a new connection, not a remapped one
        while time.monotonic() < stop_at:
            t_next = time.monotonic() + interval
            ts, t0 = time.time(), time.monotonic()
            server, err, close = None, None, False
            try:
                if sock is None:
                    sock = socket.create_connection((host, port), timeout=timeout)
                    f = sock.makefile("rb")
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                status, server, close = _read_response(f)
                if status != 200:
                    err, server = f"status {status}", None
            except (OSError, ValueError, IndexError) as exc:
                err = error_name(exc)
            if (err is not None or close) and sock is not None:
                # A failure, or the server said ``Connection: close`` (e.g. a drain): as any HTTP/1.1
                # client, open a new connection for the next request (not a failure by itself).
                sock.close()
                sock = f = None
            with lock:
                sent[0] += 1
                if err is None:
                    counts[server] += 1
                    servers.setdefault(k if not gen else f"{k}.{gen}", set()).add(server)
                    closed[0] += close
                else:
                    failed[0] += 1
                    errors[err] += 1
                    reconnects[0] += 1
                if logf:
                    rec = {"ts": ts, "conn": k, "server": server, "latency_s": round(time.monotonic() - t0, 6)}
                    if err:
                        rec["error"] = err
                    if close:
                        rec["closed"] = True
                    logf.write(json.dumps(rec) + "\n")
            gen += close
            time.sleep(max(0.0, t_next - time.monotonic()))
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=conn_loop, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
        time.sleep(0.01)  # spread the connects a little
    for t in threads:
        t.join()
    return {"sent": sent[0], "failed": failed[0], "errors": dict(errors), "by_server": dict(counts),
            "connections": n, "closed_by_server": closed[0], "moved": sum(1 for s in servers.values() if len(s) > 1),
            "pinned_to": {str(k): sorted(s) for k, s in servers.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--requests", type=int, default=0, help="stop after this many (0: use --duration)")
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--log", help="append one JSON line per request here (ts, server, latency_s)")
    ap.add_argument("--keepalive", type=int, default=0, help="hold this many long-lived connections instead")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between requests per kept connection")
    args = ap.parse_args()
    u = urlparse(args.url)
    host, port, path = u.hostname, u.port or 80, (u.path or "/") + (f"?{u.query}" if u.query else "")
    if args.keepalive:
        logf = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115
        json.dump(keepalive(host, port, path, args.keepalive, args.interval, args.duration or 30.0,
                            args.timeout, logf), sys.stdout)
        sys.stdout.write("\n")
        return
    counts: Counter[str] = Counter()
    lat: list[float] = []
    lock = threading.Lock()
    sent = [0]
    failed = [0]
    errors: Counter[str] = Counter()
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
                    errors[err or "no server named"] += 1
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
        "sent": sent[0], "failed": failed[0], "errors": dict(errors), "by_server": dict(counts),
        "elapsed_s": round(elapsed, 3), "bytes": nbytes[0], "latency_p50_s": pct(0.5), "latency_p99_s": pct(0.99),
        "latency_mean_s": statistics.fmean(lat) if lat else None,
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
