"""The pure claim rule: no cycle per service, capacity reserved, re-claims replace."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pfepo.cluster.claims import Claim, is_acyclic, refusal

CAP = {"a": 100.0, "b": 100.0, "c": 100.0, "d": 100.0}


def test_direct_back_and_forth_is_refused():
    have = [Claim("web", "b", "a", 10)]
    assert "loop" in refusal(have, Claim("web", "a", "b", 10), CAP)


def test_indirect_cycle_is_refused_but_another_service_is_independent():
    have = [Claim("web", "b", "c", 10), Claim("web", "c", "a", 10)]
    assert "loop" in refusal(have, Claim("web", "a", "b", 10), CAP)
    assert refusal(have, Claim("api", "a", "b", 10), CAP) is None


def test_two_degraded_regions_both_land_in_the_healthy_third():
    have: list[Claim] = []
    for src in ("a", "b"):
        new = Claim("web", src, "c", 40)
        assert refusal(have, new, CAP) is None
        have.append(new)
    assert "loop" in refusal(have, Claim("web", "c", "a", 1), CAP)


def test_headroom_is_reserved_across_services_and_a_reclaim_replaces_its_own_amount():
    have = [Claim("web", "a", "c", 70), Claim("api", "b", "c", 20)]
    assert "headroom" in refusal(have, Claim("db", "d", "c", 11), CAP)
    assert refusal(have, Claim("db", "d", "c", 10), CAP) is None
    assert refusal(have, Claim("web", "a", "c", 80), CAP) is None  # replaces its 70
    assert "headroom" in refusal(have, Claim("web", "a", "c", 81), CAP)


def test_nonsense_is_refused():
    assert refusal([], Claim("web", "a", "a", 1), CAP)
    assert refusal([], Claim("web", "a", "b", 0), CAP)
    assert "no capacity" in refusal([], Claim("web", "a", "zz", 1), CAP)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["web", "api"]), st.sampled_from("abcd"), st.sampled_from("abcd"),
                          st.floats(0, 60)), max_size=40))
def test_accepting_only_what_the_rule_allows_keeps_every_graph_acyclic_and_within_capacity(attempts):
    have: list[Claim] = []
    for service, src, dst, mbps in attempts:
        new = Claim(service, src, dst, mbps)
        if refusal(have, new, CAP) is None:
            have = [c for c in have if c.key != new.key] + [new]
        assert is_acyclic(have)
        for region, cap in CAP.items():
            assert sum(c.mbps for c in have if c.dst == region) <= cap + 1e-6


def test_is_acyclic_detects_a_cycle():
    assert not is_acyclic([Claim("web", "a", "b", 1), Claim("web", "b", "a", 1)])
