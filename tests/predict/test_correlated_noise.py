"""(ar9) Correlated noise: the trend and growth rules' noise bars must follow how far the fast level really
wanders, not what the sample-to-sample differences of AR(1)-like noise suggest (docs/prediction-log.md ar9).
Noise with a correlation time of 22.4 s (0.8 per 5 s sample, the correlated copy of the issue-shaped set) at
1, 5, 10 and 60 s sampling; at 60 s it is nearly white per sample and the bar must stay the white one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from pfepo.predict.engine import LEVEL_TAU_S, PredictiveEngine
from pfepo.traces.issue_shapes import issue_trace

RATES = (1.0, 5.0, 10.0, 60.0)
TAU_C = 5.0 / -math.log(0.8)  # correlation time (s) of AR(1) noise of 0.8 per 5 s sample


def _ar(t: np.ndarray, dt: float, sd: float, seed: int) -> np.ndarray:
    rho = math.exp(-dt / TAU_C)
    z = lfilter([math.sqrt(1.0 - rho * rho)], [1.0, -rho], np.random.default_rng(seed).standard_normal(t.size))
    return 50.0 + sd * z


def _feed(dt: float, y: np.ndarray, t: np.ndarray) -> tuple[PredictiveEngine, float, float]:
    """(engine, its noise bar ``_level_sd``, the measured sd of its fast level) after feeding ``y``."""
    eng = PredictiveEngine()
    i = eng.midx["cpu_pct"]
    lv = []
    for k in range(t.size):
        eng.observe("ep", t[k], {"cpu_pct": y[k], "up": 1})
        if t[k] >= 1800.0 and (t[k] % eng.step_s == 0 or dt > eng.step_s):
            eng.snapshot(t[k])
            lv.append(eng.lvl[i])
    return eng, float(eng._level_sd(eng.bank.n)[i]), float(np.std(lv))


@pytest.mark.parametrize("dt", RATES)
def test_the_noise_bar_follows_the_fast_levels_wander_under_correlated_noise(dt):
    """At 1, 5 and 10 s the fast level of this noise wanders 2-3.5x further than white noise with the same
    sample differences: the bar must be at least half the measured wander (the old bar was ~0.3-0.45 of
    it). At 60 s the noise is white per sample (0.07) and the level is one sample: the bar stays the white
    one (within 35 %; this rate passes on the old code too, it guards that nothing is inflated there)."""
    t = np.arange(0.0, 3 * 3600.0, dt)
    eng, bar, wander = _feed(dt, _ar(t, dt, 4.0, 3), t)
    if dt < 60.0:
        assert bar >= 0.5 * wander, (dt, bar, wander)
    else:
        a = 1 - math.exp(-dt / LEVEL_TAU_S)
        white = 4.0 * math.sqrt(a / (2 - a))
        assert 0.65 * white <= bar <= 1.35 * white, (dt, bar, white)
    assert bar <= 1.5 * wander, (dt, bar, wander)  # a partial correction: never far beyond the wander


@pytest.mark.parametrize("dt", RATES)
def test_white_noise_keeps_its_white_bar(dt):
    """White noise: the correction factor stays ~1 at every rate (the partial correction costs white-noise
    series no lead)."""
    t = np.arange(0.0, 3 * 3600.0, dt)
    y = 50.0 + np.random.default_rng(4).normal(0, 4.0, t.size)
    eng, _, _ = _feed(dt, y, t)
    f = float(eng._ar_factor(eng.bank.n)[eng.midx["cpu_pct"]])
    assert 1.0 <= f <= 1.2, (dt, f)


def test_the_issue_generator_draws_correlated_noise_only_when_asked():
    """``--ar 0`` is the white-noise set itself; ``--ar 0.8`` gives a lag-one correlation of ~0.8 on a flat
    stretch of a benign trace (what the engine must withstand, reproducibly)."""
    pd.testing.assert_frame_equal(issue_trace("benign_a", 1), issue_trace("benign_a", 1, 0.0))
    fr = issue_trace("benign_a", 1, 0.8)
    x = fr[fr["endpoint"] == "benign-a-s1-ep0"]["error_rate_pct"].to_numpy()[:600]
    x = x - pd.Series(x).rolling(61, center=True, min_periods=1).mean().to_numpy()
    r = float(np.corrcoef(x[1:], x[:-1])[0, 1])
    assert 0.6 <= r <= 0.9, r


@pytest.mark.parametrize("dt", (1.0, 5.0, 10.0))
def test_the_factor_is_shrunk_towards_one_by_its_own_sampling_error(dt):
    """(ar10) On white noise the estimated factor wanders with its sampling error (ar9: p95 1.13-1.20 over
    these snapshots). Believed only beyond two of its standard errors, it stays at 1 but for rare moments."""
    fs = []
    for seed in (1, 2, 3):
        t = np.arange(0.0, 3 * 3600.0, dt)
        y = 50.0 + np.random.default_rng(seed).normal(0, 4.0, t.size)
        eng = PredictiveEngine()
        i = eng.midx["cpu_pct"]
        for k in range(t.size):
            eng.observe("ep", t[k], {"cpu_pct": y[k], "up": 1})
            if t[k] >= 3600.0 and t[k] % 300.0 == 0:
                eng.snapshot(t[k])
                fs.append(float(eng._ar_factor(eng.bank.n)[i]))
    assert np.quantile(fs, 0.95) <= 1.05, (dt, np.quantile(fs, 0.95))


def test_the_sampling_error_formula_matches_white_noise():
    """(ar10) ``_ar_se`` (from the integrated autocorrelation of overlapping block differences) is the spread
    the squared ratio shows on white noise: measured 0.19-0.21 at every rate, the formula 0.19 (k = 6)."""
    eng = PredictiveEngine()
    se = float(eng._ar_se(np.array([eng.ar_k]), np.array([1e9]))[0])
    assert 0.15 <= se <= 0.25, se


@pytest.mark.parametrize("dt", RATES)
def test_stationary_correlated_noise_gets_no_multi_window_support(dt):
    """(ar10) A wander of AR(1) noise (correlation time 22.4 s, 10 % of a 70 % level) that rises over 2-3 trend
    windows beyond the widened bar, window after window, is rare: over 8 hours no step passes ``_sustained``
    where it is asked (docs/prediction-log.md ar10: 0 in 33 hours at 5 s)."""
    t = np.arange(0.0, 8 * 3600.0, dt)
    rho = math.exp(-dt / TAU_C)
    z = lfilter([math.sqrt(1.0 - rho * rho)], [1.0, -rho], np.random.default_rng(7).standard_normal(t.size))
    y = 70.0 * (1 + 0.1 * z)
    eng = PredictiveEngine()
    i = eng.midx["utilization_pct"]
    hits = []
    orig = eng._sustained
    eng._sustained = lambda pts, drift, beyond: hits.append(bool(orig(pts, drift, beyond)[i])) or orig(pts, drift, beyond)
    for k in range(t.size):
        eng.observe("ep", t[k], {"utilization_pct": y[k], "up": 1})
    eng.advance(t[-1])
    assert sum(hits) == 0, (dt, sum(hits), len(hits))


@pytest.mark.parametrize("seed", (4, 5))
def test_a_busy_utilisation_climb_on_correlated_noise_alarms_ahead(tmp_path, seed):
    """(ar10) A busy endpoint's 10-minute utilisation climb to 100 % on AR(1) noise of 0.8 per sample
    (``issue_shapes --kinds util_busy10 --ar 0.8``): its 2-minute rises are inside the widened noise bar,
    its 4-6 minute rise is not. ar9's one-window bar missed seed 4 and alarmed 15 s ahead on seed 5; the
    multi-window support must alarm at least 60 s ahead (main: 285 and 75 s)."""
    from pfepo.evaluate.diagnose import diagnose

    path = tmp_path / f"u{seed}.csv"
    issue_trace("util_busy10", seed, 0.8).to_csv(path, index=False, na_rep="")
    (ev,) = diagnose(str(path))["events"]
    assert ev["lead_s"] is not None and ev["lead_s"] >= 60.0, ev
