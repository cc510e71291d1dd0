"""The decision loop on a fake clock: observations -> policy -> planner -> ControllerState, no threads,
no switch. ``tick(now)`` is called with an explicit time, so a 30-second scenario runs in milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from pfepo.controller.audit import AuditLog
from pfepo.controller.loop import DecisionLoop, endpoint_observations, region_health
from pfepo.daemon import build_runtime
from pfepo.policy.reload import PolicyReloader
from pfepo.telemetry.samples import Sample

POLICY = (Path(__file__).parent.parent / "data" / "fast-policy.yaml").read_text()  # shared with the lab test


@pytest.fixture
def make_loop(cfg_dict, tmp_path):
    made = []

    def make(dry_run: bool = False) -> DecisionLoop:
        from pfepo.config import PfepoConfig

        (tmp_path / "fast.yaml").write_text(POLICY)
        cfg = PfepoConfig.model_validate({**cfg_dict, "dry_run": dry_run,
                                          "policy": {"paths": [str(tmp_path / "fast.yaml")]}})
        rt = build_runtime(cfg)
        reloader = PolicyReloader(cfg.policy.paths, lambda: cfg)
        assert reloader.reload(), reloader.last_error
        loop = DecisionLoop(rt, reloader, AuditLog(tmp_path / "audit.jsonl"))
        made.append(rt)
        return loop

    yield make
    for rt in made:
        rt.writer.close()


def _loss(loop: DecisionLoop, now: float, region: str, pct: float) -> None:
    tags = (("kind", "uplink"), ("region", region))
    loop.rt.ingest([Sample(now, f"uplink:{region}", "loss_pct", pct, tags)])


def test_loss_ramps_a_region_down_in_steps_and_back(make_loop):
    loop = make_loop()
    st = loop.rt.state
    now, seen = 10_000.0, []
    for _ in range(12):
        now += 1.0
        _loss(loop, now, "eu", 30.0)
        loop.tick(now)
        seen.append(st.bucket_weights()["web"]["eu"])
    assert seen[-1] == 8, seen  # max_percent 75: a quarter of eu's 32 slots stays
    steps = [a for a, b in zip([32, *seen], seen, strict=False) if a != b]
    assert len(steps) >= 3 and all(a - b <= 8 for a, b in zip([32, *seen], seen, strict=False)), seen
    assert sum(st.bucket_weights()["web"].values()) == 64
    for _ in range(30):
        now += 1.0
        _loss(loop, now, "eu", 0.0)
        loop.tick(now)
    assert st.bucket_weights()["web"]["eu"] == 32  # failed back after the stable period
    assert loop.errors == 0


def test_operator_override_becomes_the_baseline_mid_ramp(make_loop):
    loop = make_loop()
    st = loop.rt.state
    now = 10_000.0
    for _ in range(3):
        now += 1.0
        _loss(loop, now, "eu", 30.0)
        loop.tick(now)
    assert st.bucket_weights()["web"]["eu"] < 32
    st.set_baseline("web", {"eu": 0, "us": 1, "ap": 1}, source="operator")
    now += 1.0
    loop.tick(now)
    assert st.bucket_weights()["web"] == {"eu": 0, "us": 32, "ap": 32}


def test_dry_run_changes_nothing_but_says_what_it_would_do(make_loop):
    loop = make_loop(dry_run=True)
    now = 10_000.0
    for _ in range(4):
        now += 1.0
        _loss(loop, now, "eu", 30.0)
        loop.tick(now)
    assert loop.rt.state.planned_snapshot()["web"] is None
    assert any(e["kind"] == "would_change_weight" for e in loop.rt.events)


def test_old_observations_are_ignored_on_the_fake_clock(make_loop):
    loop = make_loop()
    _loss(loop, 10_000.0, "eu", 30.0)
    max_age = loop.cfg.policy.observation_max_age_s
    assert loop.rt.observations(max_age, now=10_000.0 + max_age + 1) == {}
    for k in range(4):
        loop.tick(10_000.0 + max_age + 1 + k)
    assert loop.rt.state.bucket_weights()["web"]["eu"] == 32


def test_uplink_metrics_reach_endpoints_unless_they_report_their_own(cfg):
    obs = endpoint_observations(cfg, {"uplink:eu": {"loss_pct": 3.0, "tx_bps": 1.0}, "eu-2": {"loss_pct": 0.5}})
    assert obs["eu-1"] == {"loss_pct": 3.0} and obs["eu-2"] == {"loss_pct": 0.5}
    health = region_health(cfg, {"us"}, {"ap-1": {"health_up": 0}, "ap-2": {"health_up": 0}})
    assert health == {"eu": True, "us": False, "ap": False}
