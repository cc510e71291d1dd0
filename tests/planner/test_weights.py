import pytest
from hypothesis import given
from hypothesis import strategies as st

from pfepo.planner.weights import effective, normalise, quantize


def test_quantize_exact_when_divisible():
    assert quantize({"a": 50, "b": 25, "c": 25}, 64) == {"a": 32, "b": 16, "c": 16}


def test_quantize_largest_remainder():
    # 50/30/20 of 64 = 32, 19.2, 12.8 -> floors 32,19,12 (63), the largest remainder (c) gets the slot
    assert quantize({"a": 50, "b": 30, "c": 20}, 64) == {"a": 32, "b": 19, "c": 13}


def test_quantize_zero_weight_stays_zero():
    assert quantize({"a": 0, "b": 1}, 64) == {"a": 0, "b": 64}


@pytest.mark.parametrize("bad", [{"a": -1, "b": 2}, {"a": 0, "b": 0}, {"a": float("nan")}, {"a": float("inf")}])
def test_normalise_rejects(bad):
    with pytest.raises(ValueError):
        normalise(bad)


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.floats(0, 1e6), min_size=1).filter(lambda d: sum(d.values()) > 0),
       st.integers(2, 1024))
def test_quantize_invariants(weights, slots):
    q = quantize(weights, slots)
    assert sum(q.values()) == slots
    assert all(v >= 0 for v in q.values())
    shares = normalise(weights)
    for k in weights:
        assert abs(q[k] - shares[k] * slots) < 1.0 + 1e-9


def test_effective_zeroes_down_regions_but_never_all():
    assert effective({"a": 1, "b": 1}, {"a"}) == {"a": 0.0, "b": 1.0}
    assert effective({"a": 1, "b": 1}, {"a", "b"}) == {"a": 1, "b": 1}
