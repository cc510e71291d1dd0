"""What every executor shares: the request, the result, the protocol, and the checks on values.

Expected failures (HTTP errors, exit codes, timeouts, API errors) come back as ``ok=False`` results
rather than exceptions so the dispatcher can audit them uniformly. Every executor bounds its own time,
which is what lets a few worker threads serve a daemon whose scalers may hang.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

_OUTPUT_MAX = 2000


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    """One ``scale_application`` action for one region, as the planner emits it; or a drain hook
    (``action`` ``drain``/``undrain``: ask the region's applications to close keep-alive connections,
    ``Connection: close``, or to stop doing so), which executors receive through the same path."""

    service: str
    region: str
    application: str
    desired_capacity: int
    executor: str
    decision_id: str = ""
    reason: str = ""
    dry_run: bool = False
    ts: float = 0.0
    action: str = "scale"  # scale | drain | undrain

    @property
    def idempotency_key(self) -> str:
        """Same (service, region, application, capacity, decision) -> same key, so retries and repeats of
        one decision are recognisable by the receiver and by the dispatcher's dedup."""
        parts: list = [self.service, self.region, self.application, int(self.desired_capacity), self.decision_id]
        if self.action != "scale":  # scale keys stay what they always were
            parts.append(self.action)
        raw = json.dumps(parts, separators=(",", ":"))
        return "pfepo-" + hashlib.sha256(raw.encode()).hexdigest()[:32]

    def fields(self) -> dict[str, str]:
        """Values for template placeholders."""
        return {"service": self.service, "region": self.region, "application": self.application,
                "capacity": str(int(self.desired_capacity)), "action": self.action}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "idempotency_key": self.idempotency_key}

    @classmethod
    def from_action(cls, action: Mapping[str, Any]) -> ScaleRequest:
        """From a planner action dict (``type: scale_application``, or ``drain_hook`` with ``drain:
        start|end``); raises ValueError if incomplete.

        Without an explicit ``decision_id`` the decision is identified by policy, drained region and
        time, so one shift yields one key while a later shift gets a new one.
        """
        if action.get("type") == "drain_hook":
            drain = action.get("drain", "start")
            if drain not in ("start", "end"):
                raise ValueError(f"drain_hook: drain must be start or end, not {drain!r}")
            action = {**action, "desired_capacity": 0,
                      "application": action.get("application") or action.get("service")}
        missing = [k for k in ("service", "region", "application", "desired_capacity", "executor")
                   if action.get(k) in (None, "")]
        if missing:
            raise ValueError(f"scale action lacks {', '.join(missing)}")
        cap = action["desired_capacity"]
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise ValueError(f"desired_capacity must be a non-negative integer, not {cap!r}")
        ts = float(action.get("ts") or 0.0)
        decision = action.get("decision_id") or f"{action.get('policy', '')}:{action.get('from_region', '')}:{ts:.3f}"
        return cls(service=str(action["service"]), region=str(action["region"]),
                   application=str(action["application"]), desired_capacity=cap,
                   executor=str(action["executor"]), decision_id=str(decision),
                   reason=str(action.get("reason") or ""), dry_run=bool(action.get("dry_run", False)), ts=ts,
                   action="scale" if action.get("type") != "drain_hook"
                   else ("drain" if action.get("drain", "start") == "start" else "undrain"))


@dataclass(slots=True)
class ExecutionResult:
    """What one executor call achieved; ``detail`` is a short human summary for the audit log."""

    ok: bool
    detail: str
    attempts: int = 1
    duration_s: float = 0.0
    status: int | None = None  # HTTP status or process exit code
    error: str | None = None
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Executor(Protocol):
    """What the dispatcher needs from a scaler."""

    name: str
    kind: str

    def target(self, request: ScaleRequest) -> str:
        """What is being scaled (rate limits are per executor and target); pure and cheap."""
        ...

    def execute(self, request: ScaleRequest) -> ExecutionResult:
        """Do the call; time-bounded; returns failures instead of raising them."""
        ...

    def close(self) -> None:
        ...


def clip(text: str, limit: int = _OUTPUT_MAX) -> str:
    """Output kept in the audit log: long enough to diagnose, short enough not to flood it."""
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def check_values(request: ScaleRequest) -> str | None:
    """Refuse values that would be read as options or break an argument (no shell, but still argv)."""
    if request.desired_capacity < 0:
        return "desired_capacity must be >= 0"
    for k, v in request.fields().items():
        if not v or v.startswith("-") or "\x00" in v or "\n" in v:
            return f"{k} value {v!r} is not allowed in a command/template"
    return None


class BaseExecutor:
    """Name, default target, and a close() that ends backoff waits early."""

    kind = "base"

    def __init__(self, name: str, sleep: Callable[[float], Any] | None = None):
        self.name = name
        self.closing = threading.Event()
        # Backoff waits end early on close(), so a shutdown is not held up by a retrying call.
        self.sleep = sleep or self.closing.wait

    def target(self, request: ScaleRequest) -> str:
        return f"{request.region}/{request.application}"

    def close(self) -> None:
        self.closing.set()
