"""The service each region's servers run: tells who answered, and serves blobs for throughput.

GET /        -> {"server": NAME}
GET /blob?size=N -> N bytes (N <= 64 MiB)
Run: python -m mininet_topologies.httpserver --name eu-1 --port 80
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_CHUNK = b"x" * 65536


def make_handler(name: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: each request is a new flow

        def do_GET(self):  # noqa: N802 - http.server API
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
            body = json.dumps({"server": name}).encode()
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
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args()
    ThreadingHTTPServer.request_queue_size = 256  # the default backlog of 5 drops SYNs under load
    srv = ThreadingHTTPServer((args.bind, args.port), make_handler(args.name))
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
