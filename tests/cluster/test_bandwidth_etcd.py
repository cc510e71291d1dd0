"""Operator bandwidth overrides shared through a real etcd, with revisions (pfepo/cluster/bandwidth.py)."""

from __future__ import annotations

import pytest

from pfepo.cluster.bandwidth import BandwidthSync
from pfepo.controller.state import ControllerState

pytestmark = pytest.mark.etcd


def test_an_override_reaches_the_other_controller_persisted_and_planner_raises_stay_local(doc_controllers):
    (ca, a, sa), (cb, b, sb) = doc_controllers(BandwidthSync, "c-a", "c-b")
    assert sa.sync() == 0 and sb.sync() == 0  # no override anywhere: nothing written
    assert ca.get_doc("bandwidth") is None
    a.set_bandwidth("web", {"eu": 25.0}, source="operator")
    r1 = sa.sync()
    assert r1 > 0 and sb.sync() == r1
    assert b.bandwidth_snapshot()["web"]["eu"] == 25.0
    assert ControllerState(b.cfg).bandwidth_snapshot()["web"]["eu"] == 25.0  # persisted on b
    b.set_bandwidth("web", {"us": 40.0}, source="planner")  # a planner raise: b's own, not shared
    assert sb.sync() == r1 and sa.sync() == r1
    assert a.bandwidth_snapshot()["web"]["us"] != 40.0
    b.set_bandwidth("web", {"eu": None}, source="operator")  # unmetered is an override too
    r2 = sb.sync()
    assert r2 > r1 and sa.sync() == r2
    assert a.bandwidth_snapshot()["web"]["eu"] is None
    assert ca.get_doc("bandwidth") == (r2, {"services": {"web": {"eu": None}}})


def test_concurrent_overrides_merge_per_region_and_the_first_write_wins_on_the_same_region(doc_controllers):
    (ca, a, sa), (cb, b, sb) = doc_controllers(BandwidthSync, "c-a", "c-b")
    a.set_bandwidth("web", {"eu": 10.0, "ap": 30.0}, source="operator")
    b.set_bandwidth("web", {"us": 20.0, "ap": 50.0}, source="operator")  # both before either syncs
    sa.sync()  # a writes first
    rb = sb.sync()  # b adopts a's (ap=30 wins), then adds its us=20
    assert sa.sync() == rb == sb.sync()
    want = {"eu": 10.0, "us": 20.0, "ap": 30.0}
    assert {r: a.bandwidth_snapshot()["web"][r] for r in want} == want
    assert {r: b.bandwidth_snapshot()["web"][r] for r in want} == want
    assert ca.get_doc("bandwidth")[1] == {"services": {"web": want}}
