"""The univariate scorer as shipped before the shared core (kept only as the baseline of ``pfepo bench predict``).

Copied unchanged from pfepo/predict/univariate.py at commit 7a8ddf4; do not use it for anything else.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from pfepo.predict.forecast import ForecastBank, fit_arima


def score_series(
    values: np.ndarray, horizon: int = 30, baseline: int = 300, lag: int = 30, min_rows: int = 30, refit: int = 500
) -> np.ndarray:
    y = np.asarray(values, dtype=float)
    y = np.where(np.isfinite(y), y, np.nan)
    n = y.size
    s = pd.Series(y)
    med = s.rolling(baseline, min_periods=min_rows).median().shift(lag)
    mad = (s - med).abs().rolling(baseline, min_periods=min_rows).median().shift(lag)
    # Before a lagged baseline exists, fall back to an expanding one (still causal).
    med = med.fillna(s.expanding(min_periods=min_rows).median())
    mad = mad.fillna((s - med).abs().expanding(min_periods=min_rows).median())
    scale = np.maximum(1.4826 * mad.to_numpy(), 0.01 * np.abs(med.to_numpy()))
    scale = np.maximum(np.nan_to_num(scale, nan=np.inf), 1e-9)
    level = s.ewm(span=5, ignore_na=True).mean().to_numpy()

    bank = ForecastBank([horizon], max_gap=10**9)
    bank.grow(1)
    fc = np.full(n, np.nan)
    for t in range(n):
        bank.update(y[t : t + 1])
        if t >= 60 and (t == 60 or t % refit == 0):
            res = fit_arima(y[max(0, t - 119) : t + 1], (bank.phi[0], bank.theta[0]) if bank.fitted[0] else None)
            if res is not None:
                bank.set_params(np.array([0]), np.array([res[0]]), np.array([res[1]]))
        mean, _ = bank.forecast()
        fc[t] = mean[0, -1]
    m = med.to_numpy()
    with np.errstate(invalid="ignore"):
        z = (level - m) / scale
        zf = (fc - m) / scale
        sgn = np.where(z >= 0, 1.0, -1.0)
        dev = np.fmax(np.abs(z), sgn * zf)
        trend = np.nan_to_num(sgn * (zf - z))
        risk = ndtr(dev - 4.0) * (0.5 + 0.5 * np.tanh(trend / 2.0))
    risk = pd.Series(np.where(np.isfinite(y) & np.isfinite(risk), risk, np.nan)).ffill().fillna(0.0).to_numpy()
    return np.clip(risk, 0.0, 1.0)
