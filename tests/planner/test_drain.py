"""Emptying a region (connection affinity): evict on failure, after a grace at share 0, at high risk;
restore when it takes traffic again; and the planner's state surviving a restart."""

from __future__ import annotations

import json

from pfepo.planner import Planner
from pfepo.planner.persist import PlannerStore


def _drain_policy(make_policy, **drain):
    return make_policy(safety={"min_share_percent": 0}, actions={"shift_traffic": {"step_percent": 50}},
                       drain=drain)


def kinds(plan, kind):
    return [e for e in plan.events if e["kind"] == kind]


def test_failure_evicts_at_once_and_recovery_restores(config, Driver):
    d = Driver(Planner(config))
    plan = d.step(0, down={"eu"})
    assert plan.evicted == {"web": ["eu"]}
    ev = kinds(plan, "evict")
    assert ev and ev[0]["region"] == "eu" and "failed" in ev[0]["reason"]
    plan = d.step(5)  # up again: recovering, weight still 0 during the dwell, but no longer evicted
    assert plan.evicted == {"web": []} and kinds(plan, "restore")


def test_after_a_failure_the_order_of_up_and_risk_decides_the_pinning(config, Driver, make_policy):
    """The lab's race (health check vs probe window) in both orders: up and still at risk in one step stays
    evicted (failed -> draining); up first restores (recovering), and risk a step later drains with the
    connections pinned until empty_after_s evicts them again."""
    policy = _drain_policy(make_policy, empty_after_s=30)
    together = Driver(Planner(config), policy)
    together.step(0, {"eu": 50}, down={"eu"})
    plan = together.step(5, {"eu": 50})
    assert plan.states["web"]["eu"]["phase"] == "draining" and plan.evicted == {"web": ["eu"]}
    assert not kinds(plan, "restore")

    apart = Driver(Planner(config), policy)
    apart.step(0, {"eu": 50}, down={"eu"})
    plan = apart.step(5)
    assert plan.states["web"]["eu"]["phase"] == "recovering" and plan.evicted == {"web": []}
    plan = apart.step(10, {"eu": 50})
    assert plan.states["web"]["eu"]["phase"] == "draining" and plan.evicted == {"web": []}
    assert plan.weights["web"]["eu"] == 0
    assert apart.step(39, {"eu": 50}).evicted == {"web": []}
    plan = apart.step(40, {"eu": 50})
    assert plan.evicted == {"web": ["eu"]} and "share 0 for 30 s" in kinds(plan, "evict")[0]["reason"]


def test_failure_eviction_can_be_switched_off(config, Driver, make_policy):
    d = Driver(Planner(config), make_policy(drain={"on_failure": False}))
    d.step(0, {"eu": 50})  # the policy must be known for the region: it drives the drain
    assert d.step(1, {"eu": 50}, down={"eu"}).evicted == {"web": []}


def test_share_zero_for_grace_period_then_evict(config, Driver, make_policy):
    d = Driver(Planner(config), _drain_policy(make_policy, empty_after_s=30))
    evicted_at = None
    for t in range(0, 120, 5):
        plan = d.step(t, {"eu": 50})
        if plan.evicted["web"] and evicted_at is None:
            evicted_at = t
            assert "share 0 for 30 s" in kinds(plan, "evict")[0]["reason"]
    zero_at = next(t for t, p in zip(range(0, 120, 5), d.plans, strict=False) if p.weights["web"]["eu"] == 0)
    assert evicted_at == zero_at + 30


def test_no_eviction_while_the_region_keeps_a_floor(config, Driver):
    d = Driver(Planner(config))  # min_share 5 %: eu keeps 4 slots, so it is never emptied
    assert all(not d.step(t, {"eu": 50}).evicted["web"] for t in range(0, 300, 5))


def test_evict_at_risk_moves_everything_at_once_and_evicts_after_the_grace(config, Driver, make_policy):
    d = Driver(Planner(config), _drain_policy(make_policy, empty_after_s=None, evict_at_risk=0.9, evict_grace_s=4))
    plan = d.step(0, risk={"eu": 0.6})  # act, below evict_at_risk: a gradual step
    assert plan.weights["web"]["eu"] > 0 and not plan.evicted["web"]
    plan = d.step(1, risk={"eu": 0.95})  # every slot moves now: no new connection goes to eu
    assert plan.weights["web"]["eu"] == 0 and plan.evicted == {"web": []}
    # in-flight requests finish and hook-closed keep-alives reconnect: nothing is reset before the grace
    assert d.step(4.9, risk={"eu": 0.95}).evicted == {"web": []}
    plan = d.step(5, risk={"eu": 0.95})
    assert plan.evicted == {"web": ["eu"]}
    reason = kinds(plan, "evict")[0]["reason"]
    assert "failure imminent" in reason and "evict_grace_s 4" in reason


def test_failure_during_the_grace_evicts_at_once(config, Driver, make_policy):
    d = Driver(Planner(config), _drain_policy(make_policy, empty_after_s=None, evict_at_risk=0.9, evict_grace_s=30))
    d.step(0, risk={"eu": 0.95})
    assert d.step(1, risk={"eu": 0.95}).evicted == {"web": []}
    plan = d.step(2, risk={"eu": 0.95}, down={"eu"})
    assert plan.evicted == {"web": ["eu"]} and "failed" in kinds(plan, "evict")[0]["reason"]


def test_evict_grace_zero_evicts_in_the_same_step(config, Driver, make_policy):
    d = Driver(Planner(config), _drain_policy(make_policy, empty_after_s=None, evict_at_risk=0.9, evict_grace_s=0))
    plan = d.step(0, risk={"eu": 0.95})
    assert plan.weights["web"]["eu"] == 0 and plan.evicted == {"web": ["eu"]}


def test_restore_when_failing_back(config, Driver, make_policy):
    d = Driver(Planner(config), _drain_policy(make_policy, empty_after_s=0))
    t = 0
    while not d.step(t, {"eu": 50}).evicted["web"]:
        t += 5
    restored = None
    for t2 in range(t + 5, t + 400, 5):
        plan = d.step(t2)
        if kinds(plan, "restore"):
            restored = plan
            break
    assert restored is not None and restored.weights["web"]["eu"] > 0 and not restored.evicted["web"]


def test_drain_hook_requested_when_drain_starts_and_ended_when_the_region_takes_traffic(config, Driver, make_policy):
    d = Driver(Planner(config), make_policy(drain={"hook": {"executor": "apps"}}, safety={"min_share_percent": 0},
                                            failback={"stable_s": 10}))
    plan = d.step(0, {"eu": 50})
    hooks = [a for a in plan.actions if a["type"] == "drain_hook"]
    assert hooks == [{**hooks[0], "executor": "apps", "region": "eu", "service": "web", "drain": "start"}]
    assert not [a for a in d.step(10, {"eu": 50}).actions if a["type"] == "drain_hook"]  # once per drain
    ends = []
    for t in range(11, 400):
        plan = d.step(t)
        got = [a for a in plan.actions if a["type"] == "drain_hook"]
        if got:
            assert plan.weights["web"]["eu"] > 0  # not while eu waits at weight 0 (dwell)
        ends += got
    assert [a["drain"] for a in ends] == ["end"] and ends[0]["region"] == "eu"


def test_no_undrain_while_a_failed_region_waits_at_weight_zero(config, Driver, make_policy):
    d = Driver(Planner(config), make_policy(drain={"hook": {"executor": "apps"}}, safety={"min_share_percent": 0}))
    assert [a["drain"] for a in d.step(0, {"eu": 50}).actions if a["type"] == "drain_hook"] == ["start"]
    d.step(1, {"eu": 50}, down={"eu"})
    for t in range(2, 40):  # up again, recovering, but held at 0 for min_dwell_s (60 s)
        plan = d.step(t, {"eu": 50} if t % 2 else None)
        assert plan.weights["web"]["eu"] == 0
        assert not [a for a in plan.actions if a["type"] == "drain_hook"]


def test_dry_run_never_evicts(Driver, build_config):
    d = Driver(Planner(build_config(dry_run=True)))
    plan = d.step(0, down={"eu"})
    assert plan.evicted == {"web": []} and all(e["dry_run"] for e in kinds(plan, "evict"))


# -- persistence ---------------------------------------------------------------------------------------


def test_restart_resumes_drain_timers_and_eviction(config, Driver, make_policy, tmp_path):
    pol = _drain_policy(make_policy, empty_after_s=30)
    d = Driver(Planner(config), pol)
    for t in range(0, 60, 5):
        d.step(t, {"eu": 50})
    before = d.plans[-1]
    store = PlannerStore(tmp_path / "planner.json")
    assert store.save(d.planner.to_dict()) and not store.save(d.planner.to_dict())  # unchanged: not rewritten

    # "kill -9": a new planner from the file; the operator's nominal would put eu back to 21
    p2 = Planner(config)
    assert p2.load_dict(PlannerStore(tmp_path / "planner.json").load(), {pol.name: pol}) == ["web"]
    d2 = Driver(p2, pol)
    plan = d2.step(60, {"eu": 50})  # current=None: nothing but the file tells where we were
    assert plan.weights["web"]["eu"] == before.weights["web"]["eu"] == 0
    assert plan.states["web"]["eu"]["phase"] == "draining"
    assert before.evicted == plan.evicted == {"web": ["eu"]} and not kinds(plan, "restore")
    # with no signals at all after the restart, fail-back still waits for dwell and stable_s
    plan = d2.step(61)
    assert plan.weights["web"]["eu"] == 0


def test_restart_keeps_stable_wait(config, Driver, tmp_path):
    d = Driver(Planner(config))
    d.step(0, down={"eu"})
    d.step(10)  # recovering from t=10, dwell 60 s
    store = PlannerStore(tmp_path / "p.json")
    store.save(d.planner.to_dict())
    p2 = Planner(config)
    p2.load_dict(store.load())
    d2 = Driver(p2)
    assert all(w == 0 for w in (d2.step(t).weights["web"]["eu"] for t in range(15, 70, 5)))
    assert d2.step(70).weights["web"]["eu"] == 5  # the same ramp as without the restart


def test_stale_or_foreign_state_is_ignored(config, build_config, tmp_path):
    store = PlannerStore(tmp_path / "p.json")
    (tmp_path / "p.json").write_text("{not json")
    assert store.load() is None
    p = Planner(config)
    doc = Planner(build_config({"eu": 2, "us": 1, "ap": 1})).to_dict()
    doc["services"] = {"web": {"regions": ["ap", "eu", "us"], "nominal": {"ap": 16, "eu": 32, "us": 16},
                               "weights": {"ap": 16, "eu": 32, "us": 16}, "states": {}}}
    assert p.load_dict(doc) == []  # nominal changed since (operator/config): start afresh
    assert p.load_dict({"version": 99}) == []
    bad = Planner(config)
    bad.step(0, [], {"eu": True, "us": True, "ap": True})
    doc = bad.to_dict()
    doc["services"]["web"]["weights"]["eu"] = -3
    assert Planner(config).load_dict(json.loads(json.dumps(doc))) == []


def test_save_is_atomic_and_reports_io_errors(tmp_path):
    store = PlannerStore(tmp_path / "sub" / "p.json")
    assert store.save({"a": 1}) and json.loads((tmp_path / "sub" / "p.json").read_text()) == {"a": 1}
    assert not list((tmp_path / "sub").glob("*.tmp"))
    (tmp_path / "file").write_text("x")
    broken = PlannerStore(tmp_path / "file" / "p.json")  # parent is a file
    assert broken.save({"a": 1}) is False and broken.errors == 1


def test_operator_baseline_restores_an_evicted_region_and_says_so(config, Driver, build_config):
    d = Driver(Planner(config))
    assert d.step(0, down={"eu"}).evicted == {"web": ["eu"]}
    d.planner.reconfigure(build_config({"eu": 2, "us": 1, "ap": 1}))
    plan = d.step(1)
    assert plan.evicted == {"web": []}
    assert [(e["region"], "new baseline" in e["reason"]) for e in kinds(plan, "restore")] == [("eu", True)]


def test_evict_at_risk_must_be_above_act(make_policy):
    from pfepo.policy.model import semantic_problems

    probs = semantic_problems(make_policy(drain={"evict_at_risk": 0.5}))
    assert [loc for loc, _ in probs] == [("drain", "evict_at_risk")]
    assert semantic_problems(make_policy(drain={"evict_at_risk": 0.9})) == []
