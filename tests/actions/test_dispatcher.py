"""ScaleDispatcher: never blocks the caller, dedups, rate-limits, bounds its queue, reports every call."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, generate_latest

from pfepo.actions.config import WebhookExecutorConfig
from pfepo.actions.dispatcher import ScaleDispatcher
from pfepo.actions.executors import ExecutionResult, ScaleRequest, WebhookExecutor
from tests.waiting import wait_until

SECRET = "s3cret-for-tests-0123"


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Results:
    """on_result sink that lets a test wait for n records."""

    def __init__(self):
        self.records: list[dict] = []
        self.cond = threading.Condition()

    def __call__(self, rec: dict) -> None:
        with self.cond:
            self.records.append(rec)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 5.0) -> list[dict]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.records) >= n, timeout), self.records
            return list(self.records)

    def by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


def hook(url: str, **kw) -> WebhookExecutor:
    kw.setdefault("backoff_s", 0.01)
    return WebhookExecutor("hook", WebhookExecutorConfig(type="webhook", url=url, secret=SECRET, **kw))


def req(region="us", capacity=5, decision="d-1", **kw) -> ScaleRequest:
    return ScaleRequest("shop", region, "web", capacity, kw.pop("executor", "hook"), decision, **kw)


def test_a_hanging_scaler_never_blocks_submit_and_the_queue_is_bounded(receiver):
    r = receiver(lambda s, rec: rec.hang(s, rec))
    results = Results()
    d = ScaleDispatcher({"hook": hook(r.url, timeout_s=0.4, retries=0)}, results, workers=1, queue_max=2,
                        burst=10).start()
    try:
        assert d.submit(req("r0")) == "queued"
        wait_until(lambda: d.counters()["in_flight"] == 1)  # the worker is now stuck in the call
        t0 = time.monotonic()
        statuses = [d.submit(req(f"r{i}")) for i in range(1, 6)]
        submit_s = time.monotonic() - t0
        assert statuses == ["queued", "queued", "dropped", "dropped", "dropped"]
        assert submit_s < 0.05, submit_s  # five submits while the only worker hangs
        recs = results.wait(6, timeout=5)
    finally:
        assert d.stop(timeout=3)
    assert results.by_status() == {"dropped": 3, "failed": 3}
    failed = [x for x in recs if x["status"] == "failed"]
    assert all("timeout" in x["error"] for x in failed)
    assert d.counters() == {"submitted": 6, "succeeded": 0, "failed": 3, "deduplicated": 0,
                            "rate_limited": 0, "dropped": 3, "dry_run": 0, "queued": 0, "in_flight": 0}


def test_same_key_is_sent_once_within_the_window(receiver):
    r = receiver(lambda s, rec: (200, {}, b"ok"))
    clock, results = Clock(), Results()
    d = ScaleDispatcher({"hook": hook(r.url)}, results, dedup_window_s=300, burst=10, clock=clock).start()
    try:
        assert d.submit(req()) == "queued"
        results.wait(1)
        assert d.submit(req()) == "deduplicated"
        clock.t += 299
        assert d.submit(req()) == "deduplicated"
        assert d.submit(req(decision="d-2")) == "queued"  # a new decision is a new key
        results.wait(4)
        clock.t += 2
        assert d.submit(req()) == "queued"  # window passed
        results.wait(5)
    finally:
        d.stop()
    assert len(r.requests) == 3
    assert [x["status"] for x in results.records] == ["succeeded", "deduplicated", "deduplicated", "succeeded",
                                                      "succeeded"]
    assert results.records[0]["idempotency_key"] == req().idempotency_key


def test_a_failed_key_may_be_sent_again(receiver):
    r = receiver(lambda s, rec: (500, {}, b"no") if len(rec.requests) == 1 else (200, {}, b"ok"))
    results = Results()
    d = ScaleDispatcher({"hook": hook(r.url, retries=0)}, results, burst=10).start()
    try:
        d.submit(req())
        assert results.wait(1)[0]["status"] == "failed"
        assert d.submit(req()) == "queued"
        assert results.wait(2)[1]["status"] == "succeeded"
    finally:
        d.stop()


def test_rate_limit_per_executor_and_target(receiver):
    r = receiver(lambda s, rec: (200, {}, b"ok"))
    clock, results = Clock(), Results()
    d = ScaleDispatcher({"hook": hook(r.url)}, results, burst=2, rate_per_min=6, clock=clock).start()
    try:
        got = [d.submit(req(capacity=c)) for c in (3, 4, 5)]
        assert got == ["queued", "queued", "rate_limited"]
        assert d.submit(req(region="ap", capacity=5)) == "queued"  # another target has its own bucket
        clock.t += 9.9
        assert d.submit(req(capacity=6)) == "rate_limited"  # 6/min = one token per 10 s
        clock.t += 0.2
        assert d.submit(req(capacity=6)) == "queued"
        results.wait(6)
    finally:
        d.stop()
    assert len(r.requests) == 4
    limited = [x for x in results.records if x["status"] == "rate_limited"]
    assert len(limited) == 2 and limited[0]["target"] == "us/web" and "next call allowed in" in limited[0]["detail"]


def test_dry_run_unknown_executor_bad_action_are_reported_not_sent(receiver):
    r = receiver(lambda s, rec: (200, {}, b"ok"))
    results = Results()
    d = ScaleDispatcher({"hook": hook(r.url)}, results).start()
    try:
        assert d.submit(req(dry_run=True)) == "dry_run"
        assert d.submit(req(executor="nope")) == "failed"
        assert d.submit_action({"type": "scale_application", "service": "shop", "region": "us"}) == "failed"
        ok = d.submit_action({"ts": 5.0, "service": "shop", "from_region": "eu", "policy": "p", "region": "us",
                              "application": "web", "desired_capacity": 4, "executor": "hook", "dry_run": False})
        assert ok == "queued"
        results.wait(4)
    finally:
        d.stop()
    assert len(r.requests) == 1
    st = [(x["status"], x.get("detail", "")) for x in results.records]
    assert st[0] == ("dry_run", "dry run: not sent")
    assert st[1] == ("failed", "unknown executor 'nope'")
    assert st[2][0] == "failed" and "bad action" in st[2][1]
    assert st[3][0] == "succeeded"


class Boom:
    name, kind = "boom", "test"

    def __init__(self):
        self.calls = 0

    def target(self, request):
        return request.region

    def execute(self, request):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("executor bug")
        return ExecutionResult(True, "fine")

    def close(self):
        pass


def test_a_raising_executor_or_callback_does_not_kill_the_worker():
    seen = []

    def callback(rec):
        seen.append(rec)
        raise RuntimeError("audit log full")

    d = ScaleDispatcher({"boom": Boom()}, callback, workers=1, burst=10).start()
    try:
        d.submit(req(executor="boom", capacity=1))
        d.submit(req(executor="boom", capacity=2))
        wait_until(lambda: len(seen) == 2)
    finally:
        d.stop()
    assert [x["status"] for x in seen] == ["failed", "succeeded"]
    assert seen[0]["error"] == "RuntimeError: executor bug"


def test_metrics_and_stop_drops_what_is_queued(receiver):
    r = receiver(lambda s, rec: rec.hang(s, rec))
    results = Results()
    d = ScaleDispatcher({"hook": hook(r.url, timeout_s=0.3, retries=0)}, results, workers=1, queue_max=4,
                        burst=10).start()
    d.submit(req("r0"))
    wait_until(lambda: d.counters()["in_flight"] == 1)
    d.submit(req("r1"))
    d.submit(req("r1"))  # deduplicated
    t0 = time.monotonic()
    assert d.stop(timeout=3)
    assert time.monotonic() - t0 < 1.5
    assert d.submit(req("r2")) == "dropped"
    assert results.by_status() == {"deduplicated": 1, "dropped": 2, "failed": 1}
    reg = CollectorRegistry()

    class C:
        def collect(self):
            yield from d.metric_families()

    reg.register(C())
    text = generate_latest(reg).decode()
    assert 'pfepo_scale_requests_total{status="dropped"} 2.0' in text
    assert 'pfepo_scale_requests_total{status="deduplicated"} 1.0' in text
    assert 'pfepo_scale_requests_total{status="submitted"} 4.0' in text
    assert 'pfepo_scale_queue{state="queued"} 0.0' in text


def test_dispatcher_config_feeds_the_constructor():
    from pfepo.actions.config import DispatcherConfig

    cfg = DispatcherConfig(workers=3, burst=1)
    d = ScaleDispatcher({}, None, **cfg.model_dump())
    assert (d.workers, d.burst, d._queue.maxsize, d.dedup_window_s, d.rate_per_s) == (3, 1, 64, 600.0, 0.1)
    d.start()
    assert d.submit(req()) == "failed"  # no executor called "hook"
    assert d.stop(1)


def test_submit_actions_takes_the_scale_actions_of_a_plan(receiver):
    r = receiver(lambda s, rec: (200, {}, b"ok"))
    results = Results()
    d = ScaleDispatcher({"hook": hook(r.url)}, results, burst=10).start()
    base = {"ts": 7.0, "service": "shop", "from_region": "eu", "policy": "p", "dry_run": False}
    actions = [{**base, "type": "allocate_bandwidth", "region": "us", "add_mbps": 50.0, "add_percent": None},
               {**base, "type": "scale_application", "region": "us", "application": "web",
                "desired_capacity": 4, "executor": "hook"},
               {**base, "type": "scale_application", "region": "ap", "application": "web",
                "desired_capacity": 4, "executor": "hook"}]
    try:
        assert d.submit_actions(actions) == ["queued", "queued"]
        results.wait(2)
    finally:
        d.stop()
    assert sorted(x["region"] for x in results.records) == ["ap", "us"] and len(r.requests) == 2
