"""The planner's safety rules, one scenario each (time is passed in; nothing sleeps)."""

from __future__ import annotations

from pfepo.planner import Planner


def w(plan, r):
    return plan.weights["web"][r]


def test_nominal_when_calm(config, Driver):
    d = Driver(Planner(config))
    plan = d.step(0)
    assert plan.weights == {"web": {"ap": 22, "eu": 21, "us": 21}} and plan.changes == []


def test_gradual_ramp_down_to_the_floor(config, Driver):
    d = Driver(Planner(config))
    seen = [w(d.step(t, {"eu": 50}), "eu") for t in range(0, 100, 5)]
    # 25 % of nominal 21 = 5 slots every 10 s; floor = min share 5 % of 64 -> 4 slots
    assert seen[:8] == [16, 16, 11, 11, 6, 6, 4, 4]
    assert min(seen) == 4
    first = d.plans[0]
    assert first.events[0]["to"] == "draining" and "loss_pct > 5" in first.events[0]["reason"]
    ch = {c["region"]: c for c in first.changes}
    assert ch["eu"]["from"] == 21 and ch["eu"]["to"] == 16 and "shift away 25%" in ch["eu"]["reason"]
    assert ch["us"]["to"] + ch["ap"]["to"] == 64 - 16


def test_max_percent_limits_the_drain(config, Driver, make_policy):
    d = Driver(Planner(config), make_policy(actions={"shift_traffic": {"step_percent": 50, "max_percent": 50}}))
    assert [w(d.step(t, {"eu": 50}), "eu") for t in (0, 10, 20, 30)] == [11, 11, 11, 11]  # keeps ceil(21/2)


def test_failure_moves_everything_at_once(config, Driver):
    d = Driver(Planner(config))
    plan = d.step(0, down={"eu"})
    assert w(plan, "eu") == 0 and sum(plan.weights["web"].values()) == 64
    assert any(e["to"] == "failed" for e in plan.events)
    assert {a["region"] for a in plan.actions} == {"us", "ap"}  # allocate_bandwidth on the failover regions


def test_failback_after_recovery_waits_dwell_then_ramps(config, Driver):
    d = Driver(Planner(config))
    d.step(0, down={"eu"})
    # back up at t=10: dwell 60 s from recovery and 30 s of calm before the first step back
    steps = {t: w(d.step(t), "eu") for t in range(10, 200, 5)}
    assert all(steps[t] == 0 for t in range(10, 70, 5))
    assert steps[70] == 5 and steps[75] == 5 and steps[80] == 10
    assert steps[100] == 20 and steps[110] == 21 and d.plans[-1].states["web"]["eu"]["phase"] == "normal"
    increases = [b - a for a, b in zip(list(steps.values()), list(steps.values())[1:], strict=False) if b != a]
    assert all(0 < x <= 6 for x in increases)  # gradual


def test_cooldown_blocks_new_drain_but_not_failure(config, Driver):
    d = Driver(Planner(config))
    for t in range(0, 200, 5):
        d.step(t, down={"eu"} if t < 10 else ())
    assert d.plans[-1].states["web"]["eu"]["phase"] == "normal"  # recovered at t=110, cooldown until 210
    plan = d.step(150, {"eu": 50})
    assert w(plan, "eu") == 21 and any(e["kind"] == "hold" and "cooldown" in e["reason"] for e in plan.events)
    assert w(d.step(155, {"eu": 50}, down={"eu"}), "eu") == 0


def test_hysteresis_band_holds_position(config, Driver):
    d = Driver(Planner(config))
    d.step(0, {"eu": 50})
    # risk 0.4 from a prediction: below act (0.5) but above the fail-back threshold (0.2) -> hold
    held = [w(d.step(t, risk={"eu": 0.4}), "eu") for t in range(5, 400, 5)]
    assert set(held) == {16}


def test_never_shifts_toward_region_at_risk_or_down(config, Driver):
    d = Driver(Planner(config))
    plan = d.step(0, {"eu": 50, "us": 50})
    # one at-risk region drains (cap 1); the other at-risk one never receives, so everything goes to ap
    assert w(plan, "us") <= 21 and w(plan, "eu") <= 21 and w(plan, "ap") > 22
    assert any(e["kind"] == "hold" and "max_regions_drained" in e["reason"] for e in plan.events)
    plan = d.step(10, {"eu": 50}, down={"ap"})
    assert w(plan, "ap") == 0


def test_all_at_risk_keeps_serving(config, Driver):
    d = Driver(Planner(config))
    for t in range(0, 100, 5):
        plan = d.step(t, {"eu": 50, "us": 60, "ap": 70})
    assert plan.weights["web"] == {"ap": 22, "eu": 21, "us": 21}  # no safe target: nobody drains
    assert any("no safe target" in e["reason"] for p in d.plans for e in p.events)


def test_failure_with_every_other_region_at_risk_goes_to_least_risky(config, Driver):
    d = Driver(Planner(config))
    plan = d.step(0, risk={"us": 0.9, "ap": 0.6}, down={"eu"})
    assert w(plan, "eu") == 0 and w(plan, "ap") == 43 and w(plan, "us") == 21


def test_all_regions_down_keeps_weights(config, Driver):
    d = Driver(Planner(config))
    plan = d.step(0, down={"eu", "us", "ap"})
    assert plan.weights["web"] == {"ap": 22, "eu": 21, "us": 21}
    assert any("every region of the service is down" in e["reason"] for e in plan.events)


def test_cap_allows_two_when_configured(config, Driver, make_policy):
    d = Driver(Planner(config), make_policy(safety={"max_regions_drained": 2}))
    plan = d.step(0, {"eu": 50, "us": 50})
    assert w(plan, "eu") < 21 and w(plan, "us") < 21 and w(plan, "ap") > 22


def test_listed_targets_only(config, Driver, make_policy):
    d = Driver(Planner(config), make_policy(actions={"shift_traffic": {"to": ["us"]}}))
    plan = d.step(0, {"eu": 50})
    assert w(plan, "ap") == 22 and w(plan, "us") == 26
    plan = d.step(10, {"eu": 50, "us": 50})  # the only listed target is at risk: hold
    assert w(plan, "eu") == 16


def test_dry_run_reports_would_do_and_applies_nothing(Driver, build_config):
    cfg = build_config(dry_run=True)
    d = Driver(Planner(cfg))
    plan = d.step(0, {"eu": 50})
    assert plan.dry_run and plan.weights["web"] == {"ap": 22, "eu": 21, "us": 21}
    assert plan.proposed["web"]["eu"] == 16
    assert plan.changes and all(c["dry_run"] for c in plan.changes + plan.events + plan.actions)


def test_resume_from_current_fails_back_gradually(config, Driver):
    d = Driver(Planner(config))
    d.current = {"web": {"eu": 4, "us": 30, "ap": 30}}
    assert w(d.step(0), "eu") == 4
    eu = [w(d.step(t), "eu") for t in range(5, 120, 5)]
    assert eu[-1] == 21 and eu == sorted(eu) and eu[0] == 4


def test_reconfigure_resets_changed_services(config, Driver, build_config):
    p = Planner(config)
    d = Driver(p)
    d.step(0, {"eu": 50})
    p.reconfigure(build_config({"eu": 2, "us": 1, "ap": 1}))
    d.current = None
    assert d.step(10).weights["web"] == {"ap": 16, "eu": 32, "us": 16}


def test_shipped_config_and_default_policy_ramp_down_and_back():
    """configs/pfepo.yaml + policies/: observed loss on eu ramps it down step by step, then back."""
    from pathlib import Path

    from pfepo.config import load_config
    from pfepo.policy.context import contexts_from_config
    from pfepo.policy.engine import evaluate
    from pfepo.policy.loader import load_policies

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs" / "pfepo.yaml")
    pset = load_policies([str(root / "policies")], cfg)
    ctx = contexts_from_config(cfg)
    planner = Planner(cfg)
    current, eu = None, []
    for t in range(0, 1200, 5):
        loss = 20.0 if t < 300 else 0.0
        obs = {e.name: {"loss_pct": loss if e.name.startswith("eu") else 0.0} for r in cfg.regions
               for e in r.endpoints}
        plan = planner.step(t, evaluate(t, ctx, obs, {}, pset), {}, current)
        current = plan.weights
        eu.append(plan.weights["web"]["eu"])
    nominal = 32  # 50 % of 64
    assert eu[0] < nominal and min(eu) == 0  # max_percent 100, min_share 0: drained completely
    drops = [a - b for a, b in zip(eu, eu[1:], strict=False) if b < a]
    assert len(drops) >= 3 and max(drops) <= 8  # gradual: <= 25 % of nominal per step
    assert eu[-1] == nominal
