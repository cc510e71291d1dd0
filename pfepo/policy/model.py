"""The policy language: pydantic models for one policy file (``policies/*.yaml``).

A file holds ``policies: [...]``. Each policy selects endpoints (``match``), scores them with weighted
``criteria`` over observed and/or predicted metrics, turns that into a risk with ``risk`` and says what
to do above the ``act`` threshold (``actions``), with the safety knobs the planner honours (``safety``,
``failback``). Unknown keys are errors everywhere, so a typo never silently disables a rule.

Checks that need more than one field (impossible thresholds, hysteresis order) live in
``semantic_problems`` so each problem is reported at the exact offending key.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
MetricName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Priority = Literal["low", "medium", "high", "critical"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]

PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

# Metrics with a known physical range: a threshold outside it can never (or always) fire.
KNOWN_METRICS: dict[str, tuple[float, float]] = {
    "latency_ms": (0.0, math.inf),
    "jitter_ms": (0.0, math.inf),
    "loss_pct": (0.0, 100.0),
    "utilization_pct": (0.0, 100.0),
    "cpu_pct": (0.0, 100.0),
    "mem_pct": (0.0, 100.0),
    "error_rate_pct": (0.0, 100.0),
    "up": (0.0, 1.0),
}
# Criteria on these names compare endpoint context (from the daemon config), not metric values.
CONTEXT_ATTRS: tuple[str, ...] = ("priority", "application", "region", "service", "endpoint", "sla_tier")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(Strict):
    """Selectors: a policy applies to an endpoint when every non-empty list contains its value."""

    services: list[Name] = Field(default_factory=list, description="service names (any if empty)")
    regions: list[Name] = Field(default_factory=list, description="region names (any if empty)")
    endpoints: list[Name] = Field(default_factory=list, description="endpoint names (any if empty)")
    applications: list[str] = Field(default_factory=list, description="application types (any if empty)")
    priorities: list[Priority] = Field(default_factory=list, description="endpoint/service priority")
    sla_tiers: list[str] = Field(default_factory=list, description="SLA tier names (any if empty)")

    def field_values(self) -> dict[str, list[str]]:
        return {
            "service": self.services, "region": self.regions, "endpoint": self.endpoints,
            "application": self.applications, "priority": list(self.priorities), "sla_tier": self.sla_tiers,
        }


class Criterion(Strict):
    """``metric op threshold`` with a weight; the criteria score is sum(fired weights) / sum(weights)."""

    metric: MetricName = Field(
        description="latency_ms, loss_pct, utilization_pct, cpu_pct, mem_pct, error_rate_pct, any custom "
        "signal name, or a context attribute: " + ", ".join(CONTEXT_ATTRS)
    )
    op: Op
    threshold: float | str = Field(description="number for metrics; name for context attributes")
    weight: float = Field(gt=0, le=1000)
    apply_to: Literal["observed", "predicted", "both"] = Field(
        "both", description="compare observed values, predicted values (from the forecast) or either"
    )


class PriorityImpact(Strict):
    """Impact of a failure by endpoint priority (the ``impact`` factor of the risk)."""

    low: float = Field(0.25, ge=0, le=10)
    medium: float = Field(0.5, ge=0, le=10)
    high: float = Field(0.75, ge=0, le=10)
    critical: float = Field(1.0, ge=0, le=10)


class Impact(Strict):
    priority: PriorityImpact = PriorityImpact()
    by_share: bool = Field(
        False,
        description="scale impact by the region's configured traffic share relative to an even split "
        "(capped at 1); the configured share, not the current one, so draining does not lower the risk",
    )


class Thresholds(Strict):
    warn: float | None = Field(None, gt=0, description="risk at which decisions are reported as warn")
    act: float = Field(gt=0, description="risk at which the policy's actions start")


class Risk(Strict):
    """risk = probability x impact x sla_weight."""

    probability: Literal["max", "auto", "prediction", "criteria"] = Field(
        "max",
        description="max: larger of predictor probability and criteria score; auto: predictor when it has "
        "a prediction, else criteria score; prediction / criteria: only that source",
    )
    impact: Impact = Impact()
    thresholds: Thresholds


class ShiftTraffic(Strict):
    """Gradually move traffic away from the at-risk region (percent of that region's configured share)."""

    to: Literal["auto"] | list[Name] = Field(
        "auto", description="'auto' (healthy regions ranked by risk and spare capacity) or listed regions"
    )
    targets: int | None = Field(None, ge=1, description="use at most this many target regions (best first)")
    step_percent: float = Field(10, gt=0, le=100)
    step_interval_s: float = Field(30, gt=0, le=86400)
    max_percent: float = Field(100, gt=0, le=100)
    finish_before_breach: float | None = Field(
        None, gt=0, le=1, description="step faster when needed so that the remaining steps are done within "
        "this fraction of the forecast time to the threshold (linear from the observed value to the value "
        "forecast at the horizon; once observed: a step every decision tick); null: always step_interval_s")


class AllocateBandwidth(Strict):
    region: Name = Field("failover", description="a region name, or 'failover' = the regions receiving traffic")
    add_mbps: float | None = Field(None, gt=0, le=10_000_000)
    add_percent: float | None = Field(None, gt=0, le=1000)

    @model_validator(mode="after")
    def _one_amount(self) -> AllocateBandwidth:
        if (self.add_mbps is None) == (self.add_percent is None):
            raise ValueError("give exactly one of add_mbps or add_percent")
        return self


class ScaleApplication(Strict):
    region: Name = Field("failover", description="a region name, or 'failover' = the regions receiving traffic")
    application: str | None = Field(None, description="application type (default: the endpoint's)")
    desired_capacity: int = Field(ge=1, le=100_000)
    executor: Name = Field(description="name of an executor in the daemon config")


class Actions(Strict):
    shift_traffic: ShiftTraffic | None = None
    allocate_bandwidth: list[AllocateBandwidth] = Field(default_factory=list)
    scale_application: list[ScaleApplication] = Field(default_factory=list)


class Safety(Strict):
    min_dwell_s: float = Field(60, ge=0, le=86400, description="stay shifted at least this long")
    cooldown_s: float = Field(120, ge=0, le=86400, description="after a fail-back completes, no new shift for this long")
    min_share_percent: float = Field(
        5, ge=0, lt=100, description="a healthy (up) region keeps at least this share of the service while at risk"
    )
    max_regions_drained: int = Field(1, ge=1, le=1000, description="regions of a service shifted away at once")


class DrainHook(Strict):
    """Ask applications to close keep-alive connections when a drain starts (``Connection: close``)."""

    executor: Name = Field(description="name of an executor in the daemon config (webhook or command)")


class Drain(Strict):
    """When a region must be EMPTY, not only get no new connections.

    With connection affinity a weight of 0 stops new connections but keeps the established ones (a
    graceful drain). ``evict`` hands a region's pinned connections back to the weighted choice (they are
    reset by the region they land in), so it is kept for when waiting is riskier than a reset.
    """

    empty_after_s: float | None = Field(
        30, ge=0, le=86400, description="evict when a draining region's share has been 0 this long (null: never)")
    evict_at_risk: float | None = Field(
        None, gt=0, description="a draining region whose risk reaches this (failure imminent) has every "
        "remaining slot moved away at once, and is evicted evict_grace_s later")
    evict_grace_s: float = Field(
        5, ge=0, le=3600, description="after evict_at_risk emptied the share: in-flight requests finish and "
        "keep-alive clients told to close (drain hook) reconnect elsewhere before what is left is evicted")
    on_failure: bool = Field(True, description="evict at once when the region fails (uplink or health down)")
    hook: DrainHook | None = Field(None, description="call this executor when the drain starts (action drain) "
                                   "and when the region takes traffic again (undrain)")


class Failback(Strict):
    below: float | None = Field(
        None, gt=0, description="recovered when risk stays below this (default: warn, else act / 2)"
    )
    stable_s: float = Field(60, ge=0, le=86400, description="... for this long")
    step_percent: float = Field(10, gt=0, le=100)
    step_interval_s: float = Field(30, gt=0, le=86400)


class Learning(Strict):
    """What the daemon may learn from a failure for this policy (see docs/policies.md, "Learning").

    The defaults keep a policy exactly as written: proposals are only reported and audited.
    """

    auto_apply: bool = Field(
        False, description="apply proposed act-threshold adjustments after a failure without an operator"
    )
    min_act: float = Field(
        0.0, ge=0, description="a learned adjustment never lowers act below this (nor below half of act)"
    )


class Policy(Strict):
    name: Name
    description: str = ""
    priority: int = Field(0, ge=-1_000_000, le=1_000_000, description="higher wins when several policies match")
    enabled: bool = True
    match: Match = Match()
    criteria: list[Criterion] = Field(default_factory=list)
    risk: Risk
    actions: Actions = Actions()
    safety: Safety = Safety()
    drain: Drain = Drain()
    failback: Failback = Failback()
    learning: Learning = Learning()

    def failback_below(self) -> float:
        t = self.risk.thresholds
        if self.failback.below is not None:
            return self.failback.below
        return t.warn if t.warn is not None and t.warn < t.act else t.act / 2


class PolicyFile(Strict):
    """One policy file: ``policies: [...]``."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="PF-EPO policy file")
    policies: list[Policy] = Field(min_length=1)


Loc = tuple[int | str, ...]


def semantic_problems(p: Policy) -> list[tuple[Loc, str]]:
    """Cross-field problems of one valid policy, each at the key it concerns (relative to the policy)."""
    out: list[tuple[Loc, str]] = []
    for i, c in enumerate(p.criteria):
        out.extend((("criteria", i, *loc), msg) for loc, msg in _criterion_problems(c))
    t = p.risk.thresholds
    if t.warn is not None and t.warn >= t.act:
        out.append((("risk", "thresholds", "warn"), f"warn ({t.warn:g}) must be below act ({t.act:g})"))
    if p.failback.below is not None and p.failback.below >= t.act:
        out.append((("failback", "below"),
                    f"fail-back threshold ({p.failback.below:g}) must be below act ({t.act:g}) for hysteresis"))
    if p.risk.probability == "criteria" and not p.criteria:
        out.append((("risk", "probability"), "probability 'criteria' needs at least one criterion"))
    if p.drain.evict_at_risk is not None and p.drain.evict_at_risk <= t.act:
        out.append((("drain", "evict_at_risk"),
                    f"evict_at_risk ({p.drain.evict_at_risk:g}) must be above act ({t.act:g}): every drain "
                    "would empty the region at once"))
    if p.learning.auto_apply and p.learning.min_act >= t.act:
        out.append((("learning", "min_act"),
                    f"min_act ({p.learning.min_act:g}) must be below act ({t.act:g}) or nothing can be learned"))
    s = p.actions.shift_traffic
    if s is not None:
        if s.max_percent < s.step_percent:
            out.append((("actions", "shift_traffic", "max_percent"),
                        f"max_percent ({s.max_percent:g}) is below step_percent ({s.step_percent:g})"))
        if isinstance(s.to, list):
            if not s.to:
                out.append((("actions", "shift_traffic", "to"), "empty target list (use 'auto' or name regions)"))
            seen: set[str] = set()
            for j, r in enumerate(s.to):
                if r in seen:
                    out.append((("actions", "shift_traffic", "to", j), f"duplicate region {r!r}"))
                seen.add(r)
    return out


def _criterion_problems(c: Criterion) -> list[tuple[Loc, str]]:
    v = c.threshold
    if c.metric in CONTEXT_ATTRS:
        if not isinstance(v, str):
            return [(("threshold",), f"{c.metric} compares names: threshold must be a string, got {v!r}")]
        if c.metric == "priority":
            if v not in PRIORITIES:
                return [(("threshold",), f"unknown priority {v!r} (one of {', '.join(PRIORITIES)})")]
            return []
        if c.op not in ("==", "!="):
            return [(("op",), f"{c.metric} supports only == and != (got {c.op})")]
        return []
    if isinstance(v, str):
        return [(("threshold",), f"metric {c.metric} needs a numeric threshold, got {v!r}")]
    if not math.isfinite(v):
        return [(("threshold",), f"threshold must be finite, got {v!r}")]
    rng = KNOWN_METRICS.get(c.metric)
    if rng is None:
        return []
    lo, hi = rng
    if v < lo or v > hi:
        span = f"[{lo:g}, {hi:g}]" if math.isfinite(hi) else f">= {lo:g}"
        return [(("threshold",), f"impossible threshold {v:g} for {c.metric} (possible values {span})")]
    if (c.op == ">" and v >= hi) or (c.op == "<" and v <= lo):
        return [(("threshold",), f"'{c.metric} {c.op} {v:g}' can never be true")]
    return []
