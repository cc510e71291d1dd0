"""Planner fixtures: a 3-region config and a one-criterion policy whose risk equals the loss score."""

from __future__ import annotations

import pytest

from pfepo.config import PfepoConfig
from pfepo.policy.context import contexts_from_config
from pfepo.policy.engine import evaluate
from pfepo.policy.model import Policy


def build_config(weights=None, dry_run=False) -> PfepoConfig:
    weights = weights or {"eu": 1, "us": 1, "ap": 1}
    regions = []
    for i, r in enumerate(sorted(weights)):
        regions.append({
            "name": r, "switch": f"s{i + 2}", "uplink": {"switch": "s1", "port": i + 1},
            "endpoints": [{"name": f"{r}-1", "ip": f"10.0.{i + 1}.1", "mac": f"00:00:00:00:0{i + 1}:01", "port": 1}],
        })
    return PfepoConfig.model_validate({
        "dry_run": dry_run,
        "switches": [{"name": f"s{i + 1}", "dpid": i + 1} for i in range(len(weights) + 1)],
        "regions": regions,
        "services": [{"name": "web", "vip": "10.0.0.100", "vip_mac": "00:00:00:00:00:64", "port": 80,
                      "weights": weights}],
    })


def make_policy(**over) -> Policy:
    """risk = 1.0 when loss_pct > 5 (medium priority impact set to 1, SLA weight 1), else 0."""
    doc = {
        "name": "loss",
        "criteria": [{"metric": "loss_pct", "op": ">", "threshold": 5, "weight": 1}],
        "risk": {"impact": {"priority": {"medium": 1.0}}, "thresholds": {"warn": 0.3, "act": 0.5}},
        "actions": {"shift_traffic": {"to": "auto", "step_percent": 25, "step_interval_s": 10, "max_percent": 100},
                    "allocate_bandwidth": [{"region": "failover", "add_percent": 20}]},
        "safety": {"min_dwell_s": 60, "cooldown_s": 100, "min_share_percent": 5, "max_regions_drained": 1},
        "failback": {"below": 0.2, "stable_s": 30, "step_percent": 25, "step_interval_s": 10},
    }
    return Policy.model_validate(_merge(doc, over))


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Driver:
    """Feeds a planner like the daemon would: evaluate, step, apply (unless dry-run)."""

    def __init__(self, planner, policy=None, apply=True):
        self.planner = planner
        self.policy = policy or make_policy()
        self.ctx = contexts_from_config(planner.config)
        self.current = None
        self.apply = apply
        self.plans = []

    def step(self, now, loss=None, down=(), risk=None):
        """``loss`` {region: loss_pct}; ``risk`` {region: probability} given as predictions instead."""
        from pfepo.predict.prediction import Prediction

        obs = {f"{r}-1": {"loss_pct": v} for r, v in (loss or {}).items()}
        preds = {f"{r}-1": Prediction(f"{r}-1", now, p, 60.0) for r, p in (risk or {}).items()}
        decisions = evaluate(now, self.ctx, obs, preds, [self.policy])
        health = {r.name: r.name not in down for r in self.planner.config.regions}
        plan = self.planner.step(now, decisions, health, self.current)
        if self.apply:
            self.current = plan.weights
        self.plans.append(plan)
        return plan


@pytest.fixture
def config() -> PfepoConfig:
    return build_config()


# importlib import mode: tests get the helpers through fixtures rather than `import conftest`.
@pytest.fixture(name="build_config", scope="session")
def _build_config():
    return build_config


@pytest.fixture(name="make_policy", scope="session")
def _make_policy():
    return make_policy


@pytest.fixture(name="Driver", scope="session")
def _driver():
    return Driver
