"""Gray failures, each measured on the namespace lab like the other knobs: the link stays up while
packets vanish (blackhole), the server accepts and never answers (hang), refuses/resets (crash), or
answers a share of requests with 503 (brown-out)."""

from __future__ import annotations

import json
import sys

import pytest

from pfepo_lab.impair.impair import ImpairError, has_carrier
from pfepo_lab.impair.lab import RIGHT_IP

PORT = 8000

# Runs in the left namespace: N new connections (one GET each) plus, with --keep, one kept connection
# opened before ``mode`` is applied (the caller applies it between the two phases through a file flag).
CLIENT = r"""
import json, socket, sys, time
n, timeout = int(sys.argv[1]), float(sys.argv[2])
out = {"connected": 0, "answered": 0, "status": {}, "errors": {}}
for _ in range(n):
    try:
        s = socket.create_connection((sys.argv[3], int(sys.argv[4])), timeout=timeout)
    except OSError as e:
        out["errors"][type(e).__name__] = out["errors"].get(type(e).__name__, 0) + 1
        continue
    out["connected"] += 1
    try:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = s.recv(4096)
        if not data:
            raise ConnectionResetError("closed")
        code = data.split(b" ", 2)[1].decode()
        out["answered"] += 1
        out["status"][code] = out["status"].get(code, 0) + 1
    except OSError as e:
        out["errors"][type(e).__name__] = out["errors"].get(type(e).__name__, 0) + 1
    finally:
        s.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def http(lab):
    return lab.http_server(PORT)


@pytest.fixture
def gray(lab, http):
    imp = lab.impairer()
    yield imp
    imp.clear("right")
    imp.clear("lnk")


def requests(lab, n: int = 20, timeout: float = 0.5) -> dict:
    r = lab.run(lab.left, [sys.executable, "-c", CLIENT, str(n), str(timeout), RIGHT_IP, str(PORT)], timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_healthy_server_answers_everything(lab, gray):
    assert requests(lab) == {"connected": 20, "answered": 20, "status": {"200": 20}, "errors": {}}


def test_blackhole_drops_everything_and_keeps_carrier(lab, gray):
    gray.blackhole("reg")
    r = lab.probe(count=100, interval=0.002, wait=0.5)
    assert r["loss_pct"] == 100.0
    assert has_carrier(lab.runner(lab.mid), lab.if_a) and has_carrier(lab.runner(lab.mid), lab.if_b)
    res = requests(lab, 5, timeout=0.3)
    assert res["connected"] == 0 and res["errors"] == {"TimeoutError": 5}
    gray.clear("lnk")
    assert lab.probe(count=50, interval=0.002)["loss_pct"] == 0


def test_server_hang_accepts_but_never_answers(lab, gray):
    gray.server("right", "hang")
    res = requests(lab, 10, timeout=0.5)
    assert res["connected"] == 10 and res["answered"] == 0 and res["errors"] == {"TimeoutError": 10}
    gray.server("right", "ok")
    assert requests(lab, 5)["answered"] == 5


def test_server_crash_refuses_and_clear_restores(lab, gray):
    gray.server("reg", "crash")  # a region name stands for its server hosts
    res = requests(lab, 10)
    assert res["connected"] == 0 and res["errors"] == {"ConnectionRefusedError": 10}
    gray.clear("right")
    assert "PFC-" not in lab.runner(lab.right)(["iptables", "-S"])
    assert requests(lab, 5)["answered"] == 5


def test_brownout_answers_a_share_with_503(lab, gray):
    gray.server("right", "brownout", 30)
    res = requests(lab, 400)
    share = res["status"].get("503", 0) / 400
    # binomial sd at n=400, p=0.3 is 2.3 points: +-8 points is over 3 sd
    assert res["answered"] == 400 and 0.22 <= share <= 0.38, res
    gray.server("right", "ok")
    assert requests(lab, 50)["status"] == {"200": 50}


def test_bad_server_requests_are_refused(lab, gray):
    with pytest.raises(ImpairError, match="brown-out error share"):
        gray.server("right", "brownout", 0)
    with pytest.raises(ImpairError, match="server mode"):
        gray.server("right", "melt")
    with pytest.raises(ImpairError, match="no http_control"):
        gray.server("left", "hang")
