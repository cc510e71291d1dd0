"""Bounded REST fuzz over real HTTP: no 5xx, no traceback, no state change from bad input.

Hypothesis generates JSON-ish bodies (random structures and the known-hostile cases: NaN/Infinity,
10^400, 1e308 sums, denormals, duplicate keys, 5000-deep nesting, many keys) and path/query strings.
A body is "bad" unless the server says 200; after any non-200 the desired state must be unchanged.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import bearer, serve

HOSTILE = [
    b'{"weights": {"eu": NaN, "us": 1}}', b'{"weights": {"eu": Infinity}}', b'{"weights": {"eu": -Infinity}}',
    b'{"weights": {"eu": 1e400}}', b'{"weights": {"eu": ' + b"9" * 400 + b"}}",
    b'{"weights": {"eu": 1e308, "us": 1e308}}', b'{"weights": {"eu": 5e-324, "us": 0}}',
    b'{"weights": {"eu": 1, "eu": 0}}', b'{"weights": {"eu": 1}, "weights": {"us": 1}}',
    b"[" * 5000 + b"]" * 5000, b'{"weights": ' + b"{\"a\":" * 5000 + b"1" + b"}" * 5001,
    b'{"weights": {' + b",".join(b'"k%d": 1' % i for i in range(5000)) + b"}}",
    b'{"bandwidth_mbps": {"eu": 5e-324}}', b'{"bandwidth_mbps": {"eu": 0.001}}',
    b'{"bandwidth_mbps": {"eu": NaN}}', b'{"bandwidth_mbps": {"eu": ' + b"1" * 400 + b"}}",
    b'{"weights": {"eu": true}}', b'{"weights": {"eu": "1"}}', b'{"weights": []}', b"null", b"\xff\xfe",
    b'{"weights": {"eu": 1}, "force": "yes"}', b'{"weights": {"\\ud800": 1}}', b"",
]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.sampled_from(["eu", "us", "ap", "x", ""]) | st.text(max_size=8),
                                                kids, max_size=4)), max_leaves=12)
bodies = st.one_of(
    st.sampled_from(HOSTILE),
    st.binary(max_size=200),
    json_values.map(lambda v: httpx.Request("PUT", "http://x", json={"weights": v}).content),
    json_values.map(lambda v: httpx.Request("PUT", "http://x", json={"bandwidth_mbps": v}).content),
    json_values.map(lambda v: httpx.Request("PUT", "http://x", json=v).content),
)
SIGNALS_TOKEN = "signals-fuzz-token-0123456789"
names = st.one_of(st.just("web"), st.text(min_size=1, max_size=400).filter(lambda s: "/" not in s and "?" not in s
                                                                             and "#" not in s))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from mininet_topologies.multiregion import TopoSpec

    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = TopoSpec(weights={"eu": 50, "us": 30, "ap": 20}).config(
        rest_port=0, state_dir=str(tmp / "state"), history_path=str(tmp / "h.sqlite"))
    cfg["signals"] = {"token": SIGNALS_TOKEN, "max_items_per_s": 1e9}
    with serve(cfg, policies=True) as (rt, url), httpx.Client(base_url=url, timeout=10,
                                                              headers=bearer("admin")) as c:
        yield rt, c


def _snapshot(rt) -> tuple:
    return (dict(rt.state.baseline["web"]), dict(rt.state.bandwidth["web"]), rt.state.baseline_version)


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    assert "Traceback" not in r.text


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=bodies, kind=st.sampled_from(["weights", "bandwidth"]), name=names)
def test_bad_bodies_change_nothing(fuzz_server, body, kind, name, caplog):
    rt, c = fuzz_server
    caplog.set_level(logging.WARNING)
    before = _snapshot(rt)
    r = c.put(f"/api/v1/services/{quote(name, safe='')}/{kind}", content=body,
              headers={"Content-Type": "application/json"})
    _check(r)
    if r.status_code != 200:
        assert _snapshot(rt) == before
    else:  # accepted: must be a sane state that every reader can still serve
        w = rt.state.baseline["web"]
        assert abs(sum(w.values()) - 1) < 1e-9 and all(0 <= v <= 1 for v in w.values())
        for path in ("/api/v1/services", "/metrics"):
            _check(c.get(path))
    assert not [rec for rec in caplog.records if rec.exc_info], "a handler logged a traceback"


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(seg=st.text(min_size=1, max_size=400), q=st.text(max_size=60),
       path=st.sampled_from(["/api/v1/services/{}", "/api/v1/rootcause/{}", "/api/v1/samples?subject={}",
                             "/api/v1/audit?since={}", "/api/v1/samples?subject=x&since={}",
                             "/api/v1/events?limit={}", "/api/v1/audit?limit={}&kind={}"]))
def test_bad_paths_and_queries(fuzz_server, seg, q, path, caplog):
    _rt, c = fuzz_server
    caplog.set_level(logging.WARNING)
    r = c.get(path.format(quote(seg, safe=""), quote(q, safe="")))
    _check(r)
    assert not [rec for rec in caplog.records if rec.exc_info]


@pytest.mark.parametrize("q", ["since=nan", "since=inf", "since=1e400", "since=-inf", "limit=" + "9" * 400,
                               "since=" + "9" * 5000])
def test_non_finite_queries(fuzz_server, q):
    _rt, c = fuzz_server
    for path in ("/api/v1/audit", "/api/v1/samples?subject=x&"):
        r = c.get(path + ("&" if "?" in path and not path.endswith("&") else "?" if "?" not in path else "") + q)
        assert r.status_code in (200, 422), r.text


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=st.one_of(bodies, json_values.map(lambda v: httpx.Request("POST", "http://x", json=[
    {"endpoint": "eu-1", "metric": "cpu_pct", "value": v}]).content)))
def test_bad_signal_batches(fuzz_server, body, caplog):
    rt, c = fuzz_server
    caplog.set_level(logging.WARNING)
    r = c.post("/api/v1/signals", content=body, headers={"Authorization": f"Bearer {SIGNALS_TOKEN}",
                                                           "Content-Type": "application/json"})
    _check(r)
    assert r.status_code in (200, 400, 413), r.text[:200]
    assert not [rec for rec in caplog.records if rec.exc_info]
