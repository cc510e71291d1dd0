"""ScaleDispatcher: hands scale requests to executors on worker threads, never blocking the caller.

The planner's thread calls :meth:`ScaleDispatcher.submit`, which only does dictionary look-ups and a
non-blocking queue put; executors run on a small pool of worker threads behind a bounded queue. So a
failing, slow or hanging scaler costs at most its workers and then queue slots - further requests are
*dropped and counted*, traffic decisions go on.

Before queueing, a request is checked against:

* **dedup** - a request whose idempotency key was accepted within ``dedup_window_s`` and did not fail is
  not sent again (a failed one may be re-submitted, subject to the rate limit);
* **rate limit** - a token bucket per (executor, target): ``burst`` calls at once, refilled at
  ``rate_per_min``. Rejected requests are reported, not queued for later.

Every submission ends in exactly one ``on_result(record)`` call (rejections at once, executed requests
when they finish); the daemon connects this to the audit log.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pfepo.actions.executors import ExecutionResult, Executor, ScaleRequest

log = logging.getLogger(__name__)

COUNTERS = ("submitted", "succeeded", "failed", "deduplicated", "rate_limited", "dropped", "dry_run")


@dataclass
class _Bucket:
    tokens: float
    at: float


class ScaleDispatcher:
    """``submit(request) -> status``; ``start()`` / ``stop()``; ``counters()`` and ``metric_families()``.

    ``clock`` is monotonic time for dedup windows and rate limits, ``wall`` stamps the records; both are
    injectable for tests.
    """

    def __init__(self, executors: Mapping[str, Executor], on_result: Callable[[dict], Any] | None = None, *,
                 workers: int = 2, queue_max: int = 64, dedup_window_s: float = 600.0,
                 rate_per_min: float = 6.0, burst: int = 2,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        if workers < 1 or queue_max < 1 or burst < 1 or rate_per_min <= 0 or dedup_window_s < 0:
            raise ValueError("workers, queue_max, burst >= 1; rate_per_min > 0; dedup_window_s >= 0")
        self.executors = dict(executors)
        self.on_result = on_result
        self.workers = workers
        self.dedup_window_s = dedup_window_s
        self.rate_per_s = rate_per_min / 60.0
        self.burst = burst
        self._clock = clock
        self._wall = wall
        self._queue: queue.Queue[tuple[ScaleRequest, str, float] | None] = queue.Queue(maxsize=queue_max)
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}  # idempotency key -> when accepted
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- caller side ---------------------------------------------------------------------------------------
    def start(self) -> ScaleDispatcher:
        if not self._threads:
            for i in range(self.workers):
                t = threading.Thread(target=self._work, name=f"pfepo-scaler-{i}", daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def submit(self, request: ScaleRequest) -> str:
        """Accept or reject at once; returns queued, deduplicated, rate_limited, dropped, dry_run or failed."""
        key = request.idempotency_key
        ex = self.executors.get(request.executor)
        with self._lock:
            self._counts["submitted"] += 1
            if ex is None:
                self._counts["failed"] += 1
                status, detail = "failed", f"unknown executor {request.executor!r}"
                target = ""
            else:
                try:
                    target = ex.target(request)
                except Exception as exc:  # a bad template value: report, never raise into the planner
                    target, status, detail = "", "failed", f"cannot name target: {exc}"
                    self._counts["failed"] += 1
                else:
                    status, detail = self._admit(request, key, target)
        if status != "queued":
            self._report(request, status, target, detail=detail)
        return status

    def submit_action(self, action: Mapping[str, Any]) -> str:
        """Convenience for planner action dicts; a malformed action is reported as failed."""
        try:
            request = ScaleRequest.from_action(action)
        except (ValueError, TypeError) as exc:
            with self._lock:
                self._counts["submitted"] += 1
                self._counts["failed"] += 1
            self._emit({"event": "scale", "status": "failed", "detail": f"bad action: {exc}",
                        "action": dict(action), "ts": self._wall()})
            return "failed"
        return self.submit(request)

    def submit_actions(self, actions: Iterable[Mapping[str, Any]]) -> list[str]:
        """Every ``scale_application`` and ``drain_hook`` action of a plan (``Plan.actions``); other types
        (bandwidth requests) are ignored."""
        return [self.submit_action(a) for a in actions if a.get("type") in ("scale_application", "drain_hook")]

    def _admit(self, request: ScaleRequest, key: str, target: str) -> tuple[str, str]:
        """Under the lock: dry-run, dedup, rate limit, then a non-blocking enqueue."""
        now = self._clock()
        if self._stopping:
            self._counts["dropped"] += 1
            return "dropped", "dispatcher stopped"
        if request.dry_run:
            self._counts["dry_run"] += 1
            return "dry_run", "dry run: not sent"
        self._expire(now)
        if key in self._seen:
            self._counts["deduplicated"] += 1
            return "deduplicated", f"same idempotency key accepted {now - self._seen[key]:.1f} s ago"
        bkey = (request.executor, target)
        b = self._buckets.get(bkey)
        if b is None:
            b = self._buckets[bkey] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate_per_s)
        b.at = now
        if b.tokens < 1.0:
            self._counts["rate_limited"] += 1
            wait = (1.0 - b.tokens) / self.rate_per_s
            return "rate_limited", f"{request.executor}/{target}: next call allowed in {wait:.1f} s"
        try:
            self._queue.put_nowait((request, target, now))
        except queue.Full:
            self._counts["dropped"] += 1
            return "dropped", f"queue full ({self._queue.maxsize} waiting)"
        b.tokens -= 1.0
        self._seen[key] = now
        return "queued", ""

    def _expire(self, now: float) -> None:
        for k in [k for k, t in self._seen.items() if now - t >= self.dedup_window_s]:
            del self._seen[k]

    # -- worker side ---------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            request, target, queued_at = item
            with self._lock:
                self._in_flight += 1
            ex = self.executors[request.executor]
            try:
                result = ex.execute(request)
            except Exception as exc:  # an executor bug must not kill the worker
                log.exception("executor %s raised", request.executor)
                result = ExecutionResult(False, "executor raised", 0, 0.0, None, f"{type(exc).__name__}: {exc}")
            with self._lock:
                self._in_flight -= 1
                self._counts["succeeded" if result.ok else "failed"] += 1
                if not result.ok:
                    # A failed call may be retried by a later submission of the same decision.
                    self._seen.pop(request.idempotency_key, None)
            self._report(request, "succeeded" if result.ok else "failed", target, result=result,
                         queued_s=self._clock() - queued_at)

    def _report(self, request: ScaleRequest, status: str, target: str, *, detail: str = "",
                result: ExecutionResult | None = None, queued_s: float | None = None) -> None:
        ex = self.executors.get(request.executor)
        rec: dict[str, Any] = {
            "event": "scale" if request.action == "scale" else "drain_hook", "action": request.action,
            "status": status, "ts": self._wall(),
            "executor": request.executor, "executor_type": getattr(ex, "kind", None), "target": target,
            "service": request.service, "region": request.region, "application": request.application,
            "desired_capacity": request.desired_capacity, "decision_id": request.decision_id,
            "idempotency_key": request.idempotency_key, "reason": request.reason, "dry_run": request.dry_run,
        }
        if result is not None:
            rec.update(detail=result.detail, ok=result.ok, attempts=result.attempts,
                       duration_s=round(result.duration_s, 4), result_status=result.status, error=result.error,
                       output=result.output)
            if queued_s is not None:
                rec["queued_s"] = round(max(queued_s - result.duration_s, 0.0), 4)
        else:
            rec["detail"] = detail
        self._emit(rec)

    def _emit(self, rec: dict) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(rec)
        except Exception:
            log.exception("scale result callback failed")

    # -- lifecycle and observability -----------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> bool:
        """Refuse new work, report queued requests as dropped, wait up to ``timeout`` for running calls.

        Returns True when every worker finished; a worker stuck in a hung call is a daemon thread and is
        abandoned (its executor was told to close, which ends backoff waits).
        """
        with self._lock:
            self._stopping = True
        pending = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                pending.append(item)
        for request, target, _ in pending:
            with self._lock:
                self._counts["dropped"] += 1
            self._report(request, "dropped", target, detail="dispatcher stopped before the call")
        for ex in self.executors.values():
            try:
                ex.close()
            except Exception:
                log.exception("closing executor failed")
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:  # cannot happen after draining, but never block in stop()
                break
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        self._threads = [t for t in self._threads if t.is_alive()]
        return done

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {**self._counts, "queued": self._queue.qsize(), "in_flight": self._in_flight}

    def metric_families(self) -> Iterator:
        """For ``Metrics.add_collector``: ``pfepo_scale_requests_total{status}`` and queue gauges."""
        c = self.counters()
        fam = CounterMetricFamily("pfepo_scale_requests", "scale requests by outcome", labels=["status"])
        for k in COUNTERS:
            fam.add_metric([k], c[k])
        yield fam
        g = GaugeMetricFamily("pfepo_scale_queue", "scale requests waiting / running", labels=["state"])
        g.add_metric(["queued"], c["queued"])
        g.add_metric(["in_flight"], c["in_flight"])
        yield g
