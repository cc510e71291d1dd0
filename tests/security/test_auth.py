"""Authentication, roles, Host allow-list, body cap, override safety and audit over real HTTP."""

from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest

from pfepo.api.auth import TokenError, load_tokens
from pfepo.config import RestConfig
from tests.security.conftest import TOKENS, bearer, serve

W = "/api/v1/services/web/weights"


def test_no_token_no_access(server):
    _rt, c = server
    assert c.get("/api/v1/services").status_code == 401
    r = c.put(W, json={"weights": {"eu": 1, "us": 1, "ap": 1}})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert c.put(W, json={"weights": {"eu": 1}}, headers={"Authorization": "Bearer " + "x" * 30}).status_code == 401
    assert c.get("/metrics").status_code == 401


def test_roles(server):
    rt, c = server
    before = rt.state.baseline["web"]
    r = c.put(W, json={"weights": {"eu": 1, "us": 1, "ap": 1}}, headers=bearer("read"))
    assert r.status_code == 403 and "operate" in r.text
    assert rt.state.baseline["web"] == before
    assert c.get("/api/v1/services/web", headers=bearer("read")).status_code == 200
    r = c.put(W, json={"weights": {"eu": 1, "us": 1, "ap": 2}}, headers=bearer("operate"))
    assert r.status_code == 200, r.text
    assert r.json()["desired"]["ap"] == 0.5


def test_docs_closed_by_default(server):
    _rt, c = server
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert c.get(path, headers=bearer("admin")).status_code == 404


def test_docs_and_open_reads_only_by_config(cfg_dict):
    cfg_dict["rest"]["open_reads"] = True
    cfg_dict["rest"]["docs"] = True
    with serve(cfg_dict) as (_rt, url), httpx.Client(base_url=url, timeout=5) as c:
        assert c.get("/api/v1/services").status_code == 200
        spec = c.get("/openapi.json").json()
        body = spec["paths"]["/api/v1/services/{name}/weights"]["put"]["requestBody"]
        assert body["content"]["application/json"]["schema"]["required"] == ["weights"]
        assert c.put(W, json={"weights": {"eu": 1}}).status_code == 401  # writes never open


def test_host_header_allow_list(server):
    _rt, c = server
    r = c.get("/api/v1/health", headers={**bearer("read"), "Host": "evil.example:8080"})
    assert r.status_code == 400 and "Host" in r.text
    assert c.get("/api/v1/health", headers={**bearer("read"), "Host": "localhost:1"}).status_code == 200


def test_allowed_hosts_from_config(cfg_dict):
    cfg_dict["rest"]["allowed_hosts"] = ["pfepo.example.org"]
    with serve(cfg_dict) as (_rt, url), httpx.Client(base_url=url, timeout=5, headers=bearer("read")) as c:
        assert c.get("/api/v1/health", headers={"Host": "pfepo.example.org:443"}).status_code == 200
        assert c.get("/api/v1/health", headers={"Host": "other.example.org"}).status_code == 400


def _raw(url: str, head: bytes, body: bytes = b"") -> tuple[bytes, float]:
    host, port = url.split("//")[1].split(":")
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(head + body)
        data = s.recv(65536)
    return data, time.monotonic() - t0


def test_huge_unauthenticated_body_is_not_read(server):
    """A 100 MB body announced without a token is refused at once; the server never reads it."""
    rt, c = server
    url = str(c.base_url).rstrip("/")
    head = (b"PUT /api/v1/services/web/weights HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n")
    data, took = _raw(url, head, b"{" * 1000)
    assert data.startswith(b"HTTP/1.1 401"), data[:100]
    assert took < 2.0
    # with a token, the declared size alone is refused (413) before reading
    head = head.replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\nAuthorization: Bearer "
                        + TOKENS["operate"].encode() + b"\r\n")
    data, _ = _raw(url, head, b"{")
    assert data.startswith(b"HTTP/1.1 413"), data[:100]


def test_chunked_body_over_cap_refused(server):
    _rt, c = server

    def gen():
        for _ in range(200):
            yield b" " * 1024

    r = c.put(W, content=gen(), headers={**bearer("operate"), "Content-Type": "application/json"})
    assert r.status_code == 413


def test_override_past_safety_rules_needs_admin_force(server):
    rt, c = server
    before = dict(rt.state.baseline["web"])
    drain_two = {"weights": {"eu": 0, "us": 0, "ap": 1}}
    r = c.put(W, json=drain_two, headers=bearer("operate"))
    assert r.status_code == 409 and "max_regions_drained" in r.text
    assert rt.state.baseline["web"] == before
    r = c.put(W, json={**drain_two, "force": True}, headers=bearer("operate"))
    assert r.status_code == 403 and "admin" in r.text
    assert rt.state.baseline["web"] == before
    r = c.put(W, json={**drain_two, "force": True}, headers=bearer("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["bucket_weights"] == {"eu": 0, "us": 0, "ap": 64}
    # one region away is within the default policy's max_regions_drained: 1
    assert c.put(W, json={"weights": {"eu": 0, "us": 1, "ap": 1}}, headers=bearer("operate")).status_code == 200


def test_overrides_audited_with_who_never_the_token(server, caplog):
    rt, c = server
    caplog.set_level(logging.DEBUG)
    assert c.put(W, json={"weights": {"eu": 2, "us": 1, "ap": 1}}, headers=bearer("operate")).status_code == 200
    assert c.put("/api/v1/services/web/bandwidth", json={"bandwidth_mbps": {"eu": 20}},
                 headers=bearer("admin")).status_code == 200
    c.put(W, json={"weights": {"eu": 1}}, headers={"Authorization": "Bearer wrong-token-but-long-enough"})
    recs = c.get("/api/v1/audit", params={"since": 0}, headers=bearer("read")).json()["records"]
    kinds = {r["kind"]: r for r in recs}
    assert kinds["weight_override"]["by"] == "test-operate" and kinds["weight_override"]["role"] == "operate"
    assert kinds["weight_override"]["previous"]["eu"] == pytest.approx(0.5)
    assert kinds["bandwidth_override"]["by"] == "test-admin"
    audit_text = (rt.audit.path).read_text()
    assert "weight_override" in audit_text
    for secret in (*TOKENS.values(), "wrong-token-but-long-enough"):
        assert secret not in audit_text
        assert secret not in caplog.text
    assert all(secret not in json.dumps(list(rt.events)) for secret in TOKENS.values())


def test_secrets_redacted_in_responses(cfg_dict):
    ep = cfg_dict["regions"][0]["endpoints"][0]
    ep["health"] = {"url": "http://admin:s3cr3t-pass@10.0.1.1:8080/health"}
    with serve(cfg_dict) as (_rt, url), httpx.Client(base_url=url, timeout=5, headers=bearer("read")) as c:
        text = c.get("/api/v1/regions").text
        assert "s3cr3t-pass" not in text and "admin:" not in text
        assert "http://***@10.0.1.1:8080/health" in text


def test_short_missing_and_env_tokens(tmp_path, monkeypatch):
    short = tmp_path / "short"
    short.write_text("x\n")
    with pytest.raises(TokenError, match=r"rest\.tokens\.0\.token_file .*shorter than 16"):
        load_tokens(RestConfig(tokens=[{"name": "a", "role": "read", "token_file": str(short)}]))
    with pytest.raises(TokenError, match=r"rest\.tokens\.0\.token_file: cannot read"):
        load_tokens(RestConfig(tokens=[{"name": "a", "role": "read", "token_file": str(tmp_path / "nope")}]))
    with pytest.raises(TokenError, match=r"PFEPO_T_UNSET"):
        load_tokens(RestConfig(tokens=[{"name": "a", "role": "read", "token_env": "PFEPO_T_UNSET"}]))
    monkeypatch.setenv("PFEPO_T", "e" * 20)
    table = load_tokens(RestConfig(tokens=[{"name": "env", "role": "admin", "token_env": "PFEPO_T"}]))
    p = table.lookup("Bearer " + "e" * 20)
    assert p is not None and p.name == "env" and p.can("operate")
    assert table.lookup("Bearer " + "e" * 19) is None and "e" * 20 not in repr(table)
    with pytest.raises(ValueError, match="exactly one"):
        RestConfig(tokens=[{"name": "a", "role": "read"}])
    with pytest.raises(ValueError, match="at least 16"):
        RestConfig(tokens=[{"name": "a", "role": "read", "token": "short"}])


def test_write_failure_is_503_not_saved(server, monkeypatch):
    """The contract with ControllerState: an OSError from the setter (nothing changed) becomes 503."""
    rt, c = server

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rt.state, "set_baseline", full)
    monkeypatch.setattr(rt.state, "set_bandwidth", full)
    r = c.put(W, json={"weights": {"eu": 1, "us": 1, "ap": 1}}, headers=bearer("operate"))
    assert r.status_code == 503 and "not saved, nothing changed" in r.text
    r = c.put("/api/v1/services/web/bandwidth", json={"bandwidth_mbps": {"eu": 5}}, headers=bearer("operate"))
    assert r.status_code == 503 and "not saved, nothing changed" in r.text


def test_reads_with_a_huge_declared_body_are_refused(server):
    _rt, c = server
    head = (b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKENS["read"].encode()
            + b"\r\nContent-Length: 100000000\r\n\r\n")
    data, took = _raw(str(c.base_url).rstrip("/"), head, b"x" * 1000)
    assert data.startswith(b"HTTP/1.1 413") and took < 2.0
