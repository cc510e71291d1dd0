"""Issue 11 item 4: a daemon restart (kill -9 included) resumes the planner where it stopped: the drained
region's weight, its phase and timers and its eviction are back in the state before any switch
connects, so nothing flips back to the operator's nominal split."""

from __future__ import annotations

import pytest

from pfepo.controller.audit import AuditLog
from pfepo.controller.loop import DecisionLoop
from pfepo.daemon import build_runtime
from pfepo.policy.reload import PolicyReloader
from pfepo.telemetry.samples import Sample

POLICY = """\
policies:
  - name: drain-test
    criteria:
      - {metric: loss_pct, op: ">", threshold: 5, weight: 1.0, apply_to: observed}
    risk:
      thresholds: {warn: 0.2, act: 0.4}
    actions:
      shift_traffic: {to: auto, step_percent: 50, step_interval_s: 1, max_percent: 100}
    safety: {min_dwell_s: 60, cooldown_s: 1, min_share_percent: 0, max_regions_drained: 1}
    drain: {empty_after_s: 2}
    failback: {below: 0.1, stable_s: 30, step_percent: 25, step_interval_s: 1}
"""


@pytest.fixture
def make_loop(cfg_dict, tmp_path):
    made = []

    def make() -> DecisionLoop:
        from pfepo.config import PfepoConfig

        (tmp_path / "p.yaml").write_text(POLICY)
        cfg = PfepoConfig.model_validate({**cfg_dict, "policy": {"paths": [str(tmp_path / "p.yaml")]}})
        rt = build_runtime(cfg)
        reloader = PolicyReloader(cfg.policy.paths, lambda: cfg)
        assert reloader.reload(), reloader.last_error
        made.append(rt)
        return DecisionLoop(rt, reloader, AuditLog(tmp_path / "audit.jsonl"))

    yield make
    for rt in made:
        rt.writer.close()


def _loss(loop, now, pct):
    loop.rt.ingest([Sample(now, "uplink:eu", "loss_pct", pct, (("kind", "uplink"), ("region", "eu")))])


def test_restart_during_a_drain_keeps_weight_phase_timers_and_eviction(make_loop):
    loop = make_loop()
    now = 10_000.0
    for _ in range(8):
        now += 1.0
        _loss(loop, now, 30.0)
        loop.tick(now)
    assert loop.rt.state.bucket_weights()["web"]["eu"] == 0
    assert loop.rt.state.evicted_snapshot()["web"] == frozenset({"eu"})
    before = loop.last_plan["states"]["web"]["eu"]
    assert before["phase"] == "draining"

    # "kill -9": nothing is stopped or flushed; a new runtime reads the same state_dir
    loop2 = make_loop()
    st = loop2.rt.state
    assert st.bucket_weights()["web"]["eu"] == 0, "weight came back before the first tick"
    assert st.evicted_snapshot()["web"] == frozenset({"eu"})
    # no signals at all after the restart: calm, but the dwell (60 s) and stable wait (30 s) still hold
    for _ in range(20):
        now += 1.0
        loop2.tick(now)
        assert st.bucket_weights()["web"]["eu"] == 0
    after = loop2.last_plan["states"]["web"]["eu"]
    assert after["since"] == before["since"] and after["phase"] in ("draining", "recovering")


def test_operator_change_while_down_wins_over_the_saved_plan(make_loop):
    loop = make_loop()
    now = 10_000.0
    for _ in range(6):
        now += 1.0
        _loss(loop, now, 30.0)
        loop.tick(now)
    assert loop.rt.state.bucket_weights()["web"]["eu"] == 0
    loop.rt.state.set_baseline("web", {"eu": 40, "us": 40, "ap": 20}, source="api")  # saved in desired.json
    loop2 = make_loop()
    assert loop2.rt.state.bucket_weights()["web"] == {"eu": 26, "us": 25, "ap": 13}
    assert loop2.rt.state.evicted_snapshot()["web"] == frozenset()
