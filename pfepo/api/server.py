"""The daemon's REST API: JSON under /api/v1, Prometheus text at /metrics.

Handlers only read the controller state or call its validated setters; nothing here talks OpenFlow.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from pfepo import __version__
from pfepo.controller.state import WeightError
from pfepo.signals_push import pushable_subjects, validate_signals

log = logging.getLogger("pfepo.api")


class TokenBucket:
    """Items per second across all pushers; a flood is refused with 429, not queued without bound."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = rate
        self.capacity = burst or rate
        self.tokens = self.capacity
        self.t = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if n > self.tokens:
                return False
            self.tokens -= n
            return True


class BandwidthBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bandwidth_mbps: dict[str, Any]


class WeightsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: dict[str, Any]


def _sample_dict(s) -> dict:
    return {"ts": s.ts, "subject": s.subject, "metric": s.metric, "value": s.value, "tags": dict(s.tags)}


def create_app(rt) -> FastAPI:
    app = FastAPI(title="PF-EPO", version=__version__)
    st = rt.state

    @app.get("/api/v1/health")
    def health():
        connected, configured = st.connected_count()  # not snapshot_switches: O(ports) under the state lock
        problem = rt.openflow_problem()  # event loop stopped/stalled: 503 with the reason
        body = {
            "status": "ok" if problem is None else "unavailable",
            "version": __version__,
            "uptime_s": round(time.time() - st.started_at, 3),
            "switches_connected": connected,
            "switches_configured": configured,
            "dry_run": rt.cfg.dry_run,
            "polling": rt.polling_status(),  # overloaded -> longer effective interval, said here
        }
        if problem is not None:
            body["problem"] = problem
            return JSONResponse(body, status_code=503)
        return body

    @app.get("/api/v1/switches")
    def switches():
        out = []
        for sw in st.switches.values():
            out.append({
                "name": sw.name,
                "dpid": sw.dpid,
                "connected": sw.connected,
                "ports": {
                    str(p): {"up": info.up, "rates": info.rates.as_metrics() if info.rates else None}
                    for p, info in sorted(sw.ports.items())
                },
            })
        unknown = [{"dpid": d, "seen_at": t} for d, t in st.unknown_switches.items()]
        return {"switches": out, "unknown_switches": unknown}

    @app.get("/api/v1/regions")
    def regions():
        down = st.down_regions()
        return {"regions": [
            {
                "name": r.name,
                "switch": r.switch,
                "up": r.name not in down,
                "uplink": r.uplink.model_dump(),
                "endpoints": [e.model_dump() for e in r.endpoints],
            }
            for r in rt.cfg.regions
        ]}

    @app.get("/api/v1/services")
    def services():
        return {"services": st.snapshot_services()}

    @app.get("/api/v1/services/{name}")
    def service(name: str):
        for s in st.snapshot_services():
            if s["name"] == name:
                return s
        raise HTTPException(404, f"unknown service {name!r}")

    @app.put("/api/v1/services/{name}/weights")
    def set_weights(name: str, body: WeightsBody):
        try:
            shares = st.set_desired(name, body.weights, source="operator")
        except KeyError:
            rt.metrics.overrides_rejected.inc()
            raise HTTPException(404, f"unknown service {name!r}") from None
        except WeightError as exc:
            rt.metrics.overrides_rejected.inc()
            raise HTTPException(422, str(exc)) from None
        rt.metrics.overrides.inc()
        rt.record_event("weight_override", service=name, shares=shares)
        return service(name)

    sig_cfg = rt.cfg.signals
    sig_token = sig_cfg.resolved_token()
    sig_known = pushable_subjects(rt.cfg.regions)
    sig_bucket = TokenBucket(sig_cfg.max_items_per_s, max(sig_cfg.max_items_per_s, sig_cfg.max_items))

    def _refuse(status: int, reason: str, kind: str) -> JSONResponse:
        rt.metrics.signals.labels(kind).inc()
        return JSONResponse({"detail": reason}, status_code=status)

    @app.post("/api/v1/signals")
    async def push_signals(request: Request):
        """Batch of {endpoint, metric, value, timestamp?}; bearer token; per-item rejections reported."""
        import hmac
        import json as _json

        if sig_token is None:
            return _refuse(403, "signal push is disabled: set signals.token in the daemon config", "disabled")
        auth = request.headers.get("authorization", "")
        if not (auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].encode(), sig_token.encode())):
            return _refuse(401, "missing or wrong bearer token", "unauthorized")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > sig_cfg.max_body_bytes:
            return _refuse(413, f"body over {sig_cfg.max_body_bytes} bytes", "too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > sig_cfg.max_body_bytes:
                return _refuse(413, f"body over {sig_cfg.max_body_bytes} bytes", "too_large")
        try:
            items = _json.loads(body)
            good, bad = validate_signals(items, sig_known, time.time(), sig_cfg.max_items)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            return _refuse(400, f"malformed batch: {exc}", "malformed")
        if not sig_bucket.take(len(good)):
            return _refuse(429, f"rate limit of {sig_cfg.max_items_per_s:g} signals/s exceeded; retry later",
                           "rate_limited")
        if good:
            rt.ingest(good)
        rt.metrics.signals.labels("accepted").inc(len(good))
        rt.metrics.signals.labels("rejected").inc(len(bad))
        return {"accepted": len(good), "rejected": [{"index": b.index, "reason": b.reason} for b in bad]}

    @app.put("/api/v1/services/{name}/bandwidth")
    def set_bandwidth(name: str, body: BandwidthBody):
        """Operator bandwidth allocation per region (Mbit/s, null = unmetered); regions not named keep theirs."""
        try:
            out = st.set_bandwidth(name, body.bandwidth_mbps, source="operator")
        except KeyError:
            raise HTTPException(404, f"unknown service {name!r}") from None
        except WeightError as exc:
            raise HTTPException(422, str(exc)) from None
        rt.record_event("bandwidth_override", service=name, bandwidth_mbps=out)
        return service(name)

    @app.get("/api/v1/subjects")
    def subjects():
        return {"subjects": rt.store.subjects()}

    @app.get("/api/v1/samples")
    def samples(
        subject: str = Query(..., description="endpoint name, uplink:REGION or SWITCH:PORT"),
        metric: str | None = None,
        since: float | None = Query(None, description="epoch seconds"),
        limit: int = Query(100, ge=1, le=10000),
    ):
        if since is not None:
            rows = rt.store.range(subject=subject, metric=metric, start=since, limit=limit)
        else:
            rows = rt.store.last(subject, metric, n=limit)
        return {"subject": subject, "samples": [_sample_dict(s) for s in rows]}

    @app.get("/api/v1/events")
    def events(limit: int = Query(100, ge=1, le=10000)):
        return {"events": list(rt.events)[-limit:]}

    @app.get("/api/v1/policies")
    def policies():
        """Active policy set (version, names) and the last rejected edit's problems, if any."""
        if rt.reloader is None:
            return {"enabled": False}
        return {"enabled": True, **rt.reloader.status(), "dry_run": rt.cfg.dry_run}

    @app.get("/api/v1/decisions")
    def decisions():
        """Latest non-ok decisions and the latest plan (planner states per service and region)."""
        loop = rt.loop
        if loop is None:
            return {"decisions": [], "plan": None}
        return {"ticks": loop.ticks, "errors": loop.errors, "decisions": loop.last_decisions, "plan": loop.last_plan}

    @app.get("/api/v1/predictions")
    def predictions():
        """Latest P(failure within horizon) per endpoint, with predicted values and drivers."""
        if rt.predictor is None:
            return {"enabled": False, "predictions": {}}
        out = {ep: {"probability": p.probability, "horizon_s": p.horizon_s, "ts": p.ts, "model": p.model,
                    "predicted": p.predicted, "drivers": [list(d) for d in p.drivers]}
               for ep, p in rt.predictor.latest().items()}
        return {"enabled": True, "stats": rt.predictor.stats(), "predictions": out}

    @app.get("/api/v1/rootcause")
    def rootcause(limit: int = Query(20, ge=1, le=1000)):
        """Root-cause reports after failures, newest first, with proposed/applied act adjustments."""
        lr = rt.learner
        if lr is None:
            return {"enabled": False, "reports": []}
        return {"enabled": True, "stats": lr.stats(), "adjustments": lr.adjustments(), "reports": lr.reports(limit)}

    @app.get("/api/v1/rootcause/{rid}")
    def rootcause_one(rid: str):
        rep = rt.learner.report(rid) if rt.learner is not None else None
        if rep is None:
            raise HTTPException(404, f"unknown root-cause report {rid!r}")
        return rep

    @app.get("/api/v1/audit")
    def audit(since: float | None = None, service: str | None = None, kind: str | None = None,
              region: str | None = None, limit: int = Query(200, ge=1, le=10000)):
        if rt.audit is None:
            return {"records": []}
        return {"records": rt.audit.query(since=since, service=service, kind=kind, limit=limit, region=region)}

    @app.get("/api/v1/scaling")
    def scaling():
        d = rt.dispatcher
        return {"counters": d.counters() if d else {}, "health": [p.status() for p in rt.pollers]}

    @app.get("/metrics")
    def metrics():
        return PlainTextResponse(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class ApiServer:
    """uvicorn in a daemon thread; ``port=0`` picks a free port (see ``bound_port``)."""

    def __init__(self, app: FastAPI, host: str, port: int):
        import uvicorn

        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="rest-api", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"REST API failed to start on {self.config.host}:{self.config.port}")
            time.sleep(0.02)

    @property
    def bound_port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
