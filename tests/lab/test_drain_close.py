"""A drained server answers ``Connection: close`` and the lab's keep-alive client reconnects without a
failure (loopback only: the real lab HTTP service and client, in this process)."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer

import pytest

from mininet_topologies.client import keepalive
from mininet_topologies.httpserver import Control, make_handler
from pfepo_lab.impair.impair import server_mode
from tests.waiting import wait_until


@pytest.fixture
def server(tmp_path):
    ctl = tmp_path / "eu-1.mode"
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler("eu-1", Control(str(ctl))))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], ctl
    srv.shutdown()
    srv.server_close()


def test_drain_closes_keepalives_and_clients_reconnect_without_failures(server, tmp_path):
    port, ctl = server
    log = tmp_path / "ka.jsonl"
    out: dict = {}
    with open(log, "a", buffering=1) as f:
        t = threading.Thread(target=lambda: out.update(keepalive("127.0.0.1", port, "/", 4, 0.05, 2.0, 2.0, f)))
        t.start()
        wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 20, 10)
        server_mode(str(ctl), None, drain=True)
        wait_until(lambda: '"closed": true' in log.read_text(), 10)
        t.join(10)
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert out["failed"] == 0 and out["closed_by_server"] >= 4  # every connection was told to close ...
    assert out["moved"] == 0  # ... and a reconnect is a new connection, not a remapped one
    closed = [r for r in recs if r.get("closed")]
    assert closed and all(r["server"] == "eu-1" for r in closed)


def test_drain_is_independent_of_the_failure_mode(tmp_path):
    ctl = str(tmp_path / "m")
    server_mode(ctl, None, drain=True)
    server_mode(ctl, "hang")
    assert json.load(open(ctl)) == {"mode": "hang", "error_pct": 0, "drain": True}
    server_mode(ctl, None, drain=False)
    assert json.load(open(ctl))["mode"] == "hang"
    server_mode(ctl, None, drain=True)
    server_mode(ctl, "ok")  # back to normal: the drain ends too
    assert json.load(open(ctl)) == {"mode": "ok", "error_pct": 0.0, "drain": False}
