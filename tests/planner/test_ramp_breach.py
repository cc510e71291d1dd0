"""``shift_traffic.finish_before_breach``: the ramp speeds up so it ends before the forecast breach."""

from __future__ import annotations

import pytest

from pfepo.planner import Planner
from pfepo.policy.context import contexts_from_config
from pfepo.policy.engine import evaluate
from pfepo.predict.prediction import Prediction


def _run(config, policy, observed: float, predicted: float, until: float) -> list[tuple[float, int]]:
    """eu's weight after each 0.5 s tick, with loss observed at ``observed`` and forecast at ``predicted``
    (60 s horizon); the policy's criterion is loss_pct > 5 on both."""
    planner, ctx, cur, out = Planner(config), contexts_from_config(config), None, []
    t = 0.0
    while t <= until:
        obs = {"eu-1": {"loss_pct": observed}}
        preds = {"eu-1": Prediction("eu-1", t, 0.0, 60.0, predicted={"loss_pct": predicted})}
        plan = planner.step(t, evaluate(t, ctx, obs, preds, [policy]), {}, cur)
        cur = plan.weights
        out.append((t, plan.weights["web"]["eu"]))
        t += 0.5
    return out


def _policy(make_policy, finish):
    return make_policy(criteria=[{"metric": "loss_pct", "op": ">", "threshold": 5, "weight": 1, "apply_to": "both"}],
                       actions={"shift_traffic": {"finish_before_breach": finish}})


def test_forecast_breach_in_20_s_finishes_the_ramp_within_half_of_it(config, make_policy):
    # threshold 5 crossed in 60 x (5 - 3) / (9 - 3) = 20 s: 4 steps of 25 % within 10 s, not 30 s
    fast = _run(config, _policy(make_policy, 0.5), 3, 9, 12)
    floor = fast[-1][1]
    done = next(t for t, w in fast if w == floor)
    assert done <= 10.0
    slow = _run(config, _policy(make_policy, None), 3, 9, 12)
    assert [w for t, w in slow if t == 12.0][0] > floor  # fixed 10 s interval: still ramping


def test_observed_breach_steps_every_tick(config, make_policy):
    run = _run(config, _policy(make_policy, 0.5), 7, 9, 3)
    weights = [w for _, w in run]
    assert weights[0] > weights[1] > weights[2]  # one step per decision tick


@pytest.mark.parametrize("finish", [0.5, None])
def test_no_forecast_keeps_the_fixed_interval(config, make_policy, finish):
    planner, ctx, cur = Planner(config), contexts_from_config(config), None
    pol = _policy(make_policy, finish)
    changes = 0
    for k in range(0, 20):  # loss observed above threshold, no prediction at all: the fixed interval
        t = k * 0.5
        plan = planner.step(t, evaluate(t, ctx, {"eu-1": {"loss_pct": 7}}, {}, [pol]), {}, cur)
        cur = plan.weights
        changes += any(c["region"] == "eu" for c in plan.changes)
    assert changes == 1
