"""POST /api/v1/signals over real HTTP: auth, validation, limits, per-item rejections."""

import time

import httpx
import pytest

from pfepo.api.server import ApiServer, create_app
from pfepo.config import PfepoConfig
from pfepo.daemon import build_runtime
from tests.api.conftest import bearer

TOKEN = "s3cret-token-for-tests"


def _serve(cfg_dict, **signals):
    cfg_dict["signals"] = {"token": TOKEN, **signals}
    rt = build_runtime(PfepoConfig.model_validate(cfg_dict))
    srv = ApiServer(create_app(rt), "127.0.0.1", 0)
    srv.start()
    return rt, srv


@pytest.fixture
def push(cfg_dict):
    rt, srv = _serve(cfg_dict, max_items=50, max_body_bytes=4096, max_items_per_s=100)
    with httpx.Client(base_url=f"http://127.0.0.1:{srv.bound_port}", timeout=5,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield rt, c
    srv.stop()
    rt.writer.close()


def test_good_items_stored_bad_items_reported(push):
    rt, c = push
    now = time.time()
    batch = [
        {"endpoint": "eu-1", "metric": "cpu_pct", "value": 91.5, "timestamp": now - 1},
        {"endpoint": "eu-1", "metric": "latency_ms", "value": 12},
        {"endpoint": "mars-1", "metric": "cpu_pct", "value": 1},
        {"endpoint": "eu-2", "metric": "cpu_pct", "value": "NaN"},
        {"endpoint": "eu-2", "metric": "Bad Name", "value": 1},
        {"endpoint": "eu-2", "metric": "cpu_pct", "value": 1, "colour": "red"},
        {"endpoint": "eu-2", "metric": "cpu_pct", "value": 1, "timestamp": now + 86400},
        "not an object",
    ]
    r = c.post("/api/v1/signals", json=batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2
    reasons = {x["index"]: x["reason"] for x in body["rejected"]}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert "unknown endpoint" in reasons[2] and "finite number" in reasons[3]
    assert "unknown field" in reasons[5] and "too far" in reasons[6]
    assert body["stored"] is True  # written to the store before the answer: readable at once
    got = rt.store.last("eu-1", "cpu_pct")
    assert got[-1].value == 91.5 and dict(got[-1].tags)["source"] == "push"
    assert rt.observations()["eu-1"]["latency_ms"] == 12


@pytest.mark.parametrize("headers,status", [({}, 401), ({"Authorization": "Bearer wrong"}, 401),
                                            ({"Authorization": TOKEN}, 401)])
def test_unauthenticated_refused(push, headers, status):
    _rt, c = push
    r = httpx.post(str(c.base_url.join("/api/v1/signals")), json=[], headers=headers)
    assert r.status_code == status and "token" in r.json()["detail"]


def test_malformed_oversized_and_too_many(push):
    _rt, c = push
    assert c.post("/api/v1/signals", content=b"{nope").status_code == 400
    assert c.post("/api/v1/signals", json={"x": 1}).status_code == 400
    big = [{"endpoint": "eu-1", "metric": "cpu_pct", "value": 1}] * 51
    r = c.post("/api/v1/signals", json=big)
    assert r.status_code in (400, 413)
    r = c.post("/api/v1/signals", content=b"[" + b" " * 5000 + b"]")
    assert r.status_code == 413


def test_flood_is_rate_limited_and_counted(push):
    _rt, c = push
    batch = [{"endpoint": "eu-1", "metric": "cpu_pct", "value": 1}] * 50
    statuses = [c.post("/api/v1/signals", json=batch).status_code for _ in range(6)]
    assert statuses[0] == 200 and 429 in statuses
    assert 'pfepo_signals_total{outcome="rate_limited"}' in c.get("/metrics", headers=bearer("read")).text


def test_push_disabled_without_token(cfg):
    rt = build_runtime(cfg)
    srv = ApiServer(create_app(rt), "127.0.0.1", 0)
    srv.start()
    try:
        r = httpx.post(f"http://127.0.0.1:{srv.bound_port}/api/v1/signals", json=[])
        assert r.status_code == 403 and "signals.token" in r.text
    finally:
        srv.stop()
        rt.writer.close()
