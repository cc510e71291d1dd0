"""The service each region's servers run: tells who answered, and serves blobs for throughput.

GET /        -> {"server": NAME}
GET /health  -> {"ok": true} (what health checks ask; the same process, so it fails with the service)
GET /blob?size=N -> N bytes (N <= 64 MiB)

HTTP/1.1 with keep-alive (an HTTP/1.0 request still gets one response per connection). ``--control
FILE`` names a JSON file the server re-reads when it changes, to play a gray failure (pfepo impair):
``{"mode": "ok"}``, ``{"mode": "hang"}`` (connections are accepted, requests never answered) or
``{"mode": "brownout", "error_pct": 30}`` (that share of requests gets 503). A crash (refused/reset) is
played outside the process, with iptables in the host (pfepo_lab.impair.impair.server_crash).
``"drain": true`` (beside any mode) is what a drain hook sets: every response carries ``Connection:
close`` and the server closes the connection after it, so keep-alive clients reconnect -- through the
load balancer, to the new split -- instead of being reset later by an eviction.
Run: python -m mininet_topologies.httpserver --name eu-1 --port 80 [--port 8080] [--control FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_CHUNK = b"x" * 65536


class Control:
    """The gray-failure mode from the control file, re-read when its mtime changes (one ``stat`` per call:
    a request that comes right after a change must see it; a 50 ms rate limit once let a request that
    arrived just after "ok" hang and be closed unanswered)."""

    def __init__(self, path: str | None):
        self.path = path
        self._mtime = None
        self.mode, self.error_pct = "ok", 0.0
        self.drain = False
        self.changed = threading.Condition()

    def draining(self) -> bool:
        self.current()
        return self.drain

    def current(self) -> tuple[str, float]:
        if self.path:
            try:
                mtime = os.stat(self.path).st_mtime_ns
                if mtime != self._mtime:
                    self._mtime = mtime
                    with open(self.path) as f:
                        doc = json.load(f)
                    with self.changed:
                        self.mode, self.error_pct = str(doc.get("mode", "ok")), float(doc.get("error_pct", 0))
                        self.drain = bool(doc.get("drain", False))
                        self.changed.notify_all()
            except FileNotFoundError:
                self.mode, self.error_pct, self.drain = "ok", 0.0, False
            except (OSError, ValueError):
                pass  # a half-written file: keep the last mode
        return self.mode, self.error_pct


def make_handler(name: str, control: Control | None = None):
    control = control or Control(None)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive for 1.1 clients; 1.0 requests still close

        def _hang(self) -> None:
            """Accepted and read, never answered: hold the connection until the mode changes."""
            while control.current()[0] == "hang":
                time.sleep(0.1)
            self.close_connection = True

        def end_headers(self):
            if control.draining():  # drain hook: ask the client to reconnect (through the new split)
                self.send_header("Connection", "close")
                self.close_connection = True
            super().end_headers()

        def do_GET(self):  # noqa: N802 - http.server API
            mode, error_pct = control.current()
            if mode == "hang":
                self._hang()
                return
            if mode == "brownout" and random.random() * 100 < error_pct:
                body = b'{"error": "brown-out"}'
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Server", name)
                self.end_headers()
                self.wfile.write(body)
                return
            url = urlparse(self.path)
            if url.path == "/blob":
                size = min(int(parse_qs(url.query).get("size", ["0"])[0]), 64 << 20)
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.send_header("X-Server", name)
                self.end_headers()
                left = size
                while left > 0:
                    n = min(left, len(_CHUNK))
                    self.wfile.write(_CHUNK[:n])
                    left -= n
                return
            body = json.dumps({"ok": True} if url.path == "/health" else {"server": name}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Server", name)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, action="append", help="listen port (repeatable; default 80)")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--control", help="gray-failure control file (JSON, re-read on change)")
    args = ap.parse_args()
    ThreadingHTTPServer.request_queue_size = 256  # the default backlog of 5 drops SYNs under load
    handler = make_handler(args.name, Control(args.control))
    servers = []
    for port in args.port or [80]:
        srv = ThreadingHTTPServer((args.bind, port), handler)
        srv.daemon_threads = True
        servers.append(srv)
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
