"""Policy evaluation: endpoint context + observations + predictions -> explainable decisions.

Pure: no clock of its own, no I/O. For each (service, endpoint) context the winning policy (see
``policyset``) scores the endpoint::

    criteria score = sum(weights of fired criteria) / sum(all weights)
    probability    = per risk.probability: predictor's P(failure) and/or the criteria score
    impact         = risk.impact.priority[endpoint priority] (x share factor if by_share)
    risk           = probability x impact x sla_weight      (sla_weight from the endpoint's SLA)

and the level is ``act`` / ``warn`` / ``ok`` by the policy's thresholds. Every number that went into
the risk travels with the decision, so the audit log can say exactly why traffic moved.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pfepo.policy.context import EndpointContext
from pfepo.policy.model import CONTEXT_ATTRS, PRIORITIES, Criterion, Policy
from pfepo.policy.policyset import PolicySet
from pfepo.predict.prediction import Prediction

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
        "==": operator.eq, "!=": operator.ne}

LEVELS = ("ok", "warn", "act")


@dataclass(frozen=True)
class CriterionResult:
    metric: str
    op: str
    threshold: float | str
    weight: float
    apply_to: str
    observed: float | str | None
    predicted: float | None
    fired: bool
    fired_on: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"metric": self.metric, "op": self.op, "threshold": self.threshold, "weight": self.weight,
                "apply_to": self.apply_to, "observed": self.observed, "predicted": self.predicted, "fired": self.fired,
                "fired_on": list(self.fired_on)}


@dataclass(frozen=True)
class RiskBreakdown:
    probability: float
    probability_source: str  # "prediction" | "criteria"
    prediction_probability: float | None
    criteria_score: float
    impact: float
    priority_impact: float
    share_factor: float
    sla_weight: float
    value: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Decision:
    """The winning policy's verdict for one (service, endpoint) at time ``ts``."""

    ts: float
    policy: Policy
    context: EndpointContext
    level: str  # ok | warn | act
    risk: RiskBreakdown
    criteria: tuple[CriterionResult, ...]
    threshold: tuple[str, float] | None  # highest threshold crossed
    overridden: tuple[str, ...] = ()  # other matching policies the winner beat
    horizon_s: float | None = None
    drivers: tuple[tuple[str, float], ...] = ()
    current_share: float | None = None
    dry_run: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def service(self) -> str | None:
        return self.context.service

    @property
    def endpoint(self) -> str:
        return self.context.endpoint

    @property
    def region(self) -> str:
        return self.context.region

    @property
    def acts(self) -> bool:
        return self.level == "act"

    def reason(self) -> str:
        fired = [f"{c.metric} {c.op} {c.threshold} ({'/'.join(c.fired_on)}: "
                 f"{c.predicted if c.fired_on == ('predicted',) else c.observed})" for c in self.criteria if c.fired]
        r = self.risk
        s = (f"policy {self.policy.name}: risk {r.value:.3f} = P {r.probability:.3f} ({r.probability_source})"
             f" x impact {r.impact:.3f} x sla {r.sla_weight:g}")
        if self.threshold:
            s += f" >= {self.threshold[0]} {self.threshold[1]:g}"
        return s + (f"; fired: {', '.join(fired)}" if fired else "")

    def to_dict(self) -> dict:
        """JSON-serialisable record for the audit log and the REST API."""
        return {
            "ts": self.ts,
            "kind": "decision",
            "policy": self.policy.name,
            "policy_priority": self.policy.priority,
            "service": self.service,
            "endpoint": self.endpoint,
            "region": self.region,
            "level": self.level,
            "threshold": {"name": self.threshold[0], "value": self.threshold[1]} if self.threshold else None,
            "thresholds": self.policy.risk.thresholds.model_dump(),
            "risk": self.risk.to_dict(),
            "criteria": [c.to_dict() for c in self.criteria],
            "actions": self.policy.actions.model_dump(mode="json", exclude_none=True),
            "overridden": list(self.overridden),
            "horizon_s": self.horizon_s,
            "drivers": [list(d) for d in self.drivers],
            "current_share": self.current_share,
            "dry_run": self.dry_run,
            "reason": self.reason(),
        }


def evaluate(
    now: float,
    context: Iterable[EndpointContext],
    observations: Mapping[str, Mapping[str, float]],
    predictions: Mapping[str, Prediction],
    policies: PolicySet | Sequence[Policy] | None,
    shares: Mapping[str, Mapping[str, float]] | None = None,
    dry_run: bool = False,
) -> list[Decision]:
    """One decision per (service, endpoint) context that some enabled policy matches."""
    if policies is None:  # e.g. before the first successful policy load
        return []
    pset = policies if isinstance(policies, PolicySet) else PolicySet.of(policies)
    shares = shares or {}
    out = []
    for ctx in context:
        policy, others = pset.select(ctx)
        if policy is None:
            continue
        share = shares.get(ctx.service or "", {}).get(ctx.region)
        out.append(evaluate_one(now, ctx, observations.get(ctx.endpoint, {}), predictions.get(ctx.endpoint),
                                policy, tuple(p.name for p in others), share, dry_run))
    return out


def evaluate_one(
    now: float,
    ctx: EndpointContext,
    observed: Mapping[str, float],
    prediction: Prediction | None,
    policy: Policy,
    overridden: tuple[str, ...] = (),
    current_share: float | None = None,
    dry_run: bool = False,
) -> Decision:
    predicted = prediction.predicted if prediction is not None else {}
    results = tuple(_criterion(c, ctx, observed, predicted) for c in policy.criteria)
    total = sum(c.weight for c in policy.criteria)
    score = sum(r.weight for r in results if r.fired) / total if total > 0 else 0.0

    p_pred = _clamp01(prediction.probability) if prediction is not None else None
    mode = policy.risk.probability
    if mode == "criteria" or (mode == "auto" and p_pred is None):
        prob, source = score, "criteria"
    elif mode == "prediction" or (mode == "auto"):
        prob, source = (p_pred or 0.0), "prediction"
    else:  # max
        prob, source = (p_pred, "prediction") if p_pred is not None and p_pred > score else (score, "criteria")

    imp = policy.risk.impact
    prio_imp = getattr(imp.priority, ctx.priority, imp.priority.medium)
    share_factor = min(1.0, ctx.nominal_share * ctx.region_count) if imp.by_share else 1.0
    impact = prio_imp * share_factor
    value = prob * impact * ctx.sla_weight
    t = policy.risk.thresholds
    if value >= t.act:
        level, crossed = "act", ("act", t.act)
    elif t.warn is not None and value >= t.warn:
        level, crossed = "warn", ("warn", t.warn)
    else:
        level, crossed = "ok", None
    risk = RiskBreakdown(prob, source, p_pred, score, impact, prio_imp, share_factor, ctx.sla_weight, value)
    return Decision(
        ts=now, policy=policy, context=ctx, level=level, risk=risk, criteria=results, threshold=crossed,
        overridden=overridden, horizon_s=prediction.horizon_s if prediction else None,
        drivers=tuple(tuple(d) for d in prediction.drivers) if prediction else (),
        current_share=current_share, dry_run=dry_run,
    )


def _criterion(c: Criterion, ctx: EndpointContext, observed: Mapping[str, float],
               predicted: Mapping[str, float]) -> CriterionResult:
    if c.metric in CONTEXT_ATTRS:
        value = ctx.attr(c.metric)
        fired = value is not None and _compare_attr(c, value)
        return CriterionResult(c.metric, c.op, c.threshold, c.weight, c.apply_to, value, None, fired,
                               ("context",) if fired else ())
    if isinstance(c.threshold, str):  # rejected at load time; PolicySet.of() skips that check
        return CriterionResult(c.metric, c.op, c.threshold, c.weight, c.apply_to, None, None, False)
    obs = _num(observed.get(c.metric)) if c.apply_to in ("observed", "both") else None
    pred = _num(predicted.get(c.metric)) if c.apply_to in ("predicted", "both") else None
    fired_on = tuple(name for name, v in (("observed", obs), ("predicted", pred))
                     if v is not None and _OPS[c.op](v, c.threshold))
    return CriterionResult(c.metric, c.op, c.threshold, c.weight, c.apply_to, obs, pred, bool(fired_on), fired_on)


def _compare_attr(c: Criterion, value: str) -> bool:
    if c.metric == "priority" and value in PRIORITIES and c.threshold in PRIORITIES:
        return _OPS[c.op](PRIORITIES.index(value), PRIORITIES.index(str(c.threshold)))
    if c.op in ("==", "!="):
        return _OPS[c.op](value, c.threshold)
    return False


def _num(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _clamp01(p: float) -> float:
    p = _num(p)
    return 0.0 if p is None else min(1.0, max(0.0, p))
