"""Shared fixtures: a small valid daemon config the unit tests build on, a real local HTTP
receiver (http.server on 127.0.0.1, free port, own thread) for executor, health and scrape tests, and
the Mininet `lab` of the OVS tests."""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mininet_topologies.multiregion import TopoSpec
from pfepo.config import PfepoConfig


@pytest.fixture
def cfg_dict(tmp_path) -> dict:
    spec = TopoSpec(weights={"eu": 50, "us": 30, "ap": 20})
    return copy.deepcopy(spec.config(rest_port=0, state_dir=str(tmp_path / "state"),
                                     history_path=str(tmp_path / "h.sqlite")))


@pytest.fixture
def cfg(cfg_dict) -> PfepoConfig:
    return PfepoConfig.model_validate(cfg_dict)

@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Receiver:
    """``respond(seen, receiver) -> (status, headers, body)``; every request is kept in ``requests``."""

    respond: Callable[[Seen, Receiver], Reply]
    requests: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # ends hanging handlers
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Receiver:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(n) if n else b"")
                rec.requests.append(seen)
                status, headers, body = rec.respond(seen, rec)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = do_PATCH = do_PUT = do_HEAD = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    @staticmethod
    def hang(seen: Seen, rec: Receiver) -> Reply:
        """A ``respond`` that holds the request until the test ends (or 10 s), then answers 200."""
        rec.release.wait(10)
        return 200, {}, b"late"

    def close(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver():
    """Factory: ``receiver(respond)`` starts a server; all are shut down after the test."""
    made: list[Receiver] = []

    def make(respond: Callable[[Seen, Receiver], Reply]) -> Receiver:
        r = Receiver(respond).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A Mininet lab (real OVS) with the daemon as a separate process, one per test module; tests marked
    ``ovs`` (tests/integration, tests/lab) use it. The daemon log's tail is printed at teardown."""
    from mininet_topologies.lab import Lab

    lb = Lab(tmp_path_factory.mktemp("lab"))
    lb.start()
    yield lb
    lb.stop()
    log = lb.workdir / "daemon.log"
    if log.exists():
        print(log.read_text()[-3000:])


# Test helpers (tests/waiting.py, tests/openflow/fakeswitch.py) import as ``tests.*`` from the repo root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
