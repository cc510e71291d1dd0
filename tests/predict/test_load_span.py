"""load11: a busy ramp whose two load metrics do not rise in the same two minutes (CPU leading or lagging
utilisation, or its last window's rise hidden in correlated noise) is still load: the load test looks at the
rise over 1, 2 and 3 trend windows, and a projection that has looked like load stays damped for its whole run
(forecast-only engine, default thresholds, 1/5/10/60 s sampling). Single-resource climbs are untouched."""

from __future__ import annotations

import numpy as np
import pytest

import pfepo.predict.engine as E
from tests.predict.test_load_damping import LEFT, RATES, T0, _alarms, _climb, _quiet


def _offset_busy(t: np.ndarray, seed: int, cpu_shift_s: float) -> dict[str, np.ndarray]:
    """A busy plateau as in test_load_damping._busy (utilisation 53 -> 88 % over 4 minutes, CPU 50 -> 77 %),
    but CPU's ramp lasts 2 minutes and starts ``cpu_shift_s`` after utilisation's (0: CPU done by half-way,
    its last-window rise gone when utilisation reaches its top; 120: CPU ramping in utilisation's last
    2 minutes only)."""
    rng = np.random.default_rng(seed)
    su = np.clip((t - T0) / 240.0, 0, 1)
    sc = np.clip((t - T0 - cpu_shift_s) / 120.0, 0, 1)
    u, c = 53.0 * (1 + 0.66 * su), 50.0 * (1 + 0.55 * sc)
    return {"utilization_pct": u * (1 + 0.05 * rng.standard_normal(t.size)),
            "cpu_pct": c * (1 + 0.05 * rng.standard_normal(t.size)), **_quiet(rng, t.size)}


def _trend_alarms(dt: float, seed: int, shift: float) -> list[float]:
    t = np.arange(0.0, T0 + 1500.0, dt)
    return [a - T0 for a, src in _alarms(dt, _offset_busy(t, seed, shift), t) if "trend" in src]


@pytest.mark.parametrize("dt", RATES)
def test_a_busy_ramp_with_cpu_done_early_is_no_trend_alarm(dt):
    """CPU's ramp over by half-way through utilisation's: at the ramp's top only the 2-3 window span shows
    both rising. Three draws per rate, no trend alarm but test_load_damping's ``LEFT`` one (10 s, draw 0, 360 s
    after the ramp's start: the support outlasting the hold of one window; the predict8 rule alarms there
    too, and not at the other rates and draws -- this shape guards the rule, the next test fails on the old one)."""
    for seed in range(3):
        trend = _trend_alarms(dt, seed, 0.0)
        assert trend[:1] == ([LEFT[(dt, seed)]] if (dt, seed) in LEFT else []), (dt, seed, trend[:2])


def _plateau_trend_onsets(tmp_path, monkeypatch, old: bool) -> list[float]:
    """Trend alarm onsets (s into the trace) of benign-b-s2-ep1 of the issue-shaped set with AR(1) 0.8 noise
    (seed 2; busy ramp 13,377-13,664 s): on that ramp CPU's last-window rise is inside its correlated noise
    while utilisation's projection crosses 95 %. ``old``: the predict8 rule (one window, no latch)."""
    from pfepo.evaluate.diagnose import diagnose
    from pfepo.traces.issue_shapes import issue_trace

    if old:
        monkeypatch.setattr(E, "LOAD_WINDOWS", ())
        monkeypatch.setattr(E, "LOAD_LATCH", False)
    path = tmp_path / "benign_b-i2.csv"
    issue_trace("benign_b", 2, ar=0.8).to_csv(path, index=False, na_rep="")
    return [x["at_s"] for x in diagnose(str(path))["false_alarms"]
            if x["endpoint"] == "benign-b-s2-ep1" and x["source"] == "trend" and 13_300 <= x["at_s"] <= 14_000]


def test_a_busy_ramp_on_correlated_noise_is_no_trend_alarm(tmp_path, monkeypatch):
    """The predict8 rule alarmed 36 s after that ramp's stop (its CPU did not rise in the same two minutes);
    load11's test over 2-3 windows, latched, does not."""
    assert _plateau_trend_onsets(tmp_path, monkeypatch, old=True) == [13_700.0]
    monkeypatch.undo()
    assert _plateau_trend_onsets(tmp_path, monkeypatch, old=False) == []


@pytest.mark.parametrize("dt", RATES)
def test_a_busy_ramp_with_cpu_late_is_no_trend_alarm(dt):
    """CPU following utilisation 2 minutes late (ramping in its last 2 minutes): no trend alarm."""
    for seed in range(3):
        trend = _trend_alarms(dt, seed, 120.0)
        assert trend[:1] == ([LEFT[(dt, seed)]] if (dt, seed) in LEFT else []), (dt, seed, trend[:2])


@pytest.mark.parametrize("dt", RATES)
@pytest.mark.parametrize("cpu_too", [False])
def test_a_single_resource_climb_keeps_its_first_alarm(dt, cpu_too, monkeypatch):
    """A utilisation climb with CPU flat is no load, over any span: the first alarm is the predict8 rule's
    (before the crossing: test_load_damping)."""
    t = np.arange(0.0, T0 + 700.0, dt)
    first = []
    for windows, latch in (((), False), ((2, 3), True)):
        monkeypatch.setattr(E, "LOAD_WINDOWS", windows)
        monkeypatch.setattr(E, "LOAD_LATCH", latch)
        al = _alarms(dt, _climb(t, 1, cpu_too=cpu_too), t)
        assert al, (dt, windows)
        first.append(al[0][0])
    assert first[0] == first[1], (dt, first)
