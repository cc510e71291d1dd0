"""Pulled application signals: HTTP health checks and Prometheus text scrapes, turned into Samples.

Both pollers run one daemon thread per target, so a hanging endpoint delays only its own checks (and
each check is bounded by its timeout). Nothing here raises into the caller: network errors, bad
statuses, malformed exposition text and a failing ``emit`` callback are recorded in :meth:`status`
and logged. ``clock`` (wall time for sample timestamps and counter rates) is injectable, and
``check_once`` runs one check synchronously so tests need no threads or sleeps.

Samples produced (``subject`` = endpoint name, tags as given, e.g. ``region``):

* ``health_up`` 1/0 - 1 when the response status is one of ``expected_status``;
* ``response_ms`` - time to the response headers, emitted whenever a response arrived (any status);
* for scrapes, one sample per configured metric mapping (e.g. ``cpu_pct``, ``mem_pct``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pfepo.actions.config import HealthCheckConfig, ScrapeConfig, ScrapeMetric
from pfepo.api.redact import redact_url
from pfepo.telemetry.samples import Sample

log = logging.getLogger(__name__)

Emit = Callable[[list[Sample]], Any]
USER_AGENT = "pfepo-health/1"


class _Poller:
    """Per-target polling threads with a stop event; subclasses implement ``_check``."""

    source = "poll"

    def __init__(self, targets: Mapping[str, Any], emit: Emit, *,
                 tags: Mapping[str, Mapping[str, str]] | None = None, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None):
        self.targets = dict(targets)
        self.emit = emit
        self._clock = clock
        self._transport = transport  # tests may inject httpx.MockTransport; normally None
        # Only the caller's tags (e.g. region, as pushed samples carry): a "source" tag would split one
        # series (say cpu_pct pushed and scraped) into two in tag-indexed stores such as InfluxDB.
        self._tags = {s: tuple(sorted((tags or {}).get(s, {}).items())) for s in self.targets}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._status: dict[str, dict[str, Any]] = {
            s: {"checks": 0, "failures": 0, "consecutive_failures": 0, "ok": None, "error": None,
                "checked_at": None} for s in self.targets}

    def _client(self, cfg: Any) -> httpx.Client:
        return httpx.Client(verify=cfg.verify_tls, follow_redirects=False, transport=self._transport,
                            headers={"User-Agent": USER_AGENT})

    def start(self) -> _Poller:
        """One thread per target, start times spread over the first interval."""
        if self._threads:
            return self
        self._stop.clear()
        n = max(len(self.targets), 1)
        for i, (subject, cfg) in enumerate(self.targets.items()):
            t = threading.Thread(target=self._run, args=(subject, cfg, cfg.interval_s * i / n),
                                 name=f"pfepo-{self.source}-{subject}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Signal every thread and wait; returns True when all ended (a check in progress ends at its timeout)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        self._threads = alive
        return not alive

    def _run(self, subject: str, cfg: Any, delay: float) -> None:
        if self._stop.wait(delay):
            return
        try:
            client = self._client(cfg)
        except Exception:  # e.g. an unreadable CA bundle: this target cannot be polled at all
            log.exception("%s: cannot create an HTTP client for %s", self.source, subject)
            with self._lock:
                self._status[subject].update(ok=False, error="cannot create HTTP client (see log)")
            return
        with client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self._deliver(self.check_once(subject, client))
                next_at += cfg.interval_s
                now = time.monotonic()
                if next_at < now:  # a slow check: skip missed slots instead of bursting to catch up
                    next_at = now
                self._stop.wait(next_at - now)

    def _deliver(self, samples: list[Sample]) -> None:
        if not samples:
            return
        try:
            self.emit(samples)
        except Exception:
            log.exception("%s: emit failed", self.source)

    def check_once(self, subject: str, client: httpx.Client | None = None) -> list[Sample]:
        """Run one check now and return its samples (also updates :meth:`status`); never raises."""
        cfg = self.targets[subject]
        own = client is None
        if own:
            client = self._client(cfg)
        try:
            samples, info = self._check(subject, cfg, client)
        except Exception as exc:  # a bug or an unforeseen library error: recorded, not raised
            log.exception("%s check of %s failed", self.source, subject)
            samples, info = [], {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            if own:
                client.close()
        with self._lock:
            st = self._status[subject]
            st.update(info)
            st["checks"] += 1
            st["checked_at"] = self._clock()
            if info.get("ok"):
                st["consecutive_failures"] = 0
            else:
                st["failures"] += 1
                st["consecutive_failures"] += 1
        return samples

    def _check(self, subject: str, cfg: Any, client: httpx.Client) -> tuple[list[Sample], dict[str, Any]]:
        raise NotImplementedError

    def status(self) -> dict[str, dict[str, Any]]:
        """Last outcome per target, for the REST API."""
        with self._lock:
            return {s: dict(v) for s, v in self._status.items()}

    def _sample(self, subject: str, ts: float, metric: str, value: float) -> Sample:
        return Sample(ts, subject, metric, float(value), self._tags[subject])


class HealthChecker(_Poller):
    """HTTP checks per endpoint (``HealthCheckConfig``): ``health_up`` and ``response_ms`` samples."""

    source = "health"

    def _check(self, subject: str, cfg: HealthCheckConfig, client: httpx.Client):
        ts = self._clock()
        t0 = time.perf_counter()
        try:
            # Streamed: the status and timing come from the headers; the body is never read, so a
            # server trickling a large body cannot stretch a check.
            with client.stream(cfg.method, cfg.url, timeout=cfg.timeout_s) as resp:
                ms = (time.perf_counter() - t0) * 1000.0
                code = resp.status_code
        except httpx.TimeoutException:
            err = f"timeout after {cfg.timeout_s:g} s"
            return [self._sample(subject, ts, "health_up", 0)], {"ok": False, "error": err, "status_code": None,
                                                                 "response_ms": None}
        except httpx.HTTPError as exc:
            err = redact_url(f"{type(exc).__name__}: {exc}")  # shown by /api/v1/scaling
            return [self._sample(subject, ts, "health_up", 0)], {"ok": False, "error": err, "status_code": None,
                                                                 "response_ms": None}
        up = code in cfg.expected_status
        samples = [self._sample(subject, ts, "health_up", 1 if up else 0),
                   self._sample(subject, ts, "response_ms", ms)]
        err = None if up else f"status {code} not in {cfg.expected_status}"
        return samples, {"ok": up, "error": err, "status_code": code, "response_ms": round(ms, 3)}


class PromScraper(_Poller):
    """Scrape a Prometheus text endpoint per endpoint (``ScrapeConfig``) and map series to samples.

    Per mapping, series with the given sample name and label values are combined by ``aggregate``; with
    ``rate: true`` the per-second increase since the previous scrape is used (first scrape and counter
    resets emit nothing); then ``scale`` is applied. Non-finite values are dropped.
    """

    source = "scrape"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._prev: dict[tuple[str, str], tuple[float, float]] = {}

    def _fetch(self, cfg: ScrapeConfig, client: httpx.Client) -> str:
        """The body, bounded in size and (roughly) in total time."""
        deadline = time.monotonic() + cfg.timeout_s
        chunks, size = [], 0
        headers = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"}
        with client.stream("GET", cfg.url, timeout=cfg.timeout_s, headers=headers) as resp:
            if resp.status_code != 200:
                raise _ScrapeError(f"status {resp.status_code}", resp.status_code)
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > cfg.max_bytes:
                    raise _ScrapeError(f"body larger than max_bytes={cfg.max_bytes}", 200)
                if time.monotonic() > deadline:
                    raise _ScrapeError(f"body not complete within {cfg.timeout_s:g} s", 200)
                chunks.append(chunk)
            return b"".join(chunks).decode("utf-8", errors="replace")

    def _check(self, subject: str, cfg: ScrapeConfig, client: httpx.Client):
        ts = self._clock()
        try:
            text = self._fetch(cfg, client)
        except _ScrapeError as exc:
            return [], {"ok": False, "error": str(exc), "status_code": exc.status}
        except httpx.TimeoutException:
            return [], {"ok": False, "error": f"timeout after {cfg.timeout_s:g} s", "status_code": None}
        except httpx.HTTPError as exc:
            return [], {"ok": False, "error": f"{type(exc).__name__}: {exc}", "status_code": None}
        wanted: dict[str, list[tuple[str, ScrapeMetric]]] = {}
        for metric, spec in cfg.metrics.items():
            wanted.setdefault(spec.name, []).append((metric, spec))
        found: dict[str, list[float]] = {m: [] for m in cfg.metrics}
        try:
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    for metric, spec in wanted.get(s.name, ()):
                        if all(s.labels.get(k) == v for k, v in spec.labels.items()):
                            found[metric].append(float(s.value))
        except Exception as exc:  # the parser raises ValueError/IndexError/... on malformed text
            return [], {"ok": False, "error": f"unparsable exposition: {type(exc).__name__}: {exc}",
                        "status_code": 200}
        samples, missing = [], []
        for metric, spec in cfg.metrics.items():
            values = [v for v in found[metric] if math.isfinite(v)]
            if not values:
                missing.append(metric)
                continue
            value = _aggregate(spec.aggregate, values)
            if spec.rate:
                prev = self._prev.get((subject, metric))
                self._prev[(subject, metric)] = (ts, value)
                if prev is None or ts <= prev[0] or value < prev[1]:
                    continue  # no baseline yet, clock went back, or the counter reset
                value = (value - prev[1]) / (ts - prev[0])
            value *= spec.scale
            if math.isfinite(value):
                samples.append(self._sample(subject, ts, metric, value))
        err = f"no series for: {', '.join(missing)}" if missing else None
        return samples, {"ok": not missing, "error": err, "status_code": 200, "missing": missing,
                         "values": {s.metric: s.value for s in samples}}


class _ScrapeError(Exception):
    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status


def _aggregate(how: str, values: list[float]) -> float:
    if how == "sum":
        return math.fsum(values)
    if how == "avg":
        return math.fsum(values) / len(values)
    return max(values) if how == "max" else min(values)


def pollers_for(regions: Iterable[Any], emit: Emit, **kwargs: Any) -> tuple[HealthChecker, PromScraper]:
    """Both pollers for the endpoints of a daemon config that have ``health`` / ``scrape`` settings.

    Samples are tagged with the endpoint's region, like pushed signals. Either poller may have no
    targets; starting and stopping an empty one is a no-op.
    """
    health: dict[str, HealthCheckConfig] = {}
    scrape: dict[str, ScrapeConfig] = {}
    tags: dict[str, dict[str, str]] = {}
    for r in regions:
        for e in r.endpoints:
            tags[e.name] = {"region": r.name}
            if getattr(e, "health", None) is not None:
                health[e.name] = e.health
            if getattr(e, "scrape", None) is not None:
                scrape[e.name] = e.scrape
    return HealthChecker(health, emit, tags=tags, **kwargs), PromScraper(scrape, emit, tags=tags, **kwargs)
