"""ARIMA(1,1,1) forecasts for many series at once: statsmodels fits the parameters, numpy runs the filter.

Refitting a state-space model for every new sample costs ~5-20 ms per series (measured on the 2-core development machine), far too
much for thousands of series per second. So statsmodels' SARIMAX is fitted *periodically* on a window of
a series' history (warm-started from the previous parameters), and between refits every series' state is
advanced by the ARIMA(1,1,1) innovations recursion -- the steady-state Kalman filter of that model --
as a handful of vectorised numpy operations over all series:

    d_t = y_t - y_{t-1}                (differences)
    e_t = d_t - phi d_{t-1} - theta e_{t-1}   (one-step innovation)
    yhat_{t+k} = y_t + G_k (phi d_t + theta e_t),   G_k = sum_{j<k} phi^j
    Var_k = s2 * sum_{j<k} Psi_j^2,   Psi_j = 1 + sum_{i=1..j} phi^(i-1) (phi + theta)

``G_k`` and the variance factors are precomputed per series at refit time, so a forecast with its
prediction interval costs O(1) per series and checkpoint. The innovation variance ``s2`` is tracked
online (exponentially weighted), so intervals widen as soon as a series gets noisier, without a refit.

Short histories and series statsmodels cannot fit (constant, too many gaps) use the fallback model
ARIMA(0,1,1) with theta=-0.85 (simple exponential smoothing, smoothing weight 0.15).

Drift: a degrading endpoint shows up as a trend, which ARIMA(1,1,1) without a constant cannot
extrapolate, and a fixed constant would be wrong most of the time. Each series therefore carries a local
drift ``mu`` from Brown's double exponential smoothing (a discounted least-squares slope, O(1) per
step); the ARMA part models deviations from that drift (``d_t - mu``) and the forecast adds ``k * mu``
with the slope's own standard error ``k * c * sd`` in the interval, so noise alone yields no confident
trend. Fits are made on the window minus its least-squares line for the same reason.

Windowed drift (``drift_window`` > 0): instead of Brown's smoothing, ``mu`` is the ordinary least-squares
slope of the observed values over the last ``drift_window`` steps. Brown's slope reaches a new ramp's slope
only after ~2-3 time constants (28 % of it after one, 60 % after two, 81 % after three); the windowed slope reaches it one window
after the ramp's onset (half of it half a window in). It is kept as O(1) running sums per series (values,
age-weighted values, counts, ages, squared ages over a ring of the window), re-summed from the ring every
``RESUM`` windows against round-off. Like Brown's, it restarts after a jump and after a long gap, and it
is 0 until half the window (and at least 3 values) has been seen since the restart. Its standard error is
the full window's (``ols_slope_sd``) times the innovation sd, and the drift is shrunk by ``SHRINK_SE`` of
them towards 0 (a few noisy points are no trend; see ``_shrunk`` for what the innovation sd does there).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import ndtr

FALLBACK_PHI = 0.0
FALLBACK_THETA = -0.85
JUMP_SD = 4.0  # innovations beyond this many sds are level shifts: the drift restarts
MAX_COEF = 0.98  # keep the recursion stable and invertible whatever a fit returns
SHRINK_SE = 2.0  # windowed drift: its size is shrunk by this many of its standard errors (noise is no trend)
RESUM = 16  # windowed drift: re-sum the running sums from the ring every RESUM windows (round-off)


def fit_arima(window: np.ndarray, start: tuple[float, float] | None = None) -> tuple[float, float, float] | None:
    """Fit SARIMAX(1,1,1) to ``window`` (NaN = missing); (phi, theta, sigma2) or None when not fittable."""
    y = np.asarray(window, dtype=float)
    ok = np.isfinite(y)
    if ok.sum() < 30:
        return None
    d = np.diff(y[ok])
    if d.size < 10 or not np.isfinite(d).all() or np.std(d) < 1e-9 * (1 + np.abs(y[ok]).mean()):
        return None
    scale = float(np.std(d)) or 1.0
    t = np.flatnonzero(ok).astype(float)
    slope, icpt = np.polyfit(t, y[ok], 1)
    y = y - (slope * np.arange(y.size) + icpt)
    from statsmodels.tsa.statespace.sarimax import SARIMAX  # heavy import only where fits happen

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # Concentrating the scale out and capping iterations keeps a fit at ~10-15 ms; the online
            # variance takes over the scale anyway, and the next refit warm-starts from these values.
            model = SARIMAX(np.where(ok, y / scale, np.nan), order=(1, 1, 1), trend="n", concentrate_scale=True)
            sp = None if start is None else np.array(start[:2])
            # The optimiser's parameters only (``return_params``), then one filter pass for the concentrated
            # scale: ``fit`` would also run the smoother and build a results object (a fifth of a fit's
            # time) for the same two numbers (tests/predict/test_forecast.py compares them bit for bit).
            params = model.fit(disp=False, start_params=sp, maxiter=10, return_params=True)
            s2 = _concentrated_scale(model, params)
        except Exception:  # noqa: BLE001 - any numerical failure means "keep the old parameters"
            return None
    phi, theta = (float(v) for v in params[:2])
    if not all(np.isfinite([phi, theta, s2])) or s2 <= 0:
        return None
    return (
        float(np.clip(phi, -MAX_COEF, MAX_COEF)),
        float(np.clip(theta, -MAX_COEF, MAX_COEF)),
        s2 * scale**2,
    )


def _concentrated_scale(model, params: np.ndarray) -> float:
    """The concentrated-out scale at ``params``, as ``model.ssm.filter().scale`` has it (the same sum over
    the same per-step terms after the diffuse/burn-in period, divided by the same count of observations),
    from the likelihood's filter pass: no results object with copies of every filtered array."""
    from statsmodels.tsa.statespace.kalman_filter import MEMORY_CONSERVE, MEMORY_NO_LIKELIHOOD

    model.update(params, transformed=True)
    ssm = model.ssm
    kf = ssm._filter(conserve_memory=MEMORY_CONSERVE ^ MEMORY_NO_LIKELIHOOD)
    d = max(ssm.loglikelihood_burn, kf.nobs_diffuse)
    n = np.sum(ssm.k_endog - np.array(ssm._statespace.nmissing)[d:]) - kf.nobs_kendog_univariate_singular
    return float(np.sum(kf.scale[d:]) / n)


def _factors(phi: np.ndarray, theta: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean factors G_k and variance factors sum Psi_j^2 at checkpoints ``steps`` (shape (n, K))."""
    n, kmax = phi.size, int(steps.max())
    g = np.zeros((n, kmax + 1))
    v = np.zeros((n, kmax + 1))
    p_pow = np.ones(n)  # phi^(j-1)
    psi_cum = np.ones(n)  # Psi_0 = 1
    for j in range(1, kmax + 1):
        g[:, j] = g[:, j - 1] + p_pow
        v[:, j] = v[:, j - 1] + psi_cum**2
        psi_cum = psi_cum + p_pow * (phi + theta)
        p_pow = p_pow * phi
    return g[:, steps], v[:, steps]


def slope_sd_factor(alpha: float) -> float:
    """sd of Brown's slope estimate for unit white noise: sqrt(sum w_j^2) with its lag weights w_j."""
    b = 1 - alpha
    j = np.arange(int(20 / alpha) + 10)
    w = (alpha * alpha / b) * b**j * (1 - alpha * (j + 1))
    return float(np.sqrt((w**2).sum()))


def ols_slope_sd(n: int) -> float:
    """sd of the least-squares slope over ``n`` equally spaced points for unit white noise."""
    return float(np.sqrt(12.0 / (n * (n * n - 1.0)))) if n >= 2 else 1.0


_STATE = ("level", "s1", "s2b", "dc", "e", "gap", "seen", "phi", "theta", "s2", "fitted", "g", "v", "last_innov",
          "wring", "wsum")


class ForecastBank:
    """State of many ARIMA(1,1,1)-with-local-drift series advanced together; index = series id.

    ``steps`` are the forecast checkpoints in model steps (the last one is the horizon). ``s2_alpha`` is
    the weight of the newest squared innovation in the online variance, ``drift_alpha`` the smoothing
    constant of the drift (Brown's), ``drift_window`` > 0 the steps of the windowed least-squares drift that
    replaces it; ``max_gap`` missing steps in a row restart a series from its next value instead of
    extrapolating through a long hole.
    """

    def __init__(
        self,
        steps: list[int],
        s2_alpha: float = 0.03,
        drift_alpha: float = 0.04,
        max_gap: int = 6,
        sd_floor_rel: float = 0.002,
        drift_window: int = 0,
    ):
        self.steps = np.asarray(sorted({int(s) for s in steps if s >= 1}), dtype=int)
        if self.steps.size == 0:
            raise ValueError("need at least one forecast step >= 1")
        self.s2_alpha = s2_alpha
        self.drift_alpha = drift_alpha
        self.window = max(0, int(drift_window))
        self.window = 0 if self.window < 3 else self.window
        self.drift_sd = ols_slope_sd(self.window) if self.window else slope_sd_factor(drift_alpha)
        self.t = 0  # steps advanced (ring position of the windowed drift)
        self.max_gap = max_gap
        self.sd_floor_rel = sd_floor_rel
        self.n = 0
        # Every change of the state goes through a method that bumps ``_ver``: forecasts and breach
        # probabilities asked again of the same state (the engine asks three times per step) are reused.
        self._ver = 0
        self._memo: dict = {}
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        k = self.steps.size
        self.level = np.full(n, np.nan)
        self.s1 = np.full(n, np.nan)  # Brown's single and double smoothed values (drift)
        self.s2b = np.full(n, np.nan)
        self.dc = np.zeros(n)  # last difference minus drift
        self.e = np.zeros(n)
        self.gap = np.zeros(n, dtype=np.int64)
        self.seen = np.zeros(n, dtype=np.int64)
        self.phi = np.full(n, FALLBACK_PHI)
        self.theta = np.full(n, FALLBACK_THETA)
        self.s2 = np.full(n, np.nan)
        self.fitted = np.zeros(n, dtype=bool)
        g, v = _factors(self.phi, self.theta, self.steps)
        self.g = g.reshape(n, k)
        self.v = v.reshape(n, k)
        self.last_innov = np.zeros(n)
        self.wring = np.full((n, self.window), np.nan)  # windowed drift: the last ``window`` values fed
        self.wsum = np.zeros((n, 5))  # their running sums: values, age x value, count, age, age^2
        self._mu = np.zeros(n)  # windowed drift: the least-squares slope (the recursion's) ...
        self._dr = np.zeros(n)  # ... and the one the forecasts extrapolate (shrunk)

    def grow(self, n: int) -> None:
        """Make room for series ids < n (new series start with the fallback model)."""
        if n <= self.n:
            return
        old = {k: getattr(self, k) for k in _STATE}
        self._alloc(n)
        for k, arr in old.items():
            getattr(self, k)[: self.n] = arr
        self.n = n
        self._mu = self._slope()
        self._dr = self._shrunk()
        self._changed()

    def _changed(self) -> None:
        self._ver = getattr(self, "_ver", 0) + 1
        self._memo = {}

    def nbytes(self) -> int:
        return sum(getattr(self, k).nbytes for k in _STATE)

    def set_params(self, idx: np.ndarray, phi: np.ndarray, theta: np.ndarray) -> None:
        idx = np.asarray(idx, dtype=int)
        self.phi[idx] = np.clip(phi, -MAX_COEF, MAX_COEF)
        self.theta[idx] = np.clip(theta, -MAX_COEF, MAX_COEF)
        self.g[idx], self.v[idx] = _factors(self.phi[idx], self.theta[idx], self.steps)
        self.fitted[idx] = True
        self._changed()

    def restart(self, idx: np.ndarray) -> None:
        """Start the ARMA state (last difference minus drift, innovation) of series ``idx`` afresh: no
        deviation from the model (after a refit, as after a gap)."""
        self.dc[idx] = 0.0
        self.e[idx] = 0.0
        self._changed()

    def drift(self) -> np.ndarray:
        """The local drift per step (0 where it is not known yet)."""
        if self.window:
            return self._dr
        memo = getattr(self, "_memo", None)
        if memo is not None and "drift" in memo:
            return memo["drift"]
        a = self.drift_alpha
        mu = (a / (1 - a)) * (self.s1 - self.s2b)
        mu = np.where(np.isfinite(mu), mu, 0.0)
        if memo is not None:
            mu.flags.writeable = False  # shared by every caller until the state changes
            memo["drift"] = mu
        return mu

    def update(self, y: np.ndarray) -> None:
        """Advance every series by one model step; ``y`` has one value per series, NaN = no observation."""
        y = np.asarray(y, dtype=float)
        obs = np.isfinite(y)
        has = np.isfinite(self.level)
        start = obs & (~has | (self.gap > self.max_gap))
        cont = obs & ~start
        mu = self._mu if self.window else self.drift()
        pred_dc = self.phi * self.dc + self.theta * self.e
        with np.errstate(invalid="ignore"):
            dc_new = (y - self.level) - mu
            e_new = dc_new - pred_dc
            e2 = e_new**2
            s2_prev = np.where(np.isfinite(self.s2), self.s2, e2)
            # Winsorise the variance update at 8 sd so one wild sample cannot blow intervals up for long.
            e2 = np.minimum(e2, 64 * np.maximum(s2_prev, 1e-12))
            s2_new = (1 - self.s2_alpha) * s2_prev + self.s2_alpha * e2
        self.s2 = np.where(cont, s2_new, self.s2)
        self.last_innov = np.where(cont, e_new, 0.0)
        self.dc = np.where(cont, dc_new, np.where(obs, 0.0, pred_dc))
        self.e = np.where(cont, e_new, 0.0)
        a = self.drift_alpha
        # A level shift is not a trend: after a jump (an innovation beyond JUMP_SD sds) the drift restarts
        # from the new level instead of extrapolating the step for minutes. A ramp moves by small steps.
        with np.errstate(invalid="ignore"):
            jump = cont & (self.seen >= 10) & (e_new**2 > JUMP_SD**2 * s2_prev)
        restart = start | jump
        s1 = np.where(restart, y, np.where(cont, a * y + (1 - a) * self.s1, self.s1))
        self.s2b = np.where(restart, y, np.where(cont, a * s1 + (1 - a) * self.s2b, self.s2b))
        self.s1 = s1
        if self.window:
            self._window_update(y, obs, restart)
        # Missing: Kalman-style propagation of the predicted state (the level follows the forecast).
        self.level = np.where(obs, y, np.where(has, self.level + mu + pred_dc, self.level))
        self.gap = np.where(obs, 0, self.gap + 1)
        self.seen = self.seen + obs
        self._changed()

    def _window_update(self, y: np.ndarray, obs: np.ndarray, restart: np.ndarray) -> None:
        """Advance the windowed drift's ring and running sums by one step (every series ages by one)."""
        w, ws = self.window, self.wsum
        pos = self.t % w
        old = self.wring[:, pos]  # the value that leaves (age w after this step's ageing)
        had = np.isfinite(old)
        # age every entry by one: sum(a+1)y = sum(ay) + sum(y); sum(a+1)^2 = sum a^2 + 2 sum a + count
        ws[:, 4] += 2.0 * ws[:, 3] + ws[:, 2]
        ws[:, 3] += ws[:, 2]
        ws[:, 1] += ws[:, 0]
        oz = np.where(had, old, 0.0)
        ws[:, 0] -= oz
        ws[:, 1] -= w * oz
        ws[:, 2] -= had
        ws[:, 3] -= w * had
        ws[:, 4] -= (w * w) * had
        if restart.any():  # a restart forgets the window
            self.wring[restart] = np.nan
            ws[restart] = 0.0
        yz = np.where(obs, y, np.nan)
        self.wring[:, pos] = yz
        ws[:, 0] += np.where(obs, y, 0.0)
        ws[:, 2] += obs
        self.t += 1
        if self.t % (RESUM * w) == 0:
            self._resum()
        self._mu = self._slope()
        self._dr = self._shrunk()

    def _shrunk(self) -> np.ndarray:
        """The windowed drift the forecasts extrapolate: shrunk by ``SHRINK_SE`` standard errors, with the
        innovation sd as the noise scale. That scale is also what makes a new rise wait: with a moving-average
        coefficient near -1 a ramp's onset inflates the innovation variance for minutes, so the first minutes
        of a rise are shrunk hard (ramps to busy plateaus stay quiet; a genuine climb is announced later, or,
        at a steady slope under 2 x ``ols_slope_sd(window)`` innovation sds per step -- 0.17 at 12 steps --
        not at all: docs/prediction.md). A standard error
        from the fit's own residuals was tried instead and extrapolated busy ramps at full slope. The
        recursion itself uses the unshrunk slope (``_mu``): shrinking it there would feed the shrunk part
        back into the innovations, inflate their variance and shrink the drift further."""
        if not SHRINK_SE:
            return self._mu
        se = self.drift_sd * np.sqrt(np.where(np.isfinite(self.s2), self.s2, 0.0))
        return np.sign(self._mu) * np.maximum(np.abs(self._mu) - SHRINK_SE * se, 0.0)

    def _resum(self) -> None:
        """Recompute the running sums from the ring (exact; bounds the round-off of the running updates)."""
        w = self.window
        age = (self.t - 1 - np.arange(w)) % w  # ring slot k holds the value fed at step t-1-age
        ok = np.isfinite(self.wring)
        yz = np.where(ok, self.wring, 0.0)
        self.wsum[:, 0] = yz.sum(axis=1)
        self.wsum[:, 1] = yz @ age.astype(float)
        self.wsum[:, 2] = ok.sum(axis=1)
        self.wsum[:, 3] = ok @ age.astype(float)
        self.wsum[:, 4] = ok @ (age.astype(float) ** 2)

    def _slope(self) -> np.ndarray:
        """Least-squares slope per step (time runs against age), 0 until half the window is seen."""
        if not self.window:
            return np.zeros(self.n)
        a, b, c, d, e = self.wsum.T
        with np.errstate(invalid="ignore", divide="ignore"):
            den = c * e - d * d
            mu = -(c * b - d * a) / den
        ok = (c >= max(3, (self.window + 1) // 2)) & (den > 0) & np.isfinite(mu)
        return np.where(ok, mu, 0.0)

    def forecast(self, drift: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Means and standard deviations at the checkpoints, shape (n, K); NaN for series never seen.
        ``drift=False``: the same forecast without extrapolating the local drift (the spread is kept)."""
        memo = getattr(self, "_memo", None)  # None: ``replaytape``'s flat banks run this function too
        base = None if memo is None else memo.get("base")
        k = self.steps[None, :].astype(float)
        if base is None:
            a = self.phi * self.dc + self.theta * self.e
            level = self.level[:, None] + self.g * a[:, None]
            s2 = np.where(np.isfinite(self.s2), self.s2, 0.0)[:, None]
            var = s2 * (self.v + (k * self.drift_sd) ** 2)
            floor = self.sd_floor_rel * np.abs(self.level) + 1e-6
            base = level, np.sqrt(np.maximum(var, (floor**2)[:, None]))
            if memo is not None:
                for arr in base:
                    arr.flags.writeable = False
                memo["base"] = base
        level, sd = base
        return level + (k * self.drift()[:, None] if drift else 0.0), sd

    def breach_probability(self, thresholds: np.ndarray, drift: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(series exceeds its threshold at some checkpoint) ~ max over checkpoints of 1 - Phi(z).

        Returns (probability, mean at horizon, sd at horizon); probability is 0 where the threshold is
        NaN or the series has no level yet. The max over a few checkpoints is a cheap lower bound on the
        first-passage probability, exact when the forecast path is monotone.
        """
        memo = getattr(self, "_memo", None)
        key = ("breach", bool(drift))
        if memo is not None and key in memo:
            thr0, thr_copy, out = memo[key]
            if thresholds is thr0 and np.array_equal(thr_copy, thresholds, equal_nan=True):
                return out
        mean, sd = self.forecast(drift)
        thr = np.asarray(thresholds, dtype=float)[:, None]
        with np.errstate(invalid="ignore"):
            p = ndtr((mean - thr) / sd).max(axis=1)
        p = np.where(np.isfinite(p), p, 0.0)
        out = p, mean[:, -1], sd[:, -1]
        if memo is not None:
            for arr in out:
                arr.flags.writeable = False
            memo[key] = (thresholds, np.array(thresholds, dtype=float), out)
        return out
