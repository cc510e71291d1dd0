"""Policy evaluation: criteria score, risk formula, levels, conflict rule, context from the config."""

from __future__ import annotations

import json
import math

import pytest

from pfepo.policy.context import EndpointContext, contexts_from_config
from pfepo.policy.engine import evaluate
from pfepo.policy.model import Policy
from pfepo.policy.policyset import PolicySet
from pfepo.predict.prediction import Prediction


def policy(**kw) -> Policy:
    base = {
        "name": "p",
        "criteria": [
            {"metric": "latency_ms", "op": ">", "threshold": 100, "weight": 0.5},
            {"metric": "cpu_pct", "op": ">", "threshold": 80, "weight": 0.3, "apply_to": "observed"},
            {"metric": "priority", "op": "==", "threshold": "high", "weight": 0.2},
        ],
        "risk": {"thresholds": {"warn": 0.2, "act": 0.4}},
        "actions": {"shift_traffic": {"to": "auto"}},
    }
    base.update(kw)
    return Policy.model_validate(base)


CTX = EndpointContext(endpoint="e1", region="eu", service="web", application="web", priority="high",
                      sla_weight=2.0, nominal_share=0.5, region_count=3)


def one(obs=None, pred=None, pol=None, ctx=CTX):
    preds = {ctx.endpoint: pred} if pred else {}
    (d,) = evaluate(10.0, [ctx], {ctx.endpoint: obs or {}}, preds, [pol or policy()], {"web": {"eu": 0.4}})
    return d


def test_criteria_score_and_risk_formula():
    d = one({"latency_ms": 150, "cpu_pct": 50})
    # fired: latency (0.5) + priority==high (0.2) of 1.0 -> P 0.7; impact high 0.75; sla 2
    assert d.risk.criteria_score == pytest.approx(0.7)
    assert d.risk.probability_source == "criteria"
    assert d.risk.impact == pytest.approx(0.75)
    assert d.risk.value == pytest.approx(0.7 * 0.75 * 2.0)
    assert d.level == "act" and d.threshold == ("act", 0.4)
    fired = {c.metric: c.fired_on for c in d.criteria}
    assert fired == {"latency_ms": ("observed",), "cpu_pct": (), "priority": ("context",)}
    assert d.current_share == 0.4


def test_levels_follow_thresholds():
    low = CTX.__class__(**{**CTX.to_dict(), "priority": "low", "sla_weight": 1.0})
    assert one({}, ctx=low).level == "ok"  # nothing fired
    d = one({"latency_ms": 101}, ctx=low)  # 0.5 * 0.25 * 1 = 0.125 -> ok
    assert d.level == "ok" and d.threshold is None
    d = one({"latency_ms": 101}, ctx=low, pol=policy(risk={"thresholds": {"warn": 0.1, "act": 0.4}}))
    assert d.level == "warn" and d.threshold == ("warn", 0.1)


def test_predicted_values_and_apply_to():
    pred = Prediction("e1", 10.0, 0.05, 300.0, predicted={"latency_ms": 180.0, "cpu_pct": 99.0})
    d = one({"latency_ms": 20, "cpu_pct": 10}, pred)
    c = {c.metric: c for c in d.criteria}
    assert c["latency_ms"].fired_on == ("predicted",) and c["latency_ms"].predicted == 180.0
    assert not c["cpu_pct"].fired and c["cpu_pct"].predicted is None  # observed-only criterion
    assert d.horizon_s == 300.0


def test_probability_modes():
    pred = Prediction("e1", 10.0, 0.9, 60.0)
    assert one({}, pred).risk.probability == pytest.approx(0.9)  # max(0.9, 0.2)
    assert one({}, pred).risk.probability_source == "prediction"
    pol = policy(risk={"probability": "criteria", "thresholds": {"act": 0.4}})
    assert one({}, pred, pol).risk.probability == pytest.approx(0.2)
    pol = policy(risk={"probability": "auto", "thresholds": {"act": 0.4}})
    assert one({"latency_ms": 500}, pred, pol).risk.probability == pytest.approx(0.9)
    assert one({"latency_ms": 500}, None, pol).risk.probability == pytest.approx(0.7)  # no prediction yet
    pol = policy(risk={"probability": "prediction", "thresholds": {"act": 0.4}})
    assert one({"latency_ms": 500}, None, pol).risk.probability == 0.0
    # A forecast saying 0.1 must not mask an observed breach under the default "max".
    assert one({"latency_ms": 500}, Prediction("e1", 10.0, 0.1, 60.0)).risk.probability == pytest.approx(0.7)


def test_impact_by_share_uses_configured_share():
    pol = policy(risk={"impact": {"by_share": True, "priority": {"high": 1.0}}, "thresholds": {"act": 0.4}})
    d = one({}, pol=pol)
    assert d.risk.share_factor == pytest.approx(1.0)  # 0.5 * 3 capped at 1
    small = CTX.__class__(**{**CTX.to_dict(), "nominal_share": 0.1})
    assert one({}, pol=pol, ctx=small).risk.share_factor == pytest.approx(0.3)


def test_missing_and_non_finite_values_never_fire():
    d = one({"latency_ms": math.nan, "cpu_pct": "n/a"})
    assert [c.fired for c in d.criteria] == [False, False, True]


def test_priority_ordering_criterion():
    pol = policy(criteria=[{"metric": "priority", "op": ">=", "threshold": "medium", "weight": 1}])
    assert one(pol=pol).criteria[0].fired
    low = CTX.__class__(**{**CTX.to_dict(), "priority": "low"})
    assert not one(pol=pol, ctx=low).criteria[0].fired


def test_conflict_rule_highest_priority_wins_alone():
    a = policy(name="a", priority=5, actions={})
    b = policy(name="b", priority=10, match={"regions": ["eu"]})
    c = policy(name="c", priority=50, match={"regions": ["us"]})
    (d,) = evaluate(0, [CTX], {}, {}, PolicySet.of([a, b, c]))
    assert d.policy.name == "b" and d.overridden == ("a",)
    assert d.to_dict()["actions"] == {"shift_traffic": b.actions.shift_traffic.model_dump(mode="json", exclude_none=True),
                                      "allocate_bandwidth": [], "scale_application": []}
    assert evaluate(0, [CTX], {}, {}, [c]) == []  # no policy matches -> no decision


def test_decision_is_json_serialisable_and_explains(pcfg):
    pred = Prediction("e1", 10.0, 0.8, 120.0, predicted={"latency_ms": 130.0}, drivers=[("latency_ms", 0.6)])
    d = one({"latency_ms": 150}, pred)
    doc = json.loads(json.dumps(d.to_dict()))
    assert doc["policy"] == "p" and doc["level"] == "act" and doc["endpoint"] == "e1"
    assert doc["risk"]["value"] == pytest.approx(0.8 * 0.75 * 2)
    assert doc["threshold"] == {"name": "act", "value": 0.4}
    assert doc["criteria"][0]["observed"] == 150 and doc["criteria"][0]["predicted"] == 130.0
    assert doc["drivers"] == [["latency_ms", 0.6]]
    assert "latency_ms > 100.0" in doc["reason"]


def test_contexts_from_config(pcfg):
    ctx = {(c.service, c.endpoint): c for c in contexts_from_config(pcfg)}
    pay = ctx[("payments", "eu-pay1")]
    assert (pay.region, pay.priority, pay.sla_weight, pay.sla_latency_ms) == ("eu", "high", 2.0, 50)
    assert pay.nominal_share == pytest.approx(0.5) and pay.region_count == 3
    assert ctx[("web", "ap-web1")].priority == "low"  # endpoint's explicit priority beats the service's
    assert ctx[("web", "eu-web1")].priority == "medium"
    assert ("web", "eu-pay1") not in ctx  # application must match the service's
    assert ("bulk", "ap-web1") not in ctx  # bulk has no weight in ap
    assert len([k for k in ctx if k[0] == "bulk"]) == 2
