"""Window features per endpoint, kept as O(1)-per-step running statistics over all series at once.

Features are what the classifier sees; they are built from block means (one per model step) so the
same numbers come out whether the engine runs in the daemon or replays a trace. Everything is relative
to the series' own baseline (a slow, winsorised exponentially weighted mean/sd) so one model serves
endpoints with different normal levels:

per metric ``m``
  ``m:z``        current level vs baseline, in baseline sds
  ``m:zfast``    30 s smoothed level vs baseline
  ``m:slope_s``  short trend: 30 s minus 150 s smoothed level, in baseline sds
  ``m:slope_l``  long trend: 150 s minus 600 s smoothed level, in baseline sds
  ``m:vol``      one-step forecast error sd / baseline sd (volatility)
  ``m:rel_thr``  30 s smoothed level / policy threshold
  ``m:persist``  share of the last ~2 minutes spent above the threshold (a spike is brief, decay is not)
  ``m:breach``   forecast P(breach of the threshold within the horizon)
  ``m:fcast_z``  forecast at the horizon vs baseline, in baseline sds
  ``m:drift_z``  forecast drift over the horizon, in baseline sds
  ``m:missing``  staleness: time since the last value beyond the series' own sampling interval / 120 s
  ``m:anom``     anomaly likelihood of the series (pfepo.predict.core: short vs long-term surprise, seasonal)

Every smoothing constant is a time constant in seconds applied to the time elapsed since the series'
previous value (alpha = 1 - exp(-dt / tau)), and staleness is relative to the series' own sampling
interval, so the same features (and the same model) come out at 1, 5, 10 or 60 s sampling.
per endpoint
  ``max_z``, ``n_z3`` (metrics above 3 sds), ``max_breach``, ``n_rising`` (metrics trending up),
  ``since_fail_min`` (minutes since the last failure, capped), ``fail_rate_h`` (failures in the last
  hour, smoothed), ``priority`` (endpoint context: low 0 .. critical 3).
"""

from __future__ import annotations

import numpy as np

PER_METRIC = ("z", "zfast", "slope_s", "slope_l", "vol", "rel_thr", "persist", "breach", "fcast_z", "drift_z", "missing",
              "anom")
PER_ENDPOINT = ("max_z", "n_z3", "max_breach", "n_rising", "since_fail_min", "fail_rate_h", "priority")
PRIORITY = {"low": 0.0, "medium": 1.0, "high": 2.0, "critical": 3.0}
SD_FLOOR = {"latency_ms": 1.0, "loss_pct": 0.05, "utilization_pct": 1.0, "cpu_pct": 1.0, "error_rate_pct": 0.05}
SINCE_FAIL_CAP_MIN = 600.0


def feature_names(metrics: list[str]) -> list[str]:
    return [f"{m}:{f}" for m in metrics for f in PER_METRIC] + list(PER_ENDPOINT)


def _alpha(step_s: float, tau_s: float) -> float:
    return float(1 - np.exp(-step_s / tau_s))


def _alpha_t(dt: np.ndarray, tau_s: float) -> np.ndarray:
    return 1.0 - np.exp(-dt / tau_s)


class FeatureState:
    """Running statistics for ``n`` series laid out as endpoint-major (series = endpoint * M + metric)."""

    def __init__(self, metrics: list[str], step_s: float, base_tau_s: float = 1800.0):
        self.metrics = list(metrics)
        self.m = len(metrics)
        self.taus = {"fast": 30.0, "mid": 150.0, "slow": 600.0}
        self.base_tau = base_tau_s
        self.a_fail = _alpha(step_s, 3600.0)
        self.step_s = step_s
        self.floor = np.array([SD_FLOOR.get(m, 1e-3) for m in metrics])
        self.n_ep = 0
        self._alloc(0)

    def _alloc(self, e: int) -> None:
        n = e * self.m
        self.fast = np.full(n, np.nan)
        self.mid = np.full(n, np.nan)
        self.slow = np.full(n, np.nan)
        self.bmean = np.full(n, np.nan)
        self.bvar = np.zeros(n)
        self.bcount = np.zeros(n)
        self.miss = np.zeros(n)
        self.over = np.zeros(n)
        self.last = np.full(n, np.nan)
        self.last_t = np.full(n, np.nan)  # time of the series' last value
        self.interval = np.full(n, np.nan)  # its typical sampling interval (s)
        self.up = np.ones(e)
        self.last_fail_s = np.full(e, -np.inf)
        self.fail_rate = np.zeros(e)
        self.priority = np.ones(e)
        self.floor_t = np.tile(self.floor, e)

    def grow(self, e: int) -> None:
        if e <= self.n_ep:
            return
        keys = ("fast", "mid", "slow", "bmean", "bvar", "bcount", "miss", "over", "last", "last_t", "interval")
        old = {k: getattr(self, k) for k in (*keys, "up", "last_fail_s", "fail_rate", "priority")}
        self._alloc(e)
        for k, arr in old.items():
            getattr(self, k)[: arr.size] = arr
        self.n_ep = e
        self.floor_t = np.tile(self.floor, e)

    def nbytes(self) -> int:
        return sum(getattr(self, k).nbytes for k in ("fast", "mid", "slow", "bmean", "bvar", "bcount", "miss", "over",
                                                      "last", "last_t", "interval"))

    def update(self, y: np.ndarray, up: np.ndarray, now: float, thr: np.ndarray) -> int:
        """One model step: ``y`` per series (NaN = none), ``up`` per endpoint (NaN = not reported),
        ``thr`` the threshold per series (NaN = none). Returns the number of new failures (up 1 -> 0)."""
        obs = np.isfinite(y)
        # Elapsed time since each series' previous value: every smoothing step is in seconds.
        dt = np.where(np.isfinite(self.last_t), now - self.last_t, self.step_s)
        dt = np.clip(dt, 1e-3, 3600.0)
        self.interval = np.where(obs, np.where(np.isfinite(self.interval), self.interval + 0.1 * (dt - self.interval), dt),
                                 self.interval)
        self.last_t = np.where(obs, now, self.last_t)
        with np.errstate(invalid="ignore"):
            above = obs & (y > thr)
        a_over = _alpha_t(dt, 120.0)
        self.over = np.where(obs, self.over + a_over * (above - self.over), self.over)
        first = obs & ~np.isfinite(self.fast)
        for name, tau in self.taus.items():
            cur = getattr(self, name)
            a = _alpha_t(dt, tau)
            setattr(self, name, np.where(first, y, np.where(obs, cur + a * (y - cur), cur)))
        # Baseline: plain mean/var while young, then slow EW; inputs winsorised at 4 sd so anomalies
        # (spikes, a creeping failure) move it only slowly instead of being absorbed.
        self.bcount = self.bcount + obs
        a = np.maximum(_alpha_t(dt, self.base_tau), 1.0 / np.maximum(self.bcount, 1))
        sd = self.base_sd()
        with np.errstate(invalid="ignore"):
            yc = np.where(self.bcount > 30, np.clip(y, self.bmean - 4 * sd, self.bmean + 4 * sd), y)
            dev = yc - np.where(np.isfinite(self.bmean), self.bmean, yc)
            bmean = np.where(np.isfinite(self.bmean), self.bmean + a * dev, yc)
            bvar = (1 - a) * (self.bvar + a * dev * dev)
        self.bmean = np.where(obs, bmean, self.bmean)
        self.bvar = np.where(obs, bvar, self.bvar)
        self.last = np.where(obs, y, self.last)
        # Health: a 1 -> 0 transition is a failure (feeds the "recent failures" features).
        known = np.isfinite(up)
        fail = known & (up == 0) & (self.up == 1)
        self.last_fail_s = np.where(fail, now, self.last_fail_s)
        self.fail_rate = (1 - self.a_fail) * self.fail_rate + fail
        self.up = np.where(known, up, self.up)
        return int(fail.sum())

    def base_sd(self) -> np.ndarray:
        rel = 0.02 * np.abs(np.nan_to_num(self.bmean))
        return np.maximum(np.sqrt(np.maximum(self.bvar, 0.0)), np.maximum(self.floor_t, rel))

    def matrix(
        self,
        now: float,
        thresholds: np.ndarray,
        innov_sd: np.ndarray,
        breach: np.ndarray,
        fcast: np.ndarray,
        drift_h: np.ndarray,
        anom: np.ndarray | None = None,
    ) -> np.ndarray:
        """The (endpoints, features) matrix in ``feature_names`` order; NaN where nothing is known yet."""
        e, m = self.n_ep, self.m
        sd = self.base_sd()
        thr = thresholds if thresholds.size == e * m else np.tile(thresholds, e)
        if anom is None:
            anom = np.zeros(e * m)
        with np.errstate(invalid="ignore", divide="ignore"):
            stale = np.clip((now - self.last_t - np.nan_to_num(self.interval, nan=self.step_s)) / 120.0, 0.0, 1.0)
            stale = np.where(np.isfinite(self.last_t), stale, 1.0)
            cols = [
                (self.last - self.bmean) / sd,
                (self.fast - self.bmean) / sd,
                (self.fast - self.mid) / sd,
                (self.mid - self.slow) / sd,
                innov_sd / sd,
                self.fast / thr,
                np.where(np.isfinite(thr), self.over, np.nan),
                breach,
                (fcast - self.bmean) / sd,
                drift_h / sd,
                stale,
                anom,
            ]
            since = np.minimum((now - self.last_fail_s) / 60.0, SINCE_FAIL_CAP_MIN)
        per = np.stack(cols, axis=1).reshape(e, m * len(PER_METRIC))
        return assemble(per, np.stack([since, self.fail_rate, self.priority], axis=1), m)

    def neutral(self, thresholds: np.ndarray) -> np.ndarray:
        """Per-metric feature values of a series sitting at its baseline (for driver attribution)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = self.bmean / np.tile(thresholds, self.n_ep)
        out = np.zeros((self.n_ep * self.m, len(PER_METRIC)))
        out[:, PER_METRIC.index("vol")] = 1.0
        out[:, PER_METRIC.index("rel_thr")] = rel
        return out.reshape(self.n_ep, self.m * len(PER_METRIC))


def assemble(per: np.ndarray, extras: np.ndarray, m: int) -> np.ndarray:
    """Per-metric block (e, m*P) + endpoint extras (since, fail_rate, priority) -> full feature matrix."""
    e = per.shape[0]
    p = len(PER_METRIC)
    blk = per.reshape(e, m, p)
    zf = blk[:, :, PER_METRIC.index("zfast")]
    br = blk[:, :, PER_METRIC.index("breach")]
    sl = blk[:, :, PER_METRIC.index("slope_s")]
    with np.errstate(invalid="ignore"):
        has = np.isfinite(zf).any(axis=1)
        max_z = np.where(has, np.max(np.where(np.isfinite(zf), zf, -np.inf), axis=1), np.nan)
        cross = np.stack(
            [max_z, (zf > 3).sum(axis=1), np.nan_to_num(br).max(axis=1), (sl > 1).sum(axis=1)], axis=1
        )
    return np.concatenate([per, cross, extras], axis=1)
