"""Line protocol, Flux text and config validation (no server needed)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from pfepo.store.influx import LineEncoder, encode_event, flux_query, series_to_samples
from pfepo.store.influx_config import InfluxConfig
from pfepo.telemetry.samples import Sample


def test_line_protocol_escapes_and_sorts_tags():
    enc = LineEncoder()
    s = Sample(1.5, "ep a,1", "lat ms", 2.0, (("region", "us=east"), ("empty", ""), ("subject", "ignored")))
    payload, n, invalid = enc.encode([s])
    assert (n, invalid) == (1, 0)
    assert payload == rb"pfepo_metric,region=us\=east,subject=ep\ a\,1 lat\ ms=2.0 1500000000"


def test_non_finite_values_are_skipped_and_counted():
    enc = LineEncoder()
    payload, n, invalid = enc.encode(
        [Sample(1, "a", "m", math.nan), Sample(2, "a", "m", 3), Sample(3, "a", "m", math.inf)]
    )
    assert (payload, n, invalid) == (b"pfepo_metric,subject=a m=3.0 2000000000", 1, 2)


def test_event_line_types():
    line = encode_event("decision", 2.0, {"region": "r 1"}, {"text": 'say "hi"', "risk": 1, "ok": True})
    assert line == r'pfepo_event,kind=decision,region=r\ 1 ok=true,risk=1.0,text="say \"hi\"" 2000000000'
    assert encode_event("weights", 1.0, {}, {}) == "pfepo_event,kind=weights value=1.0 1000000000"


def test_series_to_samples_drops_empty_tags_and_nulls():
    series = [
        {
            "name": "pfepo_metric",
            "tags": {"subject": "a", "region": ""},
            "columns": ["time", "x", "y"],
            "values": [[2_000_000_000, 1.0, None], [1_000_000_000, None, 5]],
        }
    ]
    assert series_to_samples(series) == [Sample(1.0, "a", "y", 5.0), Sample(2.0, "a", "x", 1.0)]


def test_flux_query_text():
    q = flux_query("b", "ep-1", "latency_ms", start=1.5, end=2.0, limit=3, desc=True)
    assert 'from(bucket: "b")' in q
    assert "range(start: 1970-01-01T00:00:01.500000000Z, stop: 1970-01-01T00:00:02.000000000Z)" in q
    assert 'r.subject == "ep-1" and r._field == "latency_ms"' in q
    assert q.endswith("limit(n: 3)") and "desc: true" in q


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"api": "v2"}, "org and bucket"),
        ({"api": "v2", "org": "o"}, "bucket"),
        ({"url": "localhost:8086"}, "http://"),
        ({"username": "u"}, "username and password"),
        ({"read_via": "flux"}, "api: v2"),
        ({"spool_drop": "random"}, "oldest"),
        ({"bogus": 1}, "Extra inputs"),
        ({"spool_max_mb": 0}, "greater than 0"),
    ],
)
def test_config_errors(kwargs, needle):
    with pytest.raises(ValidationError) as e:
        InfluxConfig(**kwargs)
    assert needle in str(e.value)


def test_config_defaults_and_secrets():
    c = InfluxConfig(api="v2", org="o", bucket="b", token="t0k3n", url="https://h:8086/")
    assert c.url == "https://h:8086" and c.spool_max_bytes == 256 * 2**20
    assert "t0k3n" not in repr(c)


def test_store_counts_invalid_and_never_touches_the_network_on_write(tmp_path):
    from pfepo.store.influx import InfluxStore

    cfg = InfluxConfig(url="http://127.0.0.1:9", spool_path=str(tmp_path / "sp.sqlite"))
    store = InfluxStore(cfg, start=False)  # no sender: writes only encode and spool
    store.write([Sample(1, "a", "m", math.nan), Sample(2, "a", "m", 1.0)])
    store.write_event("weights", 3, {"service": "web"}, {"r1": 10})
    st = store.stats()
    assert (st["accepted"], st["invalid"], st["pending"], st["sent"]) == (2, 1, 2, 0)
    store.close()


def test_backslashes_in_names_become_slashes():
    payload, n, _ = LineEncoder().encode([Sample(1, "a\\b", "m\\", 1.0, (("region", "trail\\"),))])
    assert payload == b"pfepo_metric,region=trail/,subject=a/b m/=1.0 1000000000"


def test_partial_write_counts():
    from pfepo.store.influx.write import Reject, Retry, classify

    body = (
        "{\"error\":\"partial write: unable to parse 'x': invalid tag format\\nunable to parse 'y': "
        'invalid tag format dropped=1"}'
    )
    e = classify(400, body)
    assert isinstance(e, Reject) and e.dropped == 3
    assert classify(400, '{"error":"bad"}').dropped is None  # unknown: all of the batch
    assert isinstance(classify(503, ""), Retry) and isinstance(classify(401, ""), Retry)


@pytest.mark.parametrize(
    "buckets, write, setting",
    [
        ((401, {"code": "unauthorized", "message": "unauthorized access"}), None, "token"),
        ((404, {"code": "not found", "message": 'organization name "o" not found'}), None, "org"),
        ((200, {"buckets": []}), None, "bucket"),
        ((400, {}), (401, {"message": "unauthorized"}), "token"),  # no bucket API: empty write decides
        ((400, {}), (404, {"message": "bucket not found"}), "bucket"),
    ],
)
def test_v2_startup_check_names_the_setting(monkeypatch, buckets, write, setting):
    """InfluxDB 2.x answers stubbed (no 2.x server is installable here); the real-server cases are in test_influx_v*."""
    import httpx

    import pfepo.store.influx as influx
    from pfepo.store.influx import clients

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ping":
            return httpx.Response(204)
        if request.url.path == "/api/v2/buckets":
            return httpx.Response(buckets[0], json=buckets[1])
        if request.url.path == "/api/v2/write" and write:
            return httpx.Response(write[0], json=write[1])
        return httpx.Response(500)

    monkeypatch.setattr(
        clients,
        "http_client",
        lambda cfg: httpx.Client(base_url=cfg.url, transport=httpx.MockTransport(handler)),
    )
    cfg = InfluxConfig(api="v2", url="http://influx2:8086", org="o", bucket="b", token="t", read_via="flux")
    with pytest.raises(influx.InfluxSetupError) as e:
        influx.check_influx(cfg)
    assert e.value.setting == f"history.influxdb.{setting}"
