"""Forecast maths: breach probability rises on a ramp, degenerate series never crash."""

from __future__ import annotations

import numpy as np

from pfepo.predict.forecast import ForecastBank, fit_arima, slope_sd_factor


def test_linear_ramp_gives_rising_breach_probability_and_extrapolates():
    rng = np.random.default_rng(0)
    bank = ForecastBank([15, 30])
    bank.grow(2)
    probs = []
    for t in range(200):
        bank.update(np.array([50 + 0.5 * t + rng.normal(0, 1), 50 + rng.normal(0, 1)]))
        p, mean, _ = bank.breach_probability(np.array([150.0, 150.0]))
        probs.append(p)
    probs = np.array(probs)
    ramp = probs[:, 0]
    assert ramp[60] < 0.05 < 0.9 < ramp[-1]  # rising: low early, high as the ramp nears the threshold
    assert probs[:, 1].max() < 1e-3  # the flat series never looks like a breach
    # drift is extrapolated: forecast 30 steps ahead is about 15 above the last level
    assert abs((mean[0] - bank.level[0]) - 15.0) < 4.0


def test_constant_missing_and_nonfinite_series_do_not_crash():
    bank = ForecastBank([5, 10])
    bank.grow(3)
    for t in range(100):
        v = np.array([7.0, np.nan if t % 3 else 1.0, np.inf if t == 50 else 2.0])
        bank.update(np.where(np.isfinite(v), v, np.nan))
    p, mean, sd = bank.breach_probability(np.array([8.0, 8.0, np.nan]))
    assert np.isfinite(mean).all() and (sd > 0).all()
    assert p[0] < 1e-6 and p[2] == 0.0
    assert fit_arima(np.full(100, 7.0)) is None  # constant: fallback model kept
    assert fit_arima(np.array([1.0, 2.0, np.nan])) is None  # too short


def test_fit_recovers_the_sign_of_an_ar_coefficient():
    rng = np.random.default_rng(3)
    e = rng.normal(0, 1, 400)
    d = np.zeros(400)
    for t in range(1, 400):
        d[t] = 0.7 * d[t - 1] + e[t]
    phi, theta, s2 = fit_arima(np.cumsum(d)[-120:])
    assert phi + theta > 0.3 and s2 > 0


def test_slope_sd_factor_shrinks_with_smoothing():
    assert slope_sd_factor(0.02) < slope_sd_factor(0.1)
