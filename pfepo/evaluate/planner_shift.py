"""Shifted share at failure under the real planner (pfepo.planner), for ``pfepo evaluate``.

Each failing endpoint is modelled as its own service with two regions: the endpoint's region and a
healthy spare, nominal 50/50. At every trace step the detector's risk becomes a policy decision
(``pfepo.policy.engine.evaluate_one`` with ``risk.probability: prediction`` and impact x SLA weight = 1,
so risk = the detector's probability; the reactive baseline's alarm counts as probability 1) and the
planner steps with the endpoint's health. The share shifted away is 1 - weight / nominal of the
endpoint's region, so the planner's own rules (ramp step and interval, dwell, cooldown, fail-back
hysteresis) decide how much traffic had moved when the failure started.
"""

from __future__ import annotations

import numpy as np

from pfepo.predict.prediction import Prediction


def default_policy_doc(act: float, step_pct: float, interval_s: float, max_pct: float) -> dict:
    return {
        "name": "evaluate",
        "risk": {"probability": "prediction", "thresholds": {"act": act}},
        "actions": {"shift_traffic": {"to": "auto", "step_percent": step_pct, "step_interval_s": interval_s,
                                      "max_percent": max_pct}},
    }


class PlannerShift:
    """Build once per evaluation; ``shifted(ts, up, prob)`` per endpoint."""

    def __init__(self, policy_doc: dict):
        from pfepo.config import PfepoConfig
        from pfepo.policy.context import EndpointContext
        from pfepo.policy.model import Policy

        doc = dict(policy_doc)
        risk = dict(doc.get("risk", {}))
        risk["probability"] = "prediction"
        risk["impact"] = {"priority": {"low": 1, "medium": 1, "high": 1, "critical": 1}, "by_share": False}
        doc["risk"] = risk
        doc["match"] = {}
        self.policy = Policy.model_validate(doc)
        self.config = PfepoConfig.model_validate({
            "switches": [{"name": "s1", "dpid": 1}],
            "regions": [
                {"name": "at-risk", "switch": "s1", "uplink": {"switch": "s1", "port": 1},
                 "endpoints": [{"name": "e0", "ip": "10.0.0.1", "mac": "00:00:00:00:00:01", "port": 2}]},
                {"name": "spare", "switch": "s1", "uplink": {"switch": "s1", "port": 3},
                 "endpoints": [{"name": "e1", "ip": "10.0.0.2", "mac": "00:00:00:00:00:02", "port": 4}]},
            ],
            "services": [{"name": "svc", "vip": "10.0.0.100", "vip_mac": "00:00:00:00:00:64", "port": 80,
                          "weights": {"at-risk": 1, "spare": 1}}],
        })
        self.ctx = EndpointContext(endpoint="e0", region="at-risk", service="svc", application="web",
                                   priority="medium", sla_weight=1.0, nominal_share=0.5, region_count=2)

    def shifted(self, ts: np.ndarray, up: np.ndarray, prob: np.ndarray) -> np.ndarray:
        from pfepo.planner import Planner
        from pfepo.policy.engine import evaluate_one

        planner = Planner(self.config, slots=64)
        out = np.zeros(ts.size)
        for k in range(ts.size):
            now = float(ts[k])
            pred = Prediction(endpoint="e0", ts=now, probability=float(prob[k]), horizon_s=300.0)
            d = evaluate_one(now, self.ctx, {}, pred, self.policy)
            plan = planner.step(now, [d], {"at-risk": bool(up[k] == 1), "spare": True})
            st = plan.states["svc"]["at-risk"]
            out[k] = max(0.0, 1.0 - st["weight"] / st["nominal"])
        return out
