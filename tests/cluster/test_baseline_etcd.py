"""Operator overrides (baseline weights) shared through a real etcd, with revisions."""

from __future__ import annotations

import pytest

from pfepo.cluster.baseline import BaselineSync
from pfepo.controller.state import ControllerState

pytestmark = pytest.mark.etcd


def test_an_override_on_one_controller_reaches_the_other_and_survives_its_restart(doc_controllers):
    (ca, a, sa), (cb, b, sb) = doc_controllers(BaselineSync, "c-a", "c-b")
    r0 = sa.sync()  # the first controller seeds the cluster's baseline from its config
    assert r0 > 0 and sb.sync() == r0
    a.set_baseline("web", {"eu": 1, "us": 0, "ap": 1}, source="operator")
    r1 = sa.sync()
    assert r1 > r0
    assert sb.sync() == r1
    assert b.baseline_snapshot()["web"] == {"eu": 0.5, "us": 0.0, "ap": 0.5}
    assert b.baseline_source["web"] == "cluster"
    # persisted on b too: a restart without etcd keeps it
    assert ControllerState(b.cfg).baseline_snapshot()["web"] == {"eu": 0.5, "us": 0.0, "ap": 0.5}
    doc = ca.get_doc("baseline")[1]
    assert doc["services"]["web"]["source"] == "operator"


def test_racing_overrides_the_first_write_wins_everywhere(doc_controllers):
    (ca, a, sa), (cb, b, sb) = doc_controllers(BaselineSync, "c-a", "c-b")
    sa.sync()
    sb.sync()
    a.set_baseline("web", {"eu": 1, "us": 1, "ap": 0}, source="operator")
    b.set_baseline("web", {"eu": 0, "us": 1, "ap": 1}, source="operator")
    won = sa.sync()
    assert sb.sync() == won  # b sees a newer revision than it based its change on: it adopts it
    assert sb.sync() == won  # and does not write its superseded override afterwards
    assert b.baseline_snapshot()["web"] == a.baseline_snapshot()["web"] == {"eu": 0.5, "us": 0.5, "ap": 0.0}
