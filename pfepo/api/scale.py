"""``POST /api/v1/services/NAME/scale``: an operator's scale request, through the same dispatcher (dedup,
rate limit, executors, audit record with the outcome) as the planner's ``scale_application`` actions."""

from __future__ import annotations

import time

from pfepo.actions.executors import ScaleRequest

FIELDS = {"region", "desired_capacity", "executor", "application"}
SCHEMA = {
    "region": {"type": "string", "description": "a region of the service"},
    "desired_capacity": {"type": "integer", "minimum": 1, "maximum": 100000},
    "executor": {"type": "string", "description": "an executor of the daemon config"},
    "application": {"type": "string", "description": "default: the service's application"},
}


class ScaleProblem(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def build(rt, name: str, data: dict, by: str) -> ScaleRequest:
    """A validated request (ScaleProblem with the HTTP status otherwise)."""
    svc = next((s for s in rt.cfg.services if s.name == name), None)
    if svc is None:
        raise ScaleProblem(404, f"unknown service {name[:64]!r}")
    if rt.dispatcher is None or not rt.dispatcher.executors:
        raise ScaleProblem(409, "no executor configured (config: executors)")
    region = data.get("region")
    if not isinstance(region, str) or region not in svc.weights:
        raise ScaleProblem(422, f"region must be one of {sorted(svc.weights)}")
    cap = data.get("desired_capacity")
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 100000:
        raise ScaleProblem(422, "desired_capacity must be an integer from 1 to 100000")
    executor = data.get("executor")
    if executor is None and len(rt.dispatcher.executors) == 1:
        executor = next(iter(rt.dispatcher.executors))
    if not isinstance(executor, str) or executor not in rt.dispatcher.executors:
        raise ScaleProblem(422, f"executor must be one of {sorted(rt.dispatcher.executors)}")
    app = data.get("application", svc.application)
    if not isinstance(app, str) or not app.strip() or len(app) > 128:
        raise ScaleProblem(422, "application must be a non-empty string (at most 128 characters)")
    now = time.time()
    return ScaleRequest(service=name, region=region, application=app, desired_capacity=cap, executor=executor,
                        decision_id=f"operator:{by}:{now:.3f}", reason=f"operator request by {by}",
                        dry_run=bool(rt.cfg.dry_run), ts=now)
