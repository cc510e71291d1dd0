"""The daemon's REST API: JSON under /api/v1, Prometheus text at /metrics.

Handlers only read the controller state or call its validated setters; nothing here talks OpenFlow.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from pfepo import __version__
from pfepo.controller.state import WeightError

log = logging.getLogger("pfepo.api")


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
        switches = list(st.switches.values())
        return {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.time() - st.started_at, 3),
            "switches_connected": sum(s.connected for s in switches),
            "switches_configured": len(switches),
            "dry_run": rt.cfg.dry_run,
        }

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
