"""Forecast maths: breach probability rises on a ramp, degenerate series never crash."""

from __future__ import annotations

import numpy as np

from pfepo.predict import forecast
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


def _fit_with_results(window, start=None):
    """fit_arima as it was written before: statsmodels' full ``fit`` (smoother and results object)."""
    import warnings

    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = np.asarray(window, dtype=float)
    ok = np.isfinite(y)
    scale = float(np.std(np.diff(y[ok])))
    slope, icpt = np.polyfit(np.flatnonzero(ok).astype(float), y[ok], 1)
    y = y - (slope * np.arange(y.size) + icpt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SARIMAX(np.where(ok, y / scale, np.nan), order=(1, 1, 1), trend="n", concentrate_scale=True)
        res = model.fit(disp=False, start_params=None if start is None else np.array(start[:2]), maxiter=10)
    clip = forecast.MAX_COEF
    return (float(np.clip(res.params[0], -clip, clip)), float(np.clip(res.params[1], -clip, clip)),
            float(res.scale) * scale**2)


def test_fit_equals_statsmodels_full_fit_bit_for_bit():
    """fit_arima takes the optimiser's parameters and one filter pass for the scale (no smoother, no
    results object): the very numbers of the full ``fit``, cold and warm-started, with missing values."""
    rng = np.random.default_rng(7)
    for i in range(6):
        y = np.cumsum(rng.normal(size=120)) * 3 + 50 + rng.normal(size=120) * (1 + i)
        if i % 2:
            y[rng.integers(0, 120, 12)] = np.nan
        cold = fit_arima(y)
        assert cold == _fit_with_results(y)
        assert fit_arima(y, cold[:2]) == _fit_with_results(y, cold[:2])


def test_slope_sd_factor_shrinks_with_smoothing():
    assert slope_sd_factor(0.02) < slope_sd_factor(0.1)


def test_windowed_drift_running_sums_equal_a_direct_least_squares_fit(monkeypatch):
    """The O(1) running sums (with missing values, restarts and periodic re-sums) give the least-squares
    slope of the values in the window (here unshrunk)."""
    monkeypatch.setattr(forecast, "SHRINK_SE", 0.0)
    rng = np.random.default_rng(3)
    w = 12
    bank = ForecastBank([5, 10], drift_window=w)
    bank.grow(3)
    y = np.cumsum(rng.normal(0, 1, (1000, 3)), axis=0)
    y[rng.random(y.shape) < 0.1] = np.nan
    y[300:320, 1] = np.nan  # a long gap: restart
    worst, checked = 0.0, 0
    for t in range(y.shape[0]):
        bank.update(y[t])
        age = (bank.t - 1 - np.arange(w)) % w
        for i in range(3):
            ok = np.isfinite(bank.wring[i])
            if ok.sum() >= (w + 1) // 2:
                direct = np.polyfit(-age[ok], bank.wring[i, ok], 1)[0]
                worst = max(worst, abs(direct - bank.drift()[i]))
                checked += 1
            else:
                assert bank.drift()[i] == 0.0  # not known yet after a restart
    assert checked > 2000 and worst < 1e-9


def test_windowed_drift_reaches_a_new_ramps_slope_within_one_window_and_browns_does_not():
    """The reason for the windowed drift: one window (``trend_tau_s``) after a ramp's onset it has the
    ramp's slope (less its two-standard-error shrink); Brown's smoothing with the same time constant has
    about a quarter of it."""
    rng = np.random.default_rng(4)
    n, w, slope = 400, 12, 0.3
    banks = {"window": ForecastBank([30], drift_window=w), "brown": ForecastBank([30], drift_alpha=1 - np.exp(-1 / w))}
    got = {}
    for name, bank in banks.items():
        bank.grow(n)
        for t in range(160 + w):
            bank.update(50 + slope * max(0, t - 160) + rng.normal(0, 0.3, n))
        got[name] = float(np.mean(bank.drift()))
    assert 0.55 * slope < got["window"] < 1.1 * slope, got  # measured: 0.64 of it (0.19)
    assert got["brown"] < 0.5 * got["window"], got


def test_windowed_drift_of_noise_alone_is_shrunk_to_nothing():
    """Two standard errors of shrink: a flat noisy series shows no drift in most steps."""
    rng = np.random.default_rng(6)
    bank = ForecastBank([30], drift_window=12)
    bank.grow(200)
    zero = []
    for _ in range(300):
        bank.update(50 + rng.normal(0, 2.0, 200))
        zero.append(np.mean(bank.drift() == 0.0))
    assert np.mean(zero[100:]) > 0.9


def test_windowed_drift_does_not_extrapolate_a_level_shift():
    """A jump restarts the window (as it restarts Brown's drift): a step is not a trend."""
    rng = np.random.default_rng(5)
    bank = ForecastBank([30], drift_window=12)
    bank.grow(1)
    for t in range(200):
        bank.update(np.array([50.0 + (40.0 if t >= 150 else 0.0) + rng.normal(0, 1.0)]))
        if t >= 150:
            assert abs(bank.drift()[0]) < 0.5  # a step of 40 inside a 12-step window would read as ~3/step


def test_memoised_breach_probabilities_equal_a_fresh_computation_after_every_change():
    """The bank reuses forecasts and breach probabilities while its state is unchanged (the engine asks
    three times per step); every state change (update, refit parameters, restart, growth) forgets them,
    and a different threshold array is never answered from memory."""
    rng = np.random.default_rng(2)
    bank = ForecastBank([5, 10, 20])
    bank.grow(3)
    thr = np.array([60.0, np.nan, 55.0])

    def fresh(drift=True):
        saved, bank._memo = bank._memo, None  # the plain computation (no memo), then the memo back
        try:
            return bank.breach_probability(np.array(thr), drift)
        finally:
            bank._memo = saved

    def same(a, b):
        return all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))

    for t in range(80):
        bank.update(np.array([50 + 0.2 * t + rng.normal(), 10 + rng.normal(), 50 + rng.normal()]))
        first = bank.breach_probability(thr)
        assert bank.breach_probability(thr) is first  # asked again: from memory
        assert same(first, fresh()) and same(bank.breach_probability(thr, drift=False), fresh(False))
        if t == 30:
            bank.set_params(np.array([0]), np.array([0.4]), np.array([-0.3]))
            assert same(bank.breach_probability(thr), fresh()) and bank.breach_probability(thr) is not first
        if t == 50:
            bank.restart(np.array([0, 2]))
            assert (bank.dc[[0, 2]] == 0).all() and same(bank.breach_probability(thr), fresh())
        other = thr + 1.0
        assert same(bank.breach_probability(other), bank.breach_probability(np.array(other)))
    bank.grow(4)
    assert bank.breach_probability(np.append(thr, 1.0))[0].size == 4
