"""Planned shifts pass the gate (a cluster's claims); emergency failover does not ask."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pfepo.planner import Planner
from pfepo.planner.shifts import shift_edges


class Gate:
    """Refuses every shift toward the regions in ``refuse`` (records every question)."""

    def __init__(self, refuse=()):
        self.refuse = set(refuse)
        self.asked = []

    def allow(self, service, src, dst, slots):
        self.asked.append((service, src, dst, slots))
        return f"{dst} refused" if dst in self.refuse else None


def test_a_refused_target_is_skipped_and_the_other_gets_the_shift(config, Driver):
    gate = Gate(refuse={"us"})
    d = Driver(Planner(config, gate=gate))
    plan = d.step(0, {"eu": 50})
    assert plan.weights["web"]["eu"] < 21 and plan.weights["web"]["us"] == 21
    assert plan.weights["web"]["ap"] == 64 - 21 - plan.weights["web"]["eu"]
    assert any(a[1:3] == ("eu", "us") for a in gate.asked)  # asked first, refused
    assert d.planner.shifts()["web"] == {("eu", "ap"): 21 - plan.weights["web"]["eu"]}


def test_every_target_refused_holds_with_the_reason(config, Driver):
    d = Driver(Planner(config, gate=Gate(refuse={"us", "ap"})))
    plan = d.step(0, {"eu": 50})
    assert plan.weights["web"] == {"ap": 22, "eu": 21, "us": 21}
    assert any(e["kind"] == "hold" and "refused" in e["reason"] for e in plan.events)


def test_failure_moves_at_once_without_asking(config, Driver):
    gate = Gate(refuse={"us", "ap"})
    d = Driver(Planner(config, gate=gate))
    plan = d.step(0, down={"eu"})
    assert plan.weights["web"]["eu"] == 0 and gate.asked == []


def test_dry_run_asks_nothing(Driver):
    from tests.planner.conftest import build_config

    gate = Gate()
    d = Driver(Planner(build_config(dry_run=True), gate=gate))
    d.step(0, {"eu": 50})
    assert gate.asked == []


def test_planner_shifts_are_the_edges_of_its_weights(config, Driver):
    d = Driver(Planner(config, gate=Gate()))
    d.step(0, {"eu": 50})
    edges = d.planner.shifts()["web"]
    assert set(edges) == {("eu", "us"), ("eu", "ap")} and sum(edges.values()) == 21 - d.current["web"]["eu"]


@given(st.lists(st.integers(0, 30), min_size=3, max_size=3), st.lists(st.integers(0, 30), min_size=3, max_size=3))
def test_edges_add_up_and_never_form_a_cycle(nom, cur):
    regions = ["a", "b", "c"]
    baseline = dict(zip(regions, nom, strict=True))
    total = sum(nom)
    if total == 0 or sum(cur) == 0:
        return
    # same total: scale cur onto baseline's sum
    weights = dict(zip(regions, cur, strict=True))
    diff = total - sum(cur)
    weights["a"] += diff
    if weights["a"] < 0:
        return
    edges = shift_edges(baseline, weights)
    for r in regions:
        out = sum(n for (s, _), n in edges.items() if s == r)
        into = sum(n for (_, t), n in edges.items() if t == r)
        assert out == max(0, baseline[r] - weights[r]) and into == max(0, weights[r] - baseline[r])
        assert not (out and into)
