"""FailureLearner: root-cause reports from a real SQLite history, bounded policy adjustments, the overlay."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from pfepo.controller.audit import AuditLog
from pfepo.policy.context import EndpointContext
from pfepo.policy.model import Policy, semantic_problems
from pfepo.policy.policyset import PolicySet
from pfepo.predict.learning import FailureLearner, history_frame
from pfepo.store.sqlite import SQLiteStore
from pfepo.telemetry.samples import Sample

F = 1_800_000_000.0  # failure time
CREEP_S = 300.0  # latency starts creeping 5 minutes before the failure
CTX = [EndpointContext("eu-web-1", "eu", "web", "web", "high"), EndpointContext("eu-web-2", "eu", "web", "web", "high")]


def _policy(name="web", act=0.6, regions=(), **learning) -> Policy:
    doc = {"name": name, "risk": {"thresholds": {"act": act, "warn": act / 2}}, "failback": {"below": act / 4},
           "match": {"regions": list(regions)}}
    if learning:
        doc["learning"] = learning
    return Policy.model_validate(doc)


def _history(store: SQLiteStore, risk_peak: float = 0.3, link_loss_creep: bool = False) -> None:
    rng = np.random.default_rng(7)
    out = []
    tags = (("region", "eu"),)
    for t in np.arange(F - 5400, F, 1.0):
        for ep in ("eu-web-1", "eu-web-2"):
            lat = 20 + rng.normal(0, 1)
            cpu = 30 + rng.normal(0, 2)
            if ep == "eu-web-1" and t >= F - CREEP_S:
                lat += 0.5 * (t - (F - CREEP_S))  # +150 ms at the failure
            if ep == "eu-web-1" and t >= F - 60:
                cpu += 1.0 * (t - (F - 60))
            out += [Sample(t, ep, "latency_ms", lat, tags), Sample(t, ep, "cpu_pct", cpu, tags),
                    Sample(t, ep, "health_up", 1.0, tags)]
        if t % 5 == 0:
            loss = 0.1 + abs(rng.normal(0, 0.02))
            if link_loss_creep and t >= F - 600:
                loss += 0.01 * (t - (F - 600))
            out += [Sample(t, "uplink:eu", "loss_pct", loss, tags),
                    Sample(t, "uplink:eu", "utilization_pct", 40 + rng.normal(0, 1), tags)]
            # the loop's risk for eu-web-1: rises with the creep but stays below act
            r = 0.05 + max(0.0, t - (F - CREEP_S)) / CREEP_S * (risk_peak - 0.05)
            out.append(Sample(t, "eu-web-1", "risk", r, (("endpoint", "eu-web-1"), ("region", "eu"),
                                                          ("service", "web"))))
    store.write(out)


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "h.sqlite")
    yield s
    s.close()


@pytest.fixture
def make(audit, tmp_path):
    """FailureLearner factory whose worker threads are stopped after the test."""
    made = []

    def _make(store, state=None, **kw):
        made.append(FailureLearner(store, audit, state or tmp_path / "state", **kw))
        return made[-1]

    yield _make
    for learner in made:
        learner.stop()


@pytest.fixture
def audit(tmp_path):
    a = AuditLog(tmp_path / "audit.jsonl")
    yield a
    a.close()


def test_report_names_latency_first_with_its_lead_time_and_proposes_when_risk_stayed_low(store, audit, tmp_path, make):
    _history(store)
    learner = make(store)
    pols = PolicySet.of([_policy()])
    assert learner.on_failure("eu", CTX, F, pols)
    assert learner.drain(20)
    (rep,) = learner.reports(10)
    assert rep["endpoint"] == "eu-web-1" and rep["region"] == "eu" and rep["precursor"]
    first = rep["first_signal"]
    assert (first["endpoint"], first["metric"], first["source"], first["direction"]) == (
        "eu-web-1", "latency_ms", "endpoint", "up")
    assert CREEP_S - 25 <= rep["lead_s"] <= CREEP_S, rep["lead_s"]
    cpu = [s for s in rep["signals"] if s["metric"] == "cpu_pct" and s["endpoint"] == "eu-web-1"]
    assert cpu and cpu[0]["lead_s"] <= 60  # the later symptom is listed, after the cause
    assert not [s for s in rep["signals"] if s["endpoint"] == "eu-web-2"]  # the quiet endpoint stays quiet
    (prop,) = rep["proposals"]
    assert prop["policy"] == "web" and prop["from"] == 0.6 and prop["to"] == pytest.approx(0.3)
    assert not prop["applied"] and "auto_apply" in prop["why"]
    # stored on disk and audited
    on_disk = json.loads((tmp_path / "state" / "rootcause" / f"{rep['id']}.json").read_text())
    assert on_disk["first_signal"]["metric"] == "latency_ms"
    kinds = [r["kind"] for r in audit.query(limit=100)]
    assert kinds == ["policy_adjustment_proposed", "rootcause"]
    # not allowed by the policy -> nothing applied, nothing persisted, effective() is the same set
    assert learner.adjustments() == {} and not (tmp_path / "state" / "adjustments.json").exists()
    assert learner.effective(pols) is pols


def test_no_proposal_when_the_alarm_fired_in_time(store, audit, tmp_path, make):
    _history(store, risk_peak=0.9)  # risk crosses act 0.6 ~100 s before the failure
    learner = make(store)
    rep = learner.analyse("eu", CTX, F, PolicySet.of([_policy(auto_apply=True)]))
    assert rep["precursor"] and rep["proposals"] == []
    assert learner.adjustments() == {}


def test_applied_only_within_bounds_persisted_and_survives_restart_and_reload(store, audit, tmp_path, make):
    _history(store)
    state = tmp_path / "state"
    pols = PolicySet.of([_policy(auto_apply=True, min_act=0.4), _policy("other", act=0.5, regions=["us"])])
    learner = make(store, state)
    rep = learner.analyse("eu", CTX, F, pols)
    (prop,) = rep["proposals"]
    assert prop["applied"] and prop["to"] == pytest.approx(0.3) and prop["to_applied"] == pytest.approx(0.4)
    assert [r["kind"] for r in audit.query(limit=10)] == [
        "policy_adjustment_proposed", "policy_adjustment_applied", "rootcause"]
    applied = audit.query(kind="policy_adjustment_applied")
    assert len(applied) == 1 and applied[0]["to"] == pytest.approx(0.4) and applied[0]["policy"] == "web"
    saved = json.loads((state / "adjustments.json").read_text())
    assert saved["policies"]["web"]["act"] == pytest.approx(0.4)

    eff = learner.effective(pols)
    web = eff.get("web").risk.thresholds
    assert web.act == pytest.approx(0.4) and web.warn == pytest.approx(0.2)  # warn scales with act
    assert eff.get("web").failback.below == pytest.approx(0.1)
    assert eff.get("other") is pols.get("other")
    assert pols.get("web").risk.thresholds.act == 0.6  # the reloader's set is untouched
    assert learner.effective(pols) is eff  # cached

    # a new learner on the same state dir: the adjustment and the report are still there
    again = make(store, state)
    assert again.adjustments()["web"]["act"] == pytest.approx(0.4)
    assert again.reports(5)[0]["id"] == rep["id"]
    assert again.report(rep["id"])["first_signal"]["metric"] == "latency_ms"
    # a hot reload (new set, other digest) keeps it while the policy exists and allows it
    edited = PolicySet.of([_policy(auto_apply=True, min_act=0.4).model_copy(update={"description": "edited"})])
    assert again.effective(edited).get("web").risk.thresholds.act == pytest.approx(0.4)
    forbidden = PolicySet.of([_policy()])
    assert again.effective(forbidden).get("web").risk.thresholds.act == 0.6
    raised_floor = PolicySet.of([_policy(auto_apply=True, min_act=0.5)])
    assert again.effective(raised_floor).get("web").risk.thresholds.act == pytest.approx(0.5)
    gone = PolicySet.of([_policy("other", act=0.5, regions=["us"])])
    assert again.effective(gone) is gone

    # a second failure learns from the live (lowered) act and never goes below min_act
    (prop2,) = again.analyse("eu", CTX, F, pols)["proposals"]
    assert prop2["from"] == pytest.approx(0.4) and prop2["to"] < 0.4 and not prop2["applied"]
    assert again.adjustments()["web"]["act"] == pytest.approx(0.4)


def test_link_signal_is_attributed_to_the_uplink(store, audit, tmp_path, make):
    _history(store, link_loss_creep=True)
    learner = make(store)
    rep = learner.analyse("eu", CTX, F, None)
    loss = [s for s in rep["signals"] if s["metric"] == "loss_pct"]
    assert {s["endpoint"] for s in loss} == {"eu-web-1", "eu-web-2"}
    assert all(s["source"] == "uplink:eu" for s in loss)
    assert all(500 <= s["lead_s"] <= 600 for s in loss)
    assert rep["first_signal"]["metric"] == "loss_pct" and rep["proposals"] == []


def test_history_frame_puts_series_on_one_grid(store):
    _history(store)
    frame, from_link = history_frame(store, ["eu-web-1"], "eu", F - 1200, F - 600)  # before the creep
    assert set(frame.columns) == {"ts", "endpoint", "latency_ms", "cpu_pct", "loss_pct", "utilization_pct"}
    # the grid is the slowest interval (the link's 5 s): the 1 s endpoint series are bucket means
    assert len(frame) == 120 and frame["ts"].diff().dropna().eq(5.0).all()
    assert frame.notna().all().all()
    assert frame["latency_ms"].std() < 1.0  # means of 5 samples of sd 1
    assert from_link == {("eu-web-1", "loss_pct"), ("eu-web-1", "utilization_pct")}


class _GatedStore:
    """A store whose queries wait for the test: a slow analysis."""

    def __init__(self, inner):
        self.inner, self.entered, self.release = inner, threading.Event(), threading.Event()

    def range(self, *a, **kw):
        self.entered.set()
        self.release.wait(10)
        return self.inner.range(*a, **kw)


def test_on_failure_never_blocks_and_bounds_its_queue(store, audit, tmp_path, make):
    gated = _GatedStore(store)
    learner = make(gated, queue_max=1)
    try:
        t0 = time.perf_counter()
        assert learner.on_failure("eu", CTX, F, None)
        assert gated.entered.wait(5)  # the worker is inside the slow analysis
        results = [learner.on_failure("eu", CTX, F + i, None) for i in (1, 2, 3)]
        elapsed = time.perf_counter() - t0
        assert elapsed < 1.0
        assert results == [True, False, False]
        assert learner.stats()["dropped"] == 2
    finally:
        gated.release.set()
    assert learner.drain(10)
    assert learner.stats()["analysed"] == 2 and learner.stats()["errors"] == 0


def test_learning_section_is_validated():
    assert _policy().learning.auto_apply is False  # default keeps today's behaviour
    with pytest.raises(ValueError):
        Policy.model_validate({"name": "x", "risk": {"thresholds": {"act": 0.5}}, "learning": {"typo": 1}})
    p = _policy(act=0.5, auto_apply=True, min_act=0.5)
    assert [loc for loc, _ in semantic_problems(p)] == [("learning", "min_act")]


def test_observe_queues_one_analysis_per_up_to_down_transition(store, audit, tmp_path, make):
    _history(store)
    learner = make(store)
    ctxs = [*CTX, EndpointContext("us-web-1", "us", "web", "web", "high")]
    pols = PolicySet.of([_policy()])
    assert learner.observe(F - 10, {"eu": False, "us": True}, ctxs, pols) == []  # first tick: only recorded
    assert learner.observe(F - 5, {"eu": True, "us": True}, ctxs, pols) == []
    obs = {"eu-web-2": {"health_up": 0.0}, "eu-web-1": {"health_up": 1.0}}
    assert learner.observe(F, {"eu": False, "us": True}, ctxs, pols, obs) == ["eu"]
    assert learner.observe(F + 5, {"eu": False, "us": True}, ctxs, pols) == []  # still down: no new failure
    assert learner.drain(20)
    (rep,) = learner.reports()
    assert rep["endpoints"] == ["eu-web-2", "eu-web-1"]  # the endpoint that reported down comes first
    assert rep["endpoint"] == "eu-web-2" and rep["failure_ts"] == F
    assert "eu-web-1" in rep["other_endpoints"] and learner.stats()["queued"] == 1


def test_settle_delay_lets_batched_history_land_first(store, audit, tmp_path, make):
    # settle_s is generous: writing the 32k history rows below takes ~1 s on a loaded 2-core machine.
    learner = make(store, settle_s=3.0)
    t0 = time.perf_counter()
    assert learner.on_failure("eu", CTX, F, None)
    assert time.perf_counter() - t0 < 0.1
    _history(store)  # written after the failure was reported, before the analysis ran
    assert time.perf_counter() - t0 < 3.0, "history took longer than the settle delay"
    assert learner.drain(10) and time.perf_counter() - t0 >= 3.0
    assert learner.reports()[0]["first_signal"]["metric"] == "latency_ms"
