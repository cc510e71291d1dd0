"""Planners of two controllers shift through claims in a real etcd: no cycle, capacity kept, etcd loss."""

from __future__ import annotations

import pytest

from pfepo.cluster.claimgate import ClaimGate
from pfepo.cluster.claims import is_acyclic
from pfepo.cluster.etcd import EtcdCoordinator
from pfepo.config import PfepoConfig
from pfepo.planner import Planner
from tests.planner.conftest import Driver, build_config, make_policy
from tests.waiting import wait_until

pytestmark = pytest.mark.etcd


def _cfg(capacity: dict[str, float], demand: float = 64.0) -> PfepoConfig:
    doc = build_config().model_dump()
    doc["cluster"] = {"endpoints": ["http://127.0.0.1:1"], "controller_id": "x", "capacity_mbps": capacity,
                      "demand_mbps": {"web": demand}}
    return PfepoConfig.model_validate(doc)


class Ctl:
    """One controller: its etcd member, its gate, its planner (fed like the daemon's loop)."""

    def __init__(self, etcd, cid, region, cfg):
        self.coord = EtcdCoordinator(etcd.endpoint, "t", cid, region, ttl_s=3, timeout_s=1)
        self.coord.join()
        self.up = True
        self.gate = ClaimGate(cfg, self.coord, lambda: self.up, lambda service: True)
        self.drv = Driver(Planner(cfg, gate=self.gate), make_policy(safety={"max_regions_drained": 2}))

    def claims_toward(self, region):
        return sum(c.mbps for c in self.coord.claims() if c.dst == region)


def test_opposite_views_never_make_a_cycle_and_capacity_is_reserved(etcd):
    cfg = _cfg({"eu": 100, "us": 100, "ap": 20})  # 1 Mbit/s per slot of demand
    a, b = Ctl(etcd, "c-eu", "eu", cfg), Ctl(etcd, "c-us", "us", cfg)
    try:
        # a sees eu degraded, b sees us degraded (each thinks the other region is fine)
        for t in range(0, 60, 10):
            a.drv.step(t, {"eu": 50})
            b.drv.step(t, {"us": 50})
        claims = a.coord.claims()
        assert is_acyclic(claims), claims
        edges = {(c.src, c.dst) for c in claims}
        assert ("eu", "us") in edges and ("us", "eu") not in edges  # a got there first; b was refused
        assert a.claims_toward("ap") <= 20 + 1e-6  # ap's declared headroom is never exceeded
        assert b.drv.current["web"]["eu"] == 21  # b never shifted toward eu (it drains toward eu's target)
        assert b.drv.current["web"]["us"] < 21  # but b did shift (within ap's headroom)
        assert b.gate.refused_total > 0
        # both planners' shifts are exactly covered by claims after a settle
        for c in (a, b):
            c.gate.settle(c.drv.planner.shifts())
            mine = {(x.src, x.dst): x.mbps for x in c.coord.claims() if x.owner == c.coord.member_id}
            assert mine == {k: float(n) for k, n in c.drv.planner.shifts()["web"].items()}
    finally:
        a.coord.leave()
        b.coord.leave()


def test_etcd_unreachable_keeps_shifts_but_makes_no_new_claim_then_resyncs(etcd):
    cfg = _cfg({"eu": 100, "us": 100, "ap": 100})
    a = Ctl(etcd, "c-eu", "eu", cfg)
    try:
        a.drv.step(0, {"eu": 50})
        first = dict(a.drv.current["web"])
        assert first["eu"] < 21 and a.coord.claims()
        etcd.kill()
        a.up = False  # what the agent's step reports when etcd does not answer
        a.drv.step(10, {"eu": 50})  # the drain wants to grow: refused, weights held
        assert a.drv.current["web"] == first
        assert "etcd unreachable" in a.gate.last_refusal
        a.drv.step(20, down={"eu"})  # a hard failure still moves at once (local emergency failover)
        assert a.drv.current["web"]["eu"] == 0
        etcd.start()
        a.up = True
        wait_until(lambda: a.gate.settle(a.drv.planner.shifts()) or True, timeout=10, message="etcd back")
        mine = {(x.src, x.dst): x.mbps for x in a.coord.claims()}
        assert mine == {k: float(n) for k, n in a.drv.planner.shifts()["web"].items()}
        assert sum(mine.values()) == 21  # the failover's shift is claimed after the re-sync
    finally:
        a.coord.leave()
