"""The daemon's REST API: JSON under /api/v1, Prometheus text at /metrics.

Handlers only read the controller state or call its validated setters; nothing here talks OpenFlow.
Every request passes ``guard.Guard`` first (Host allow-list, bearer-token role, body cap); state-changing
bodies are parsed by ``body.parse_json`` (strict JSON) and every answer is redacted (``redact``).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from pfepo import __version__, console
from pfepo.api import scale
from pfepo.api.auth import ANONYMOUS, TokenTable, load_tokens
from pfepo.api.body import BodyError, parse_json
from pfepo.api.guard import Guard
from pfepo.api.overrides import safety_problem
from pfepo.api.redact import redact
from pfepo.controller.state import BandwidthError, WeightError
from pfepo.planner.weights import bandwidth_problem, weight_problem
from pfepo.signals.push import pushable_subjects, validate_signals

log = logging.getLogger("pfepo.api")

_PATH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
NOT_SAVED = "not saved, nothing changed"


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


class RedactedJSONResponse(JSONResponse):
    """Every JSON answer goes through ``redact``: no URL credentials or secret-named values leave."""

    def render(self, content: Any) -> bytes:
        # ASCII-escaped so a lone surrogate that reached a message can still be encoded
        return json.dumps(redact(content), ensure_ascii=True, allow_nan=False, separators=(",", ":"),
                          default=str).encode("ascii")


def _safe_errors(exc: RequestValidationError) -> list[dict]:
    """Validation errors without the offending input (which may hold NaN, huge numbers or secrets)."""
    out = []
    for e in exc.errors()[:20]:
        out.append({"loc": [str(p)[:64] for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200],
                    "type": str(e.get("type", ""))})
    return out


def _name_or_404(name: str, what: str) -> str:
    if not _PATH_NAME.match(name):
        raise HTTPException(404, f"unknown {what}")
    return name


def _finite_or_422(v: float | None, what: str) -> float | None:
    if v is not None and not math.isfinite(v):
        raise HTTPException(422, f"{what} must be a finite number")
    return v


async def _json_object(request: Request, field: str, allowed: set[str]) -> dict:
    """The request body as a strict JSON object with a mapping under ``field`` and no other keys."""
    try:
        data = parse_json(await request.body(), max_depth=8, max_keys=1000)
    except BodyError as exc:
        raise HTTPException(400, f"bad body: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPException(422, f"body must be a JSON object with {field!r}")
    extra = sorted(set(data) - allowed)
    if extra:
        raise HTTPException(422, f"unknown key(s): {', '.join(repr(k[:40]) for k in extra[:10])}")
    if not isinstance(data.get(field), dict):
        raise HTTPException(422, f"{field!r} must be an object mapping region to value")
    return data


def _body_doc(field: str, value: dict, extra: dict | None = None) -> dict:
    """OpenAPI request body for a handler that parses its body itself (strict JSON, see body.py)."""
    schema = {"type": "object", "additionalProperties": False, "required": [field],
              "properties": {field: {"type": "object", "additionalProperties": value}, **(extra or {})}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _principal(request: Request):
    return getattr(request.state, "principal", ANONYMOUS)

def _sample_dict(s) -> dict:
    return {"ts": s.ts, "subject": s.subject, "metric": s.metric, "value": s.value, "tags": dict(s.tags)}


def create_app(rt, tokens: TokenTable | None = None) -> FastAPI:
    """The app behind its guard. ``tokens`` default to ``rt.cfg.rest.tokens`` (TokenError if unusable)."""
    rest = rt.cfg.rest
    tokens = load_tokens(rest) if tokens is None else tokens
    app = FastAPI(title="PF-EPO", version=__version__, default_response_class=RedactedJSONResponse,
                  docs_url="/docs" if rest.docs else None, redoc_url=None,
                  openapi_url="/openapi.json" if rest.docs else None)
    st = rt.state
    refused = _refusal_counter(rt)
    app.add_middleware(Guard, tokens=tokens, allowed_hosts=[rest.host, *rest.allowed_hosts],
                       open_reads=rest.open_reads, max_body_bytes=rest.max_body_bytes,
                       self_authenticated=[("POST", "/api/v1/signals"), *console.GUARD_SELF_AUTH],
                       on_refuse=refused)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        return RedactedJSONResponse({"detail": _safe_errors(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        return RedactedJSONResponse({"detail": str(exc.detail)[:2000]}, status_code=exc.status_code,
                                    headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception):
        log.exception("API handler failed")  # the traceback goes to the log, never to the client
        return RedactedJSONResponse({"detail": f"internal error ({exc.__class__.__name__})"}, status_code=500)

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
            "storage": _storage_health(rt),
        }
        if getattr(rt, "cluster", None) is not None:  # etcd reachable, our role per switch, claims held
            body["cluster"] = rt.cluster.status()
        if problem is not None:
            body["problem"] = problem
            return RedactedJSONResponse(body, status_code=503)
        return body

    @app.get("/api/v1/switches")
    def switches():
        out = []
        for sw in st.switches.values():
            rates = sw.current_rates()  # built from the switch's rate arrays (state.SwitchInfo.port_rates)
            out.append({
                "name": sw.name,
                "dpid": sw.dpid,
                "connected": sw.connected,
                "ports": {
                    str(p): {"up": info.up, "rates": rates[p].as_metrics() if p in rates else None}
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
        _name_or_404(name, "service")
        for s in st.snapshot_services():
            if s["name"] == name:
                return s
        raise HTTPException(404, f"unknown service {name!r}")

    def _audit(kind: str, request: Request, **fields) -> None:
        who = _principal(request)
        rt.record_event(kind, by=who.name, **fields)
        if rt.audit is not None:
            rt.audit.append(kind, {**fields, "by": who.name, "role": who.role, "source": "rest"})

    @app.put("/api/v1/services/{name}/weights", openapi_extra=_body_doc(
        "weights", {"type": "number", "minimum": 0, "maximum": 1e6},
        {"force": {"type": "boolean", "description": "admin only: past the policies' safety rules"}}))
    async def set_weights(name: str, request: Request):
        """Operator split; refused (409) past the policies' safety rules unless an admin sends force."""
        data = await _json_object(request, "weights", {"weights", "force"})
        force = data.get("force", False)
        if not isinstance(force, bool):
            raise HTTPException(422, "'force' must be true or false")
        if force and not _principal(request).can("admin"):
            rt.metrics.overrides_rejected.inc()
            raise HTTPException(403, "'force' needs an admin token")
        if name not in st.baseline:
            rt.metrics.overrides_rejected.inc()
            raise HTTPException(404, f"unknown service {name[:64]!r}")
        weights = data["weights"]
        problems = [p for k, v in weights.items() if (p := weight_problem(str(k)[:40], v))]
        try:
            if problems:
                raise WeightError(problems[0])
            shares = st.validate_weights(name, weights)
        except WeightError as exc:
            rt.metrics.overrides_rejected.inc()
            raise HTTPException(422, str(exc)) from None
        reloader = rt.reloader
        policies = reloader.current.policies if reloader is not None and reloader.current is not None else ()
        problem = safety_problem(rt.cfg, policies, name, shares, st.down_regions())
        if problem and not force:
            rt.metrics.overrides_rejected.inc()
            raise HTTPException(409, problem)
        before = dict(st.baseline[name])
        try:
            shares = await run_in_threadpool(st.set_baseline, name, weights, "operator")
        except KeyError:
            rt.metrics.overrides_rejected.inc()
            raise HTTPException(404, f"unknown service {name[:64]!r}") from None
        except WeightError as exc:
            rt.metrics.overrides_rejected.inc()
            raise HTTPException(422, str(exc)) from None
        except OSError as exc:
            rt.metrics.overrides_rejected.inc()
            log.error("weight override of %s not saved: %s", name, exc)
            raise HTTPException(503, f"{NOT_SAVED}: cannot save the state ({exc.strerror or exc})") from None
        rt.metrics.overrides.inc()
        _audit("weight_override", request, service=name, shares=shares, previous=before, force=force,
               safety=problem)
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
        """Batch of {endpoint, metric, value, timestamp?}; bearer token; per-item rejections reported.

        Accepted items are written to the history before the answer: 503 says they were not stored.
        """
        import hmac

        if sig_token is None:
            return _refuse(403, "signal push is disabled: set signals.token in the daemon config", "disabled")
        auth = request.headers.get("authorization", "")
        if not (auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].encode(), sig_token.encode())):
            return _refuse(401, "missing or wrong bearer token", "unauthorized")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 12
                                     or int(declared) > sig_cfg.max_body_bytes):
            return _refuse(413, f"body over {sig_cfg.max_body_bytes} bytes", "too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > sig_cfg.max_body_bytes:
                return _refuse(413, f"body over {sig_cfg.max_body_bytes} bytes", "too_large")

        def decode():
            items = parse_json(bytes(body), max_depth=8, max_keys=8 * sig_cfg.max_items)
            return validate_signals(items, sig_known, time.time(), sig_cfg.max_items)

        try:
            good, bad = await run_in_threadpool(decode)  # a 1 MB batch must not stall the event loop
        except ValueError as exc:  # BodyError and validate_signals' batch errors
            return _refuse(400, f"malformed batch: {exc}", "malformed")
        if not sig_bucket.take(len(good)):
            return _refuse(429, f"rate limit of {sig_cfg.max_items_per_s:g} signals/s exceeded; retry later",
                           "rate_limited")
        if good:
            try:
                await run_in_threadpool(rt.store.write, good)
            except Exception as exc:  # noqa: BLE001 - disk full, database gone: say so, do not pretend
                log.error("pushed signals not stored: %s", exc)
                rt.metrics.signals.labels("not_stored").inc(len(good))
                return JSONResponse({"detail": f"signals not stored: {exc.__class__.__name__}: {exc}"[:500],
                                     "accepted": 0, "stored": False}, status_code=503)
            rt.ingest(good, stored=True)
        rt.metrics.signals.labels("accepted").inc(len(good))
        rt.metrics.signals.labels("rejected").inc(len(bad))
        return {"accepted": len(good), "stored": True,
                "rejected": [{"index": b.index, "reason": b.reason} for b in bad]}

    @app.put("/api/v1/services/{name}/bandwidth", openapi_extra=_body_doc(
        "bandwidth_mbps", {"type": ["number", "null"], "minimum": 0.1, "maximum": 1e6}))
    async def set_bandwidth(name: str, request: Request):
        """Operator bandwidth allocation per region (Mbit/s, null = unmetered); regions not named keep theirs."""
        data = await _json_object(request, "bandwidth_mbps", {"bandwidth_mbps"})
        if name not in st.bandwidth:
            raise HTTPException(404, f"unknown service {name[:64]!r}")
        mbps = data["bandwidth_mbps"]
        problems = [p for k, v in mbps.items() if (p := bandwidth_problem(str(k)[:40], v))]
        if problems:
            raise HTTPException(422, problems[0])
        before = dict(st.bandwidth[name])
        try:
            out = await run_in_threadpool(st.set_bandwidth, name, mbps, "operator")
        except KeyError:
            raise HTTPException(404, f"unknown service {name[:64]!r}") from None
        except BandwidthError as exc:
            raise HTTPException(422, str(exc)) from None
        except OSError as exc:
            log.error("bandwidth override of %s not saved: %s", name, exc)
            raise HTTPException(503, f"{NOT_SAVED}: cannot save the state ({exc.strerror or exc})") from None
        _audit("bandwidth_override", request, service=name, bandwidth_mbps=out, previous=before)
        return service(name)

    @app.post("/api/v1/services/{name}/scale", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "additionalProperties": False,
                                        "required": ["region", "desired_capacity"], "properties": scale.SCHEMA}}}}})
    async def request_scale(name: str, request: Request):
        """Operator scale request, through the dispatcher (dedup, rate limit, executor; its outcome is
        audited as ``scale``). Returns the dispatcher's status: queued, deduplicated, rate_limited, ..."""
        try:
            data = parse_json(await request.body(), max_depth=4, max_keys=16)
        except BodyError as exc:
            raise HTTPException(400, f"bad body: {exc}") from None
        if not isinstance(data, dict):
            raise HTTPException(422, "body must be a JSON object")
        extra = sorted(set(data) - scale.FIELDS)
        if extra:
            raise HTTPException(422, f"unknown key(s): {', '.join(repr(k[:40]) for k in extra[:10])}")
        who = _principal(request)
        try:
            req = scale.build(rt, name, data, who.name)
        except scale.ScaleProblem as exc:
            raise HTTPException(exc.status, str(exc)) from None
        status = await run_in_threadpool(rt.dispatcher.submit, req)
        _audit("scale_request", request, service=name, region=req.region, application=req.application,
               desired_capacity=req.desired_capacity, executor=req.executor, status=status,
               idempotency_key=req.idempotency_key)
        return {"status": status, "request": req.to_dict()}

    @app.get("/api/v1/subjects")
    def subjects():
        return {"subjects": rt.store.subjects()}

    @app.get("/api/v1/samples")
    def samples(
        subject: str = Query(..., max_length=256, description="endpoint name, uplink:REGION or SWITCH:PORT"),
        metric: str | None = Query(None, max_length=128),
        since: float | None = Query(None, description="epoch seconds"),
        limit: int = Query(100, ge=1, le=10000),
    ):
        _finite_or_422(since, "since")
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
        _name_or_404(rid, "root-cause report")
        rep = rt.learner.report(rid) if rt.learner is not None else None
        if rep is None:
            raise HTTPException(404, f"unknown root-cause report {rid!r}")
        return rep

    @app.get("/api/v1/audit")
    async def audit(since: float | None = None, service: str | None = None, kind: str | None = None,
              region: str | None = None, limit: int = Query(200, ge=1, le=10000)):
        _finite_or_422(since, "since")
        if rt.audit is None:
            return {"records": [], "complete": True}
        records, complete = await run_in_threadpool(rt.audit.query_page, since, service, kind, limit, region)
        return {"records": records, "complete": complete}

    @app.get("/api/v1/scaling")
    def scaling():
        d = rt.dispatcher
        return {"counters": d.counters() if d else {}, "health": [p.status() for p in rt.pollers]}

    @app.get("/metrics")
    def metrics():
        return PlainTextResponse(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    console.mount(app, rt, tokens)  # the operator's web console at /ui (docs/console.md)
    return app


class ApiServer:
    """uvicorn in a daemon thread; ``port=0`` picks a free port (see ``bound_port``)."""

    def __init__(self, app: FastAPI, host: str, port: int, tls=None):
        """``tls``: config.RestTlsConfig (HTTPS; with ``client_ca`` clients must present a certificate)."""
        import ssl

        import uvicorn

        kw: dict[str, Any] = {}
        if tls is not None:
            kw = {"ssl_certfile": tls.certfile, "ssl_keyfile": tls.keyfile}
            if tls.client_ca:
                kw.update(ssl_ca_certs=tls.client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
        self.scheme = "https" if tls is not None else "http"
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                     server_header=False, timeout_keep_alive=5, **kw)
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
        closing = getattr(getattr(self.config.app, "state", None), "closing", None)
        if closing is not None:  # long-lived answers (the console's event streams) end now: uvicorn waits for them
            closing.set()
        self.server.should_exit = True
        self.thread.join(timeout=5)


def _refusal_counter(rt):
    """Guard refusals counted per reason in /metrics (pfepo_api_refused_total)."""
    from prometheus_client import Counter

    counter = getattr(rt.metrics, "_api_refused", None)
    if counter is None:
        counter = Counter("pfepo_api_refused", "REST requests refused by the guard", ["reason"],
                          registry=rt.metrics.registry)
        rt.metrics._api_refused = counter
    return lambda reason: counter.labels(reason).inc()


def _storage_health(rt) -> dict:
    """History and audit write health, so a full disk or a deleted database shows in /health."""
    out: dict[str, Any] = {"history_dropped": rt.writer.dropped}
    stats = getattr(rt.store, "stats", None)
    if stats is not None:
        try:
            out["history"] = stats()
        except Exception as exc:  # noqa: BLE001 - health must answer even when the store is broken
            out["history"] = {"error": str(exc)[:200]}
    if rt.audit is not None and hasattr(rt.audit, "stats"):
        out["audit"] = rt.audit.stats()
    return out
