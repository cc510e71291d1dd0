"""WebhookExecutor against a real local HTTP receiver: signature, idempotency key, retries, timeouts."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import pytest

from pfepo.actions.config import WebhookExecutorConfig
from pfepo.actions.executors import SIGNATURE_HEADER, ScaleRequest, WebhookExecutor, backoff_delay, verify
from tests.waiting import wait_until

SECRET = "s3cret-for-tests-0123"
REQ = ScaleRequest(service="shop", region="us", application="web", desired_capacity=6, executor="hook",
                   decision_id="risk-eu:eu:1700000000.000", reason="eu risk 0.8 >= act 0.6", ts=1700000000.0)


def make(url: str, **kw) -> tuple[WebhookExecutor, list[float]]:
    waits: list[float] = []
    cfg = WebhookExecutorConfig(type="webhook", url=url, secret=SECRET, **kw)
    return WebhookExecutor("hook", cfg, sleep=waits.append), waits


def signed_ok(seen, rec):
    """Receiver that verifies the HMAC like docs/actions.md tells a receiver to."""
    expected = "sha256=" + hmac.new(SECRET.encode(), seen.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, seen.headers.get(SIGNATURE_HEADER.lower(), "")):
        return 401, {}, b"bad signature"
    return 200, {"Content-Type": "application/json"}, b'{"accepted": true}'


def test_signed_post_is_accepted_and_carries_the_request(receiver):
    r = receiver(signed_ok)
    ex, waits = make(r.url + "/scale")
    res = ex.execute(REQ)
    ex.close()
    assert res.ok and res.status == 200 and res.attempts == 1 and waits == []
    assert res.output == '{"accepted": true}'
    (seen,) = r.requests
    assert seen.method == "POST" and seen.path == "/scale"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["idempotency-key"] == REQ.idempotency_key
    doc = json.loads(seen.body)
    assert doc == {"type": "scale_application", "executor": "hook", "service": "shop", "region": "us",
                   "application": "web", "desired_capacity": 6, "decision_id": REQ.decision_id,
                   "idempotency_key": REQ.idempotency_key, "reason": REQ.reason, "requested_at": 1700000000.0}
    # canonical form: what was signed can be reproduced from the parsed document
    assert seen.body == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert verify(SECRET.encode(), seen.body, seen.headers[SIGNATURE_HEADER.lower()])
    assert not verify(b"another-secret-0123456", seen.body, seen.headers[SIGNATURE_HEADER.lower()])
    assert not verify(SECRET.encode(), seen.body + b" ", seen.headers[SIGNATURE_HEADER.lower()])


def test_wrong_secret_is_refused_by_the_receiver_and_not_retried(receiver):
    r = receiver(signed_ok)
    cfg = WebhookExecutorConfig(type="webhook", url=r.url, secret="not-the-receivers-key")
    ex = WebhookExecutor("hook", cfg, sleep=lambda s: None)
    res = ex.execute(REQ)
    ex.close()
    assert not res.ok and res.status == 401 and res.attempts == 1 and len(r.requests) == 1


def test_idempotency_key_depends_on_what_and_which_decision():
    same = ScaleRequest("shop", "us", "web", 6, "other-executor", REQ.decision_id, reason="x", ts=5.0)
    assert same.idempotency_key == REQ.idempotency_key  # executor, reason and time do not matter
    for other in (ScaleRequest("shop", "us", "web", 7, "hook", REQ.decision_id),
                  ScaleRequest("shop", "ap", "web", 6, "hook", REQ.decision_id),
                  ScaleRequest("shop", "us", "api", 6, "hook", REQ.decision_id),
                  ScaleRequest("blog", "us", "web", 6, "hook", REQ.decision_id),
                  ScaleRequest("shop", "us", "web", 6, "hook", "risk-eu:eu:1700000300.000")):
        assert other.idempotency_key != REQ.idempotency_key


def test_503_twice_then_200_retries_with_backoff_and_the_same_key(receiver):
    def flaky(seen, rec):
        return (503, {}, b"busy") if len(rec.requests) <= 2 else (200, {}, b"ok")

    r = receiver(flaky)
    ex, waits = make(r.url, backoff_s=0.25, backoff_max_s=10)
    res = ex.execute(REQ)
    ex.close()
    assert res.ok and res.attempts == 3 and len(r.requests) == 3
    assert waits == [0.25, 0.5]
    assert len({s.headers["idempotency-key"] for s in r.requests}) == 1
    assert len({s.body for s in r.requests}) == 1
    assert [s.headers["x-pfepo-attempt"] for s in r.requests] == ["1", "2", "3"]


def test_persistent_5xx_gives_up_after_the_configured_retries(receiver):
    r = receiver(lambda s, rec: (500, {}, b"boom"))
    ex, waits = make(r.url, retries=2, backoff_s=1, backoff_max_s=1.5)
    res = ex.execute(REQ)
    ex.close()
    assert not res.ok and res.attempts == 3 and res.status == 500 and "gave up after 3" in res.detail
    assert waits == [1, 1.5]  # capped


def test_4xx_is_final(receiver):
    r = receiver(lambda s, rec: (422, {}, b"capacity too large"))
    ex, waits = make(r.url)
    res = ex.execute(REQ)
    ex.close()
    assert not res.ok and res.attempts == 1 and res.status == 422 and res.output == "capacity too large"


def test_connection_refused_is_retried_then_reported():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    ex, waits = make(f"http://127.0.0.1:{port}/scale", retries=1, backoff_s=0.01)
    res = ex.execute(REQ)
    ex.close()
    assert not res.ok and res.attempts == 2 and res.status is None and "ConnectError" in res.error


def test_hanging_receiver_times_out(receiver):
    r = receiver(lambda s, rec: rec.hang(s, rec))
    ex, waits = make(r.url, timeout_s=0.3, retries=1, backoff_s=0.01)
    t0 = time.monotonic()
    res = ex.execute(REQ)
    took = time.monotonic() - t0
    ex.close()
    assert not res.ok and res.attempts == 2 and "timeout" in res.error
    assert 0.55 <= took < 2.0, took


def test_close_ends_a_backoff_wait(receiver):
    r = receiver(lambda s, rec: (503, {}, b""))
    cfg = WebhookExecutorConfig(type="webhook", url=r.url, secret=SECRET, retries=5, backoff_s=30)
    ex = WebhookExecutor("hook", cfg)  # real (interruptible) sleep
    import threading
    out = []
    t = threading.Thread(target=lambda: out.append(ex.execute(REQ)))
    t.start()
    wait_until(lambda: r.requests, message="the first attempt")  # then a 30 s backoff wait begins
    t0 = time.monotonic()
    ex.close()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 2
    # the one attempt made is counted; the retry that close() cancelled is not
    assert not out[0].ok and out[0].attempts == 1 and len(r.requests) == 1 and "shutting down" in out[0].error


def test_backoff_delay():
    assert [backoff_delay(i, 0.5, 3) for i in range(1, 6)] == [0.5, 1, 2, 3, 3]


def test_extra_headers_are_sent(receiver):
    r = receiver(lambda s, rec: (204, {}, b""))
    ex, _ = make(r.url, headers={"X-Team": "sre"})
    assert ex.execute(REQ).ok
    ex.close()
    assert r.requests[0].headers["x-team"] == "sre"


@pytest.mark.parametrize("action, msg", [
    ({"service": "shop", "region": "us", "executor": "hook", "desired_capacity": 3}, "application"),
    ({"service": "shop", "region": "us", "application": "web", "executor": "hook", "desired_capacity": 2.5},
     "integer"),
])
def test_from_action_refuses_incomplete_actions(action, msg):
    with pytest.raises(ValueError, match=msg):
        ScaleRequest.from_action(action)


def test_from_action_reads_a_planner_action():
    action = {"ts": 100.0, "service": "shop", "from_region": "eu", "policy": "risk-eu", "reason": "r",
              "dry_run": False, "type": "scale_application", "region": "us", "application": "web",
              "desired_capacity": 4, "executor": "hook"}
    req = ScaleRequest.from_action(action)
    assert (req.service, req.region, req.application, req.desired_capacity, req.executor) == \
        ("shop", "us", "web", 4, "hook")
    assert req.decision_id == "risk-eu:eu:100.000"
    assert ScaleRequest.from_action({**action, "decision_id": "d-7"}).decision_id == "d-7"


def test_the_documented_example_holds():
    """docs/actions.md shows this body, key and signature; keep them true."""
    cfg = WebhookExecutorConfig(type="webhook", url="https://scaler.example/hooks/pfepo",
                                secret="change-me-0123456789")
    ex = WebhookExecutor("scaler", cfg)
    r = ScaleRequest("shop", "us", "web", 6, "scaler", "risk-eu:eu:1764190800.000", "eu risk 0.82 >= act 0.60",
                     ts=1764190800.0)
    body = ex.body(r)
    ex.close()
    assert r.idempotency_key == "pfepo-45d062b3d4cd38a8f667dfd971e3ea8a"
    expected = hashlib.sha256(b'["shop","us","web",6,"risk-eu:eu:1764190800.000"]').hexdigest()[:32]
    assert r.idempotency_key == "pfepo-" + expected
    assert verify(b"change-me-0123456789", body,
                  "sha256=b2c3b939d20ccc3683b3963b0efbac2549688c5157fd16549cb0fea39631754f")
