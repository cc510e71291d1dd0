"""The REST API over real HTTP (uvicorn on a free loopback port, httpx client); no switch attached."""

import json
import time

import httpx
import pytest

from pfepo.api.server import ApiServer, create_app
from pfepo.daemon import build_runtime
from pfepo.telemetry.samples import Sample
from tests.api.conftest import bearer
from tests.waiting import wait_until


@pytest.fixture
def api(cfg):
    rt = build_runtime(cfg)
    srv = ApiServer(create_app(rt), "127.0.0.1", 0)
    srv.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{srv.bound_port}", timeout=5, headers=bearer("operate")) as client:
        yield rt, client
    srv.stop()
    rt.writer.close()


def test_health_and_inventory(api):
    _rt, c = api
    h = c.get("/api/v1/health").json()
    assert h["status"] == "ok" and h["switches_configured"] == 4 and h["switches_connected"] == 0
    regions = c.get("/api/v1/regions").json()["regions"]
    assert [r["name"] for r in regions] == ["eu", "us", "ap"]
    svc = c.get("/api/v1/services/web").json()
    assert svc["bucket_weights"] == {"eu": 32, "us": 19, "ap": 13}
    assert c.get("/api/v1/services/nope").status_code == 404


def test_override_sets_weights_and_persists(api, cfg):
    rt, c = api
    r = c.put("/api/v1/services/web/weights", json={"weights": {"eu": 0, "us": 1, "ap": 1}})
    assert r.status_code == 200, r.text
    assert r.json()["bucket_weights"] == {"eu": 0, "us": 32, "ap": 32}
    saved = json.loads((rt.state._path).read_text())
    assert saved["desired"]["web"] == {"eu": 0.0, "us": 0.5, "ap": 0.5}
    events = c.get("/api/v1/events").json()["events"]
    assert events[-1]["kind"] == "weight_override"


@pytest.mark.parametrize(
    "body,status,reason",
    [
        ({"weights": {"mars": 1}}, 422, "unknown region"),
        ({"weights": {"eu": -1, "us": 2}}, 422, ">= 0"),
        ({"weights": {"eu": 0, "us": 0}}, 422, "sum to more than 0"),
        ({"weights": {"eu": "lots"}}, 422, "must be a number"),
        ({"weight": {"eu": 1}}, 422, ""),
    ],
)
def test_bad_override_is_refused_and_changes_nothing(api, body, status, reason):
    _rt, c = api
    before = c.get("/api/v1/services/web").json()
    r = c.put("/api/v1/services/web/weights", json=body)
    assert r.status_code == status
    assert reason in r.text
    assert c.get("/api/v1/services/web").json()["desired"] == before["desired"]


def test_override_unknown_service_404(api):
    _rt, c = api
    assert c.put("/api/v1/services/nope/weights", json={"weights": {"eu": 1}}).status_code == 404


def test_samples_and_metrics(api):
    rt, c = api
    now = time.time()
    rt.writer.put([Sample(now - 2 + i, "uplink:eu", "rx_bps", float(i), (("region", "eu"),)) for i in range(3)])
    rt.writer.flush()
    wait_until(lambda: rt.writer.written >= 3, 5, "3 samples written")
    got = c.get("/api/v1/samples", params={"subject": "uplink:eu", "metric": "rx_bps"}).json()["samples"]
    assert [s["value"] for s in got] == [0.0, 1.0, 2.0] and got[0]["tags"] == {"region": "eu"}
    assert "uplink:eu" in c.get("/api/v1/subjects").json()["subjects"]
    text = c.get("/metrics").text
    assert 'pfepo_service_weight{kind="desired",region="eu",service="web"} 32.0' in text
    assert 'pfepo_history_samples{kind="written"} 3.0' in text
