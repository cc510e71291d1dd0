"""The anomaly core: event-like risk for many series, the same arithmetic streaming or in batch.

``pfepo predict`` (one series, all rows at once), the daemon's engine (every series, one model step at a
time) and ``pfepo evaluate`` (the engine on a simulated clock) run this class. ``update(Y, t)`` takes a
block of rows ``Y`` of shape (T, N) -- T time steps of N series on a regular grid of ``dt`` seconds -- and
is vectorised over both axes: the recursions are first-order filters computed as log-depth numpy scans.
The few state-dependent (non-linear) choices -- winsorising bounds, scales, the seasonal profile -- use
the state frozen at the start of fixed chunks of ``CHUNK`` steps of the core's own clock (plus early
refreshes at 32, 64 and 128 steps; one clock for all its series); which rows belong to an episode (the
one choice that depends on risk itself) is settled row by row, in passes over a chunk (see ``_chunk``),
so one call with 10,000 rows and 10,000 calls with one row give the same numbers (tested).

Per step and series (all time constants in seconds, each at least a minimum number of samples so a
slowly sampled series still has enough points behind every estimate):

1. Seasonality: a daily profile of the residual against a level of one period's time constant, in phase
   bins of at least 15 minutes and a whole number of samples, learnt per sample (a running mean over the
   first periods, then ~0.3 weight per period, and >= 10 samples behind a bin at hourly sampling) as two
   half-profiles from even and odd days. Their cross-products predict, without in-sample noise bias, how
   much variance the profile (their average, smoothed over neighbouring bins where that predicts more)
   would remove; it is subtracted only where a bin has been seen on >= 2 days, once >= 90 % of the bins
   are, and while it removes >= 20 % of the variance, so a daily peak is not an anomaly and a series
   without a daily cycle is left alone; switching it on rescales the level spread at once (``_season``), but
   never below the residual the profile learnt so far left on the rows after it (weekly cycles, holidays).
   Until then: conservative (no seasonal correction, and no risk at all during the warm-up).
   week10: the same halves per day class (weekdays, and a weekend) replace the daily profile
   where they are predicted to remove >= 20 % of what it leaves, and keep doing so on the days after
   (``_week``): a weekend lower than the weekdays is not an anomaly, a missing weekday peak still is.
   day12: the weekend is the 48 hours the series' own past rows split off best (``_weekend``), so a
   series whose timestamps are in any zone has its weekend where it is, not at midnight UTC.
2. Robust scale from the series itself: noise sd = mean absolute first difference x sqrt(pi)/2
   (winsorised), level spread = mean absolute deviation from the baseline x 1.2533, both floored only by
   half the series' value quantum (smallest non-zero change seen) -- never by a share of the level (a
   series that never moved has a numerical floor of 1e-12 x its level: the same series in any unit, x 2**k,
   gets the same risk to the bit; fourteenth session, it was an absolute 1e-12). Twenty-third session: both
   (and the RMS slope below) start as the running mean of their rows (``_run_alpha``), not at their first
   row, which still held 22 % of an EW mean's weight at row 227: young white noise alarmed 3-10x more often
   than old. The level CUSUM's long-window ratio (pfepo.predict.episodes) keeps first-row starts (measured:
   a running start there missed level shifts of an hourly AR(0.5) series and a missing daily peak at 10-minute
   sampling came 1-2 hours later).
   Rows deep inside a freeze (a run of identical values improbable under the series' own repeat rate)
   do not update them: the scales describe the series when it moves (``_still``).
   Twenty-ninth session: their updates are winsorised at 4 frozen scales, so a scale learnt on a quiet start
   grew only ~2x per chunk; where most of a chunk's rows exceed the cap it is raised to what their median
   says (``_catch_up``).
3. Raw surprise = max(innovation, deviation), capped at 20: ``innovation`` is |x - fast level before| in
   noise sds (onsets, jumps); ``deviation`` is the medium level (plus its trend over ``horizon_s``,
   shrunk by two standard errors) against the winsorised slow baseline as of the row before, in level
   spreads (creeps; seventeenth session: it was the baseline frozen at the chunk start, up to 256 rows
   old, so at slow sampling a lasting shift alarmed again when its refractory period ended). A
   standard error is that of white noise of the series' noise sd or, where larger, the series' own RMS
   slope (sixteenth session: a smooth wander's slopes are real but do not last).
4. Anomaly likelihood: the short-term mean of the raw surprise against its own long-term mean and sd
   (so a series that is always spiky must spike harder); ``risk = Phi(zl - z0)``.
5. Event-like output: once risk reaches ``alarm`` an episode starts; for ``refractory_s`` after it,
   risk is capped at ``alarm / 2`` (no repeated alarms for one episode) and the baseline follows the
   data without winsorising, at three times its rate, from the onset row on (seventeenth session: it
   switched at chunk refreshes, so with a refractory shorter than a chunk it followed some episodes for a
   whole chunk and others not at all), so a lasting new level becomes the new normal instead of pinning
   risk, and a shift back from it is news again.
6. Phase routine (fifteenth session, ``_phase``): the raw surprise (and the episodes' level CUSUM) is
   divided by a divisor per phase bin, >= 1 only where the mean squared surprise of that bin, on even and
   on odd days alike, is over twice its median over the bins: a daily job or a sharp daily edge the
   profile cannot take stops alarming every day; a one-off (seen on one kind of day) damps nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

CHUNK = 256
DAY_S = 86_400.0
WINSOR = 4.0  # winsorise updates of baselines and scales at this many scales
MOVE_ROWS_MAX = 4096  # a changed seasonal correction moves the levels by its change over at most this many rows
HAMPEL = 7  # after an onset the references follow rows winsorised around the median of this many: a glitch of
# fewer than half as many rows is no level
RAISE_OFF = 1.01  # a classifier probability never reaches this: the classifier does not raise risk alone
FREEZE_DECADES = 6.0  # a run of identical values this improbable under the series' own repeat rate is a freeze
FREEZE_MIN = 5  # ... and at least this many repeats (the frozen-values channel's yardsticks)
SLOPE_K = 1.0  # the series' own RMS slope counts as one standard error of its slope
CATCH_UP = (1.0, 4.0, 16.0)  # a scale whose winsorising cap the majority of a chunk's rows exceeds by these factors ...
CATCH_MIN = 16  # ... (of at least this many rows) is too small: it is raised at the refresh (``_catch_up``)
RAW_CAP = 20.0  # surprise is capped (in scales) so one wild value cannot dominate the long-term statistics
SEASON_BIN_S = 900.0  # the seasonal profile's phase bins: at least this wide, and a whole number of samples
SEASON_KEEP = 0.7  # each period of new data leaves this share of a learnt profile bin (~0.3 weight per day) ...
SEASON_SAMPLES = 10.0  # ... or more, so a bin averages >= this many samples (hourly sampling: 1 sample a day)
SEASON_GAIN = 0.2  # the profile is subtracted only while it is predicted to remove this share of the variance
SEASON_COVER = 0.9  # ... and once this share of the phase bins seen is learnt (one scale serves all phases)
WEEK_SHARE = np.array([5.0 / 7.0, 2.0 / 7.0])  # the share of days that are weekdays / weekend days
WEEK_LEFT_MIN = 0.05  # the variance the daily profile leaves is taken as at least this share of the raw variance
# when the class profiles are judged (``_week``): a smaller remainder is estimation error, not a measurement
PHASE_CAP = RAW_CAP  # a surprise counts toward its phase's routine power as the core caps it anyway (the two
# halves, not a cap, keep a one-off from making its phase routine: see ``_phase``)


@dataclass(frozen=True)
class CoreParams:
    """Time constants in seconds; each is raised to ``min_samples x dt`` when sampling is slow."""

    dt: float
    horizon_s: float = 300.0
    fast_s: float = 30.0
    mid_s: float = 300.0
    base_s: float = 3600.0
    short_s: float = 30.0
    long_s: float = 6 * 3600.0
    refractory_s: float | None = None  # default: the baseline's time constant
    warmup_s: float = 3600.0
    season_period_s: float = DAY_S
    weekly: bool = True  # week10: weekday and weekend profiles where the period is a day (~3x the seasonal arrays)
    z0: float = 3.0
    alarm: float = 0.5
    min_fast: float = 2.0  # minimum samples behind each time constant
    min_mid: float = 6.0
    min_base: float = 150.0
    min_short: float = 2.0
    min_long: float = 600.0
    min_warmup: float = 128.0

    def tau(self, seconds: float, samples: float) -> float:
        return max(seconds, samples * self.dt)

    @property
    def refractory(self) -> float:
        return self.refractory_s if self.refractory_s is not None else self.tau(self.base_s, self.min_base)

    @property
    def base_window_s(self) -> float:
        """What the baseline calls recent: an EW mean of time constant tau averages like a window of 2 tau."""
        return 2.0 * self.tau(self.base_s, self.min_base)


def _alpha(dt: float, tau: float) -> float:
    return float(1.0 - math.exp(-dt / tau))


def _ewm(u: np.ndarray, a: float | np.ndarray, s0: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """EW mean path over the rows where ``mask``; other rows hold the state. A series whose state is NaN
    starts at its first masked value (NaN before it). A log-depth scan of s_t = A_t s_(t-1) + B_t."""
    tn = u.shape[0]
    if tn == 1 and ONE_ROW:
        return _ewm1(u, a if np.ndim(a) == 0 else a[0], s0, mask)
    started = np.isfinite(s0)
    if started.all():
        if mask.all() and np.ndim(a) == 0:  # the common case: constant coefficients, precomputed powers
            y = a * u
            steps, decay = _scan_factors(a, tn)
            for k, c in steps:
                y[k:] += c * y[:-k]
            return y + decay * s0[None, :]
        at = np.where(mask, a, 0.0)
        bt = at * np.where(mask, u, 0.0)
        at = 1.0 - at
        seen = None
    else:
        seen = np.cumsum(mask, axis=0)
        at = np.where(mask, np.where(~started[None, :] & (seen == 1), 1.0, a), 0.0)
        bt = at * np.where(mask, u, 0.0)
        at = 1.0 - at
    k = 1
    while k < tn:
        bt[k:] = bt[k:] + at[k:] * bt[:-k]
        at[k:] = at[k:] * at[:-k]
        k *= 2
    out = bt + at * np.where(started, s0, 0.0)[None, :]
    return out if seen is None else np.where(~started[None, :] & (seen == 0), np.nan, out)


ONE_ROW = True  # one-row calls (the engine's, every model step) take ``_ewm1``: same bits, fewer numpy calls


def _ewm1(u: np.ndarray, a: float | np.ndarray, s0: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``_ewm`` for one row, to the bit: the scan's arithmetic written out per case -- a started series
    gets a*u + (1-a)*s0 (observed) or 0 + s0 (not); a series not started yet u + 0 (0 * 0 added), else
    NaN (tests/predict/test_core.py compares it with the general path)."""
    started = np.isfinite(s0)
    v = u[0]
    on = np.where(started, a * v + (1.0 - a) * s0, v + 0.0)  # NaN arithmetic raises no warning
    off = np.where(started, s0 + 0.0, np.nan)
    return np.where(mask[0], on, off)[None, :]


def _run_alpha(a: float, n0: np.ndarray, mask: np.ndarray) -> tuple[float | np.ndarray, np.ndarray]:
    """Weights of an EW mean that starts as the running mean of its rows: the k-th masked row of a series
    weighs max(a, 1/k) (``n0`` rows before the chunk), so a young estimate is the mean of all its rows, not
    one dominated by its first. Returns the weight (the scalar ``a`` where every series is past 1/a rows:
    ``_ewm``'s fast path) and the counts after the chunk."""
    if (n0 * a >= 1.0).all():
        return a, n0 + mask.sum(axis=0)
    cnt = n0[None, :] + np.cumsum(mask, axis=0)
    return np.maximum(a, 1.0 / np.maximum(cnt, 1.0)), cnt[-1]


_SCAN: dict[tuple[float, int], tuple[list[tuple[int, float]], np.ndarray]] = {}


def _scan_factors(a: float, tn: int) -> tuple[list[tuple[int, float]], np.ndarray]:
    """Doubling-step factors (k, b^k) and start-state decay b^(t+1) for a constant weight ``a``."""
    key = (a, tn)
    f = _SCAN.get(key)
    if f is None:
        b = 1.0 - a
        steps, k = [], 1
        while k < tn:
            steps.append((k, b**k))
            k *= 2
        f = _SCAN[key] = (steps, np.power(b, np.arange(1, tn + 1))[:, None])
    return f


WARMUP_BOUNDARIES = (32, 64, 128, 256, 384)  # early refreshes so a young series gets its scales soon


def _next_boundary(clock: int) -> int:
    """The next step count at which references are refreshed: 32, 64, 128, then every CHUNK."""
    for b in WARMUP_BOUNDARIES:
        if clock < b:
            return b
    return (clock // CHUNK + 1) * CHUNK


def _nz(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, 0.0)


def _ffill(x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs along time; rows before the first value take ``start``."""
    t = x.shape[0]
    if t == 1:
        return np.where(np.isfinite(x), x, start[None, :])
    ok = np.isfinite(x)
    idx = np.where(ok, np.arange(t)[:, None], -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = np.take_along_axis(x, np.maximum(idx, 0), axis=0)
    return np.where(idx >= 0, out, start[None, :])


def _shift(first: np.ndarray, path: np.ndarray) -> np.ndarray:
    """The path one step back: ``first`` then path[:-1]."""
    if path.shape[0] == 1:
        return first[None, :]
    return np.vstack([first[None, :], path[:-1]])


def _running_median(xf: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """Each row's median over itself and the ``HAMPEL - 1`` rows before it (``hist`` (N, HAMPEL - 1): the rows
    before the chunk, most recent first); the row itself where one of them is not known yet (a series' first rows)."""
    path = np.concatenate([hist[:, ::-1].T, xf], axis=0)
    win = np.lib.stride_tricks.sliding_window_view(path, HAMPEL, axis=0)  # (T, N, HAMPEL)
    s = np.sort(win, axis=-1)  # NaNs sort last; the middle of an odd count is np.median's value to the bit
    m = np.where(np.isnan(s[..., -1]), np.nan, s[..., HAMPEL // 2])  # and like np.median, NaN if any is
    return np.where(np.isfinite(m), m, xf)


def _nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=1)`` for rows holding at least one value, without its masked-array path (which
    cost a tenth of ``pfepo predict``'s scoring at one call per chunk): NaNs sort last, so the middle of each
    row's values is at its count's middle."""
    s = np.sort(a, axis=1)
    c = (~np.isnan(a)).sum(axis=1)
    r = np.arange(a.shape[0])
    return (s[r, (c - 1) // 2] + s[r, c // 2]) / 2


def _move_weights(k: int, a_fast: float, a_mid: float, a_base: float, a_sref: float) -> np.ndarray:
    """Weights over the ``k`` rows before a refresh (oldest first) that turn a change of the seasonal
    correction on those rows into the change of each level (``AnomalyCore._move_levels``): the impulse
    responses of fast, mid, mid2 (mid's smoothing), the baseline and ``sref`` at the last row, then one row
    per Hampel history column (column c: the row c steps before the refresh). Linear filters from 0, so a
    level's move is its filter of the change, computed without a (rows, series) array."""
    e = np.zeros((k, 1))
    e[0] = 1.0
    zero, ones = np.zeros(1), np.ones((k, 1), dtype=bool)
    mid = _ewm(e, a_mid, zero, ones)
    paths = [_ewm(e, a_fast, zero, ones), mid, _ewm(mid, a_mid, zero, ones), _ewm(e, a_base, zero, ones),
             _ewm(e, a_sref, zero, ones)]
    w = np.zeros((len(paths) + HAMPEL - 1, k))
    w[: len(paths)] = np.stack([h[::-1, 0] for h in paths])  # row i is k - 1 - i steps before the last
    lag = np.arange(HAMPEL - 1)
    w[len(paths) + lag, k - 1 - lag] = 1.0
    return w


_STATE = ("last_xs", "last_y", "run", "reps", "diffs", "ref_p", "fast", "mid", "mid2", "base", "sref", "noise", "spread", "quantum", "short", "lmean",
          "lvar", "until", "var_raw", "var_oos", "season_gain", "season_on", "ref_base", "ref_noise", "ref_spread", "ref_lmean",
          "ref_lsd", "risk", "raw", "dev", "zl", "slope_v", "ref_slope", "noise_l", "dev_l", "ref_rl",
          "noise_w", "n_d", "n_v", "n_s", "over_d", "over_v")


class Runs(NamedTuple):
    """Runs of identical raw values over one chunk (``AnomalyCore._still``), shared with the frozen-values
    channel (pfepo.predict.episodes), which judges the same runs against the same repeat rate."""

    prev: np.ndarray  # the last observed raw value before each row
    dobs: np.ndarray  # rows with a first difference (observed, and a value before them)
    same: np.ndarray  # ... equal to that value
    run: np.ndarray  # repeats of the current value at each row
    run0: np.ndarray  # repeats before the chunk (per series)


class ChunkSums:
    """One chunk's sums and counts per (series, profile position), held only for the positions the chunk's
    rows touched. Every series shares the core's clock, so a chunk touches the same few positions for all
    of them: at the engine's 5-10 s steps a 256-step chunk spans 2-4 of the 96 phase bins, and the dense
    (series x 7 days x 96 bins) arrays were a third of the engine's memory per series, nearly all zeros.
    The same additions in the same order as dense sums: the folded profiles are bit for bit the same."""

    def __init__(self, size: int, n: int = 0):
        self.col = np.full(size, -1)  # each position's column (-1: not touched in this chunk)
        self.pos = np.zeros(0, dtype=int)  # the position of each column
        self.s = np.zeros((n, 0))
        self.c = np.zeros((n, 0))

    def cols(self, pos: np.ndarray) -> np.ndarray:
        """The columns of positions ``pos`` (any shape), adding columns for new ones."""
        new = np.unique(pos[self.col[pos] < 0])
        if new.size:
            self.col[new] = self.pos.size + np.arange(new.size)
            self.pos = np.concatenate([self.pos, new])
            pad = np.zeros((self.s.shape[0], new.size))
            self.s, self.c = np.hstack([self.s, pad]), np.hstack([self.c, pad])
        return self.col[pos]

    def add(self, idx: np.ndarray, pos: np.ndarray, w: np.ndarray, ok: np.ndarray) -> None:
        """Add ``w`` (T, len(idx)) where ``ok`` to the sums of series ``idx`` at positions ``pos`` (T,), one
        count each (a one-row step: plain fancy indexing, its (series, position) pairs being distinct)."""
        if w.shape[0] == 1:
            sel = idx[ok[0]]
            col = self.cols(pos[:1])[0]
            self.s[sel, col] += w[0, ok[0]]
            self.c[sel, col] += 1.0
            return
        cols = self.cols(pos)
        m = self.pos.size
        flat = (np.arange(idx.size)[None, :] * m + cols[:, None])[ok]
        size = idx.size * m
        self.s[idx] += np.bincount(flat, weights=w[ok], minlength=size).reshape(idx.size, m)
        self.c[idx] += np.bincount(flat, minlength=size).reshape(idx.size, m)

    def grow(self, n: int) -> None:
        pad = np.zeros((n - self.s.shape[0], self.s.shape[1]))
        self.s, self.c = np.vstack([self.s, pad]), np.vstack([self.c, pad])

    def clear(self) -> None:
        self.col[self.pos] = -1
        self.pos = np.zeros(0, dtype=int)
        self.s, self.c = self.s[:, :0], self.c[:, :0]

    @property
    def nbytes(self) -> int:
        return int(self.col.nbytes + self.pos.nbytes + self.s.nbytes + self.c.nbytes)


class AnomalyCore:
    """State of N series; ``update`` advances them by a block of rows and returns their risk."""

    def __init__(self, params: CoreParams, n: int = 0, episodes: bool = True):
        """``episodes``: run the extra evidence channels of pfepo.predict.episodes (they change ``risk``
        only); a user that never reads ``risk`` (the engine, where every metric has a threshold) skips them."""
        self.p = params
        p = params
        self.a_fast = _alpha(p.dt, p.tau(p.fast_s, p.min_fast))
        self.a_mid = _alpha(p.dt, p.tau(p.mid_s, p.min_mid))
        self.a_base = _alpha(p.dt, p.tau(p.base_s, p.min_base))
        self.a_base_refr = min(1.0, 3.0 * self.a_base)
        self.a_short = _alpha(p.dt, p.tau(p.short_s, p.min_short))
        self.a_long = _alpha(p.dt, p.tau(p.long_s, p.min_long))
        self.a_var = _alpha(p.dt, 2 * p.season_period_s)
        self.a_oos = _alpha(p.dt, p.season_period_s)
        self.a_sref = _alpha(p.dt, p.tau(p.season_period_s, p.min_base))
        self.per_rows = p.season_period_s / p.dt  # rows in a period
        k = max(HAMPEL - 1, min(MOVE_ROWS_MAX, math.ceil(4.0 / min(self.a_base, self.a_sref))))
        self.move_w = _move_weights(k, self.a_fast, self.a_mid, self.a_base, self.a_sref)
        self._fc_memo: tuple = (None, None)  # ((now, week), the filters' weight per bin / position): ``_filtered_correction``
        self.n_warm = max(p.min_warmup, p.warmup_s / p.dt)
        self.h_steps = p.horizon_s / p.dt
        # Brown's slope of the medium level: its sd for unit white noise (to shrink noisy trends to 0).
        b = 1 - self.a_mid
        j = np.arange(int(20 / self.a_mid) + 10)
        w = (self.a_mid**2 / b) * b**j * (1 - self.a_mid * (j + 1))
        self.slope_sd = float(np.sqrt((w**2).sum()))
        # phase bins of a whole number of samples, at least 15 minutes (so a bin gets whole samples each
        # period: at 10-minute sampling 20-minute bins, not 15-minute bins alternately fed 1 and 2 samples)
        per_bin = max(1, math.ceil(SEASON_BIN_S / p.dt - 1e-9)) * p.dt
        self.bins = int(np.clip(round(p.season_period_s / per_bin), 8, 96))
        self.bin_w = p.season_period_s / self.bins
        spp = self.bin_w / p.dt  # samples per bin and period; EW effective samples spp (2 - w) / w >= SEASON_SAMPLES
        self.season_keep = max(SEASON_KEEP, 1.0 - 2.0 * spp / (SEASON_SAMPLES + spp))
        self.weekly = p.weekly and p.season_period_s == DAY_S  # week10: weekday and weekend profiles (UTC days)
        self.a_week = _alpha(p.dt, 7 * DAY_S)
        nb = self.bins
        self._wpos = np.arange(7 * nb).reshape(7, nb)  # each (day, bin)'s place in the UTC week (Monday 00:00 = 0)
        # for each window start hour and hour of the day: the first weekend day (the first day whose hour lies in it)
        self._wfirst = np.mod(-((np.arange(24)[None, :] - np.arange(168)[:, None]) // 24), 7)
        self.clock = 0  # steps since the first update (chunk boundaries are multiples of CHUNK)
        # extra evidence channels, risk only (the module imports this one, hence imported here)
        from pfepo.predict.episodes import Episodes

        self.episodes = Episodes(self) if episodes else None
        self.runs: Runs | None = None  # the last chunk's runs of identical values (``_still``)
        self.n = 0
        self._alloc(0)
        self.grow(n)

    # ----- state ---------------------------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        self.n = 0
        self.nobs = np.zeros(n)
        self.nraw = np.zeros(n)  # rows that fed the long-term surprise statistics
        self.run = np.zeros(n)  # repeats of the last raw value so far
        self.reps = np.zeros(n)  # repeats and differences seen: the series' own repeat rate
        self.diffs = np.zeros(n)
        self.ref_p = np.full(n, np.nan)  # repeat rate, frozen at chunk boundaries (the frozen-values channel's too)
        self.last_xs = np.full((n, HAMPEL - 1), np.nan)  # the last rows (forward-filled), most recent first
        for k in ("last_y", "fast", "mid", "mid2", "base", "sref", "noise", "spread", "short", "lmean", "ref_base",
                  "ref_noise", "ref_spread", "ref_lmean", "ref_lsd", "slope_v", "ref_slope", "noise_l", "dev_l", "ref_rl", "noise_w"):
            setattr(self, k, nan())
        self.quantum = np.full(n, np.inf)
        # twenty-ninth session: the chunk's rows counted against the winsorising caps of the noise and spread updates
        # (columns: rows, then rows over each ``CATCH_UP`` multiple of the cap; ``_catch_up``)
        self.over_d, self.over_v = np.zeros((n, 1 + len(CATCH_UP))), np.zeros((n, 1 + len(CATCH_UP)))
        self.n_d = np.zeros(n)  # rows behind the noise scales, the spread and the RMS slope (``_run_alpha``)
        self.n_v = np.zeros(n)
        self.n_s = np.zeros(n)
        self.lvar = np.zeros(n)  # EW from 0, debiased by its weight at refresh
        self.until = np.full(n, -np.inf)
        self.var_raw = np.zeros(n)
        self.var_oos = np.zeros(n)  # the residual variance the profile learnt so far left on the days after it (EW from 0)
        self.n_oos = np.zeros(n)  # rows behind var_oos (those with a profile learnt before them)
        self.has_prof = np.zeros(n, dtype=bool)  # some bin learnt in both halves
        self.season_gain = np.zeros(n)  # the variance the profile in use is predicted to remove (0: not in use)
        self.season_on = np.zeros(n, dtype=bool)
        self.acc_v = np.zeros((n, 4))  # chunk sums: residual^2, residual-after-profile^2, count, count with a profile
        self.ref_q = np.full(n, np.inf)
        self.prof = np.zeros((n, self.bins))  # the profile in use (0 where a bin is not learnt yet)
        # two half-profiles, from even and from odd periods (columns: bins of the even half, then the odd)
        self.half = np.zeros((n, 2 * self.bins))
        self.cover = np.zeros((n, 2 * self.bins))  # periods' worth of samples behind each half-profile bin
        self.acc = ChunkSums(2 * self.bins, n)  # the chunk's sums per half-profile bin (columns: even half, then odd)
        self.fd_s = np.zeros((n, 2 * self.bins))  # the first period's rows per half-profile bin (``_first_period``)
        self.fd_c = np.zeros((n, 2 * self.bins))
        # fifteenth session: the routine surprise power per phase bin (a daily job, a daily edge the profile's bins
        # smear) from even and odd periods (columns as ``half``), and the divisor there, frozen at refreshes (``_phase``)
        self.ph_pow = np.zeros((n, 2 * self.bins))
        self.ph_cover = np.zeros((n, 2 * self.bins))
        self.ph_fac = np.ones((n, self.bins))
        self.ph_acc = ChunkSums(2 * self.bins, n)
        # week10/day12: a profile per UTC day of the week (columns: day, Monday first, then bin), folded like a
        # half-profile per visit; the day-class halves are drawn from it for the weekend window in use, so the
        # window can move without relearning. Allocated only where the period is a day.
        wk = 7 * self.bins if self.weekly else 0
        self.dw_prof = np.zeros((n, wk))
        self.dw_cover = np.zeros((n, wk))
        self.dw_acc = ChunkSums(wk, n)
        self.wk_start = np.full(n, 5 * self.bins if self.weekly else 0)  # the weekend window's first (day, bin): UTC Saturday 00:00
        self.wk_chosen = np.full(n, -np.inf)  # when the window was last chosen (re-chosen at most once a day)
        # day12: what chooses it -- the series against a level of a week's time constant (a weekend's lower level
        # stays a step in it; against the profiles' one-day level it is smeared over the days after), summed
        # per UTC hour of the week since the start (columns: day, hour)
        self.wk_lev = np.zeros(n)
        self.hw_s = np.zeros((n, 168 if self.weekly else 0))
        self.hw_c = np.zeros((n, 168 if self.weekly else 0))
        self.wk_prof = np.zeros((n, 2 * self.bins if self.weekly else 0))  # the class profiles in use (columns: class, bin)
        self.week_on = np.zeros(n, dtype=bool)
        self.week_ready = np.zeros(n, dtype=bool)  # class profiles learnt (as of the last refresh), in use or not
        self.wk_acc_v = np.zeros((n, 3 if self.weekly else 0))  # chunk sums: residual^2 after the daily, after the weekly profiles, count
        self.var_wd = np.zeros(n)  # their EW means over ~a week (same rows, same weights: their ratio needs no debiasing)
        self.var_ww = np.zeros(n)
        self.n_ww = np.zeros(n)
        self.risk = np.zeros(n)  # last outputs (for snapshots)
        self.zl = np.zeros(n)
        self.raw = np.zeros(n)
        self.dev = np.zeros(n)
        self.n = n

    def grow(self, n: int) -> None:
        """Make room for series ids < n (new series start empty)."""
        if n <= self.n:
            return
        old_n = self.n
        keep = {k: getattr(self, k) for k in (*_STATE, "nobs", "nraw", "prof", "half", "cover", "fd_s", "fd_c", "n_oos", "has_prof", "acc_v", "ref_q",
                                             "dw_prof", "dw_cover", "wk_start", "wk_chosen", "wk_lev", "hw_s", "hw_c", "wk_prof", "week_on",
                                             "week_ready", "wk_acc_v", "var_wd", "var_ww", "n_ww", "ph_pow", "ph_cover",
                                             "ph_fac")}
        sums = (self.acc, self.dw_acc, self.ph_acc)  # the chunk's sums so far, grown with the rows of the new series
        self._alloc(n)
        for k, arr in keep.items():
            getattr(self, k)[:old_n] = arr
        self.acc, self.dw_acc, self.ph_acc = sums
        for c in sums:
            c.grow(n)
        self.n = n

    def nbytes(self) -> int:
        return int(sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray)) + self.acc.nbytes
                   + self.dw_acc.nbytes + self.ph_acc.nbytes)

    # ----- update --------------------------------------------------------------------------------
    def update(self, y: np.ndarray, t: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Advance series ``idx`` (default all) by rows ``y`` (T, len(idx)) at times ``t`` (T,); NaN =
        missing. Returns the event-like risk (T, len(idx)). Series not in ``idx`` are treated as
        missing for these steps only in the sense that their state does not move."""
        y = np.atleast_2d(np.asarray(y, dtype=float))
        t = np.asarray(t, dtype=float).reshape(-1)
        if idx is None:
            idx = np.arange(self.n)
        out = np.zeros(y.shape)
        k = 0
        while k < y.shape[0]:
            nxt = _next_boundary(self.clock)
            m = min(nxt - self.clock, y.shape[0] - k)
            out[k : k + m] = self._chunk(y[k : k + m], t[k : k + m], idx, end=self.clock + m == nxt)
            self.clock += m
            k += m
        return out

    def _chunk(self, y: np.ndarray, t: np.ndarray, idx: np.ndarray, end: bool) -> np.ndarray:
        p = self.p
        tn = y.shape[0]
        obs = np.isfinite(y)
        # frozen references (refreshed at chunk boundaries)
        base_ref = self.ref_base[idx]
        sig, spread = self._frozen_scales(idx)
        # 1. seasonal correction (profile as of the chunk start)
        season, bins, wpos, won, wrdy, wprof = self._correction(idx, t)
        x = y - season
        hist = self.last_xs[idx]
        last_x = hist[:, 0]
        xf = _ffill(x, last_x)
        prev = _shift(last_x, xf)
        # each row winsorised around the running median (a Hampel filter): a glitch of a row or two is no level
        med = _running_median(xf, hist)
        xm = np.clip(xf, med - WINSOR * sig[None, :], med + WINSOR * sig[None, :])
        # levels (every filter holds its state over missing rows)
        fast = _ewm(x, self.a_fast, self.fast[idx], obs)
        fast_prev = _shift(self.fast[idx], fast)
        mid = _ewm(x, self.a_mid, self.mid[idx], obs)
        mid2 = _ewm(mid, self.a_mid, self.mid2[idx], obs)
        # 2. scales: |first difference| and |deviation from the baseline|, winsorised
        still = self._still(idx, y, obs)
        with np.errstate(invalid="ignore"):
            d = np.abs(xf - prev)
            dobs = obs & np.isfinite(d) & ~still
            cap_d, cap_v = self._caps(idx, sig, spread)
            dw = np.minimum(d, cap_d[None, :])
            self.over_d[idx] += _over(d, dobs, cap_d)
            # twenty-third session: the scales start as the running mean of their rows (``_run_alpha``)
            a_n, n_d = _run_alpha(self.a_base, self.n_d[idx], dobs)
            noise = _ewm(dw, a_n, self.noise[idx], dobs)
            if self.episodes is not None:  # the same scale over the long-term window (see dev_l below), first-row
                # started as dev_l (their ratio); and its running-start twin, the variance channel's yardstick
                self.noise_l[idx] = _ewm(dw, self.a_long, self.noise_l[idx], dobs)[-1]
                a_nl = _run_alpha(self.a_long, self.n_d[idx], dobs)[0]
                self.noise_w[idx] = _ewm(dw, a_nl, self.noise_w[idx], dobs)[-1]
            self.n_d[idx] = n_d
            # the value quantum of the raw rows (``_still``'s differences), not of the corrected ones: a learnt
            # profile's bin steps are no resolution of the series, and counting them let an integer series
            # with a daily profile (4 instances by night, 10 by day, now and then one more) reach a quantum of
            # ~0.001, its noise floor with it, and every +-1 a "large move" (twenty-eighth session)
            rd = self.runs
            qc = np.where(rd.dobs & ~rd.same, np.abs(y - rd.prev), np.inf).min(axis=0)
            self.quantum[idx] = np.fmin(self.quantum[idx], qc)  # used from the next chunk on (ref_q)
        # 3. raw surprise (a never-moving series' floor can overflow a quotient: inf, capped at RAW_CAP)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            innov = np.abs(x - fast_prev) / sig[None, :]
            slope = (self.a_mid / (1 - self.a_mid)) * (mid - mid2)
            # sixteenth session: ... or its own typical slope, where larger (a smooth wander's slopes are real but
            # do not last: extrapolated over the horizon they alarmed on every wander of an AR series)
            slope_sd = np.fmax(self.slope_sd * sig, SLOPE_K * self.ref_slope[idx])
            trend = np.sign(slope) * np.maximum(np.abs(slope) - 2 * slope_sd[None, :], 0.0) * self.h_steps
        pf = self.ph_fac[idx[None, :], bins[:, None]]
        nobs = self.nobs[idx][None, :] + np.cumsum(obs, axis=0)
        # Deviations are measured against the baseline as of the row before. In an episode's rows (its onset
        # to the end of its refractory period) the baseline follows the data (``_base``), and which rows those
        # are depends on risk: the rows are settled in passes, each exact up to its first new onset (one pass,
        # plus one per onset in the chunk). Row by row or in one block: the same numbers.
        live = obs & np.isfinite(self.ref_noise[idx])[None, :]  # no surprise before the first scales exist
        lmu, lsd = self.ref_lmean[idx][None, :], np.maximum(self.ref_lsd[idx], 0.25)[None, :]  # NaN sd: risk 0
        warm = nobs >= self.n_warm
        ep = t[:, None] < self.until[idx][None, :]
        for _ in range(tn + 2):  # converges: each pass settles at least one more onset
            base = self._base(x, obs, idx, base_ref, spread, ep, xm)
            ref_b = _shift(self.base[idx], base)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                z = (mid - ref_b) / spread[None, :]
                zf = (mid + trend - ref_b) / spread[None, :]
                devz = np.fmax(np.abs(z), np.sign(z) * zf)
                raw0 = np.minimum(np.fmax(innov, devz), RAW_CAP)
            raw = raw0 / pf  # what is routine at this phase of the day is no news (``_phase``)
            raw = np.where(live & np.isfinite(raw), raw, np.nan)
            # 4. likelihood: short mean vs the long-term distribution (frozen at the chunk start)
            rok = np.isfinite(raw)
            short = _ewm(raw, self.a_short, self.short[idx], rok)
            with np.errstate(invalid="ignore"):
                zl = (short - lmu) / lsd
            risk = ndtr(zl - p.z0)
            risk = np.where(warm & np.isfinite(risk), risk, 0.0)
            # 5. event-like output: first crossing fires, then a refractory cap
            out, until, inep = self._refractory(risk, t, self.until[idx])
            if np.array_equal(inep, ep):
                break
            ep = inep
        self.zl[idx] = np.clip(_nz(zl[-1]), -10.0, 30.0)
        cap_s = np.where(np.isfinite(self.ref_slope[idx]), (WINSOR * self.ref_slope[idx]) ** 2, np.inf)
        sobs = obs & np.isfinite(slope) & ~still
        a_s, self.n_s[idx] = _run_alpha(self.a_long, self.n_s[idx], sobs)
        self.slope_v[idx] = _ewm(np.minimum(slope**2, cap_s[None, :]), a_s, self.slope_v[idx], sobs)[-1]
        hbins = self.half_bins(bins, t)
        self._phase_sums(idx, hbins, raw0, obs & ~still)
        if self.episodes is not None:
            out = self.episodes.step(idx, y, t, x, xm, obs, fast, sig, spread, nobs, out, end, raw, pf, hbins=hbins)  # risk only
        self.nraw[idx] += rok.sum(axis=0)
        lmean = _ewm(raw, self.a_long, self.lmean[idx], rok)
        lprev = _shift(self.lmean[idx], lmean)
        with np.errstate(invalid="ignore"):
            # not winsorised: a series whose normal includes regular spikes must spike harder to alarm
            sq = (raw - lprev) ** 2
        lvar = _ewm(sq, self.a_long, self.lvar[idx], rok & np.isfinite(sq))
        # the level spread: deviations from the baseline path above, winsorised in every row (seventeenth
        # session: not while refractory before; the baseline now catches up from the onset row, and the
        # deviations of its catching up are not the series' spread)
        with np.errstate(invalid="ignore"):
            dev = np.abs(x - ref_b)
            vobs = obs & np.isfinite(dev) & ~still
            dvw = np.minimum(dev, cap_v[None, :])
            self.over_v[idx] += _over(dev, vobs, cap_v)
            a_v, n_v = _run_alpha(self.a_base, self.n_v[idx], vobs)
            v = _ewm(dvw, a_v, self.spread[idx] / 1.2533, vobs)
            if self.episodes is not None:  # the level CUSUM's autocorrelation: noise / spread over the long-term
                # window (episodes only; the daemon's engine runs without them)
                # (not started as a running mean: with it, the days before the daily profile was in use kept
                # their full weight, and a missing daily peak at 10-minute sampling alarmed 1-2 hours later)
                self.dev_l[idx] = _ewm(dvw, self.a_long, self.dev_l[idx], vobs)[-1]
            self.n_v[idx] = n_v
        # season bookkeeping: residual against a level of one period's time constant, per phase bin (applied at
        # the chunk end); the baseline (~1 h at fast sampling) would absorb part of the daily cycle
        # (started as the running mean of the rows, ``_run_alpha``: an EW mean started at its first row holds
        # that row's phase of the cycle for days, and the day-class profiles, fed one day a week, kept it)
        sref = _ewm(x, _run_alpha(self.a_sref, self.nobs[idx], obs)[0], self.sref[idx], obs)
        with np.errstate(invalid="ignore"):
            r = y - _shift(self.sref[idx], sref)
            r = np.where(np.isfinite(r) & obs, r, np.nan)
        rr = np.where(np.isfinite(r), r, 0.0)
        # out of sample: the profile as of the chunk start (learnt from earlier data only), in use or not
        prof = self.prof[idx[None, :], bins[:, None]]
        if self.weekly and wrdy.any():  # out of sample too: the daily and the class profiles on the same rows
            sel_w = np.isfinite(r) & wrdy[None, :]
            res_d = np.where(sel_w, r - prof, 0.0)
            res_w = np.where(sel_w, r - wprof, 0.0)
            self.wk_acc_v[idx, 0] += (res_d**2).sum(axis=0)
            self.wk_acc_v[idx, 1] += (res_w**2).sum(axis=0)
            self.wk_acc_v[idx, 2] += sel_w.sum(axis=0)
            prof = np.where(won[None, :], wprof, prof)  # the season9b residual: of the profile in use
        res = np.where(np.isfinite(r), r - prof, 0.0)
        self.acc_v[idx, 0] += (rr**2).sum(axis=0)
        self.acc_v[idx, 1] += (res**2).sum(axis=0)
        self.acc_v[idx, 2] += obs.sum(axis=0)
        ok = np.isfinite(r)
        self.acc_v[idx, 3] += np.where(self.has_prof[idx], ok.sum(axis=0), 0)
        bins = hbins  # the half of this period
        # thirty-first session: the first period's rows are held back and folded when it completes, as residuals
        # against that period's own mean (``_first_period``): against ``sref``, a running mean of the rows so far,
        # its first rows' residuals were near 0 where the cycle's were large, and the half fed by day 0 kept that
        # bias for days (a noise-free daily triangle alarmed at its third midnight)
        first = nobs <= self.per_rows
        if first.any():
            add_dense(self.fd_s, self.fd_c, idx, bins, y, obs & first)
            ok = ok & ~first
        if tn == 1:  # one row: (series, bin) pairs are distinct, plain fancy indexing adds correctly
            sel = idx[ok[0]]
            col = self.acc.cols(bins[:1])[0]
            self.acc.s[sel, col] += r[0, ok[0]]
            self.acc.c[sel, col] += 1.0
        else:
            rows = np.repeat(idx[None, :], tn, axis=0)
            cols = np.repeat(self.acc.cols(bins)[:, None], idx.size, axis=1)
            np.add.at(self.acc.s, (rows[ok], cols[ok]), r[ok])
            np.add.at(self.acc.c, (rows[ok], cols[ok]), 1.0)
        if self.weekly:  # the same sums per UTC day of the week (columns: day, bin)
            lev = _ewm(y, self.a_week, self.wk_lev[idx], obs)  # EW from 0, debiased by the weight of the rows before
            with np.errstate(invalid="ignore", divide="ignore"):
                u = y - _shift(self.wk_lev[idx], lev) / _ew_weight(self.a_week, nobs - obs)
            # sixteenth session: not the first day's rows -- both levels start there and a day-of-week profile
            # gets one visit a week, so their transient made the first days look like a weekend for a week (a
            # series with a daily cycle and no weekly one alarmed when the class profiles switched on, days 7-8)
            settled = ~first  # the period is a day here (``self.weekly``)
            uok = np.isfinite(u) & settled
            how = (wpos // self.bins) * 24 + (np.mod(t, DAY_S) // 3600.0).astype(int)  # (day, hour), day as in wpos
            self.dw_acc.add(idx, wpos, r, ok & settled)
            add_dense(self.hw_s, self.hw_c, idx, how, u, uok)
            self.wk_lev[idx] = lev[-1]
        self._first_period(idx, nobs[-1])
        # write back the state at the chunk's last row
        self.last_xs[idx] = np.concatenate([xf[: -HAMPEL : -1].T, hist], axis=1)[:, : HAMPEL - 1]
        self.fast[idx], self.mid[idx], self.mid2[idx], self.base[idx] = fast[-1], mid[-1], mid2[-1], base[-1]
        self.sref[idx] = sref[-1]
        self.noise[idx], self.spread[idx] = noise[-1], v[-1] * 1.2533
        self.short[idx], self.lmean[idx], self.lvar[idx] = short[-1], lmean[-1], lvar[-1]
        self.until[idx] = until
        self.nobs[idx] = nobs[-1]
        self.risk[idx], self.raw[idx], self.dev[idx] = out[-1], _nz(raw[-1]), _nz(devz[-1])
        if end:
            self._refresh(np.arange(self.n), t[-1])
        return out

    def _first_period(self, idx: np.ndarray, nobs: np.ndarray) -> None:
        """Series of ``idx`` whose first period of rows completed in this chunk (``nobs``: their rows after it):
        the period's sums per half-profile bin go into the chunk's sums as residuals against the period's
        mean (the profile is not used before two periods: nothing earlier depended on them)."""
        done = (self.nobs[idx] <= self.per_rows) & (nobs > self.per_rows)
        if not done.any():
            return
        j = idx[done]
        s, c = self.fd_s[j], self.fd_c[j]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s.sum(axis=1) / c.sum(axis=1)
        pos = np.flatnonzero(c.any(axis=0))  # the positions the period touched (``ChunkSums`` holds only those)
        cols = self.acc.cols(pos)
        self.acc.s[j[:, None], cols[None, :]] += np.where(c[:, pos] > 0, s[:, pos] - c[:, pos] * mean[:, None], 0.0)
        self.acc.c[j[:, None], cols[None, :]] += c[:, pos]
        self.fd_s[j], self.fd_c[j] = 0.0, 0.0

    def _frozen_scales(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The noise sd and level spread of series ``idx`` as frozen at the chunk start, floored: by half the value
        quantum, and for a series that never moved relative to its level (so a series x 2**k scores the same)."""
        q_half = np.where(np.isfinite(self.ref_q[idx]), 0.5 * self.ref_q[idx], 0.0)
        tiny = np.fmax(1e-12 * np.abs(self.ref_base[idx]), np.finfo(float).tiny)  # NaN base: fmax takes the other
        sig = np.fmax(np.where(np.isnan(self.ref_noise[idx]), np.inf, self.ref_noise[idx]), np.maximum(q_half, tiny))
        return sig, np.fmax(np.where(np.isnan(self.ref_spread[idx]), np.inf, self.ref_spread[idx]), sig)

    def _caps(self, idx: np.ndarray, sig: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The winsorising caps of the noise (a |difference|) and spread (a |deviation|) updates of series ``idx``
        over a chunk, from its frozen scales (none before the first scales exist)."""
        return (np.where(np.isfinite(self.ref_noise[idx]), WINSOR * sig * 2 / math.sqrt(math.pi), np.inf),
                np.where(np.isfinite(self.ref_spread[idx]), WINSOR * spread, np.inf))

    def _correction(self, idx: np.ndarray, t: np.ndarray) -> tuple:
        """The seasonal correction of series ``idx`` at times ``t`` (T, len(idx)): the daily profile where in use,
        the day-class profiles where in use (week10; day12: the series' own weekend window). Also returns the
        phase bins (T,) and, with weekly profiles, the (day, bin) positions, the class profiles' in-use and
        ready flags and their values (None where not computed), which the chunk's bookkeeping reuses."""
        bins, wpos = self._positions(t, self.weekly)
        season = np.where(self.season_on[idx][None, :], self.prof[idx[None, :], bins[:, None]], 0.0)
        won = wrdy = wprof = None
        if self.weekly:  # week10: each row's day class -- day12: in the series' own weekend window
            wcls = (np.mod(wpos[:, None] - self.wk_start[idx][None, :], 7 * self.bins) < 2 * self.bins).astype(int)
            won, wrdy = self.week_on[idx], self.week_ready[idx]
            if wrdy.any():
                wprof = self.wk_prof[idx[None, :], wcls * self.bins + bins[:, None]]
                season = np.where(won[None, :], wprof, season)
        return season, bins, wpos, won, wrdy, wprof

    def _positions(self, t: np.ndarray, week: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Each time's phase bin, and with ``week`` its (day, bin) position (UTC days; None without)."""
        bins = ((np.mod(t, self.p.season_period_s)) // self.bin_w).astype(int) % self.bins
        if not week:
            return bins, None
        return bins, (np.mod(np.floor(t / DAY_S) + 3.0, 7.0)).astype(int) * self.bins + bins  # 1970-01-01: a Thursday

    def half_bins(self, bins: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The phase ``bins`` of times ``t`` in the half-profiles' columns: plus ``bins`` in odd periods."""
        return bins + self.bins * (np.floor(t / self.p.season_period_s) % 2).astype(int)

    def _corrected(self, idx: np.ndarray) -> np.ndarray:
        """Series of ``idx`` with a seasonal correction in use (daily or day-class profiles)."""
        return self.season_on[idx] | self.week_on[idx] if self.weekly else self.season_on[idx].copy()

    def _member(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``np.isin(a, b)`` for series indices: a lookup in a mask of the core's series (isin sorts, which
        costs more than the whole lookup on the few series of ``pfepo predict``)."""
        m = np.zeros(self.n, dtype=bool)
        m[b] = True
        return m[a]

    def _filtered_correction(self, idx: np.ndarray, now: float) -> np.ndarray:
        """The seasonal correction of series ``idx`` (as ``_correction``) on the dt grid of rows before ``now``,
        through each filter of ``move_w``: (filters, len(idx)). The rows fall into phase bins (and, with
        weekly profiles, (day, bin) positions), so each filter's weight is summed per bin and multiplied by
        the profiles: series x bins, not series x rows."""
        p, nb, w = self.p, self.bins, self.move_w
        nf, k = w.shape
        if not idx.size:
            return np.zeros((nf, 0))
        week = self.weekly and self.week_on[idx].any()  # the class profile where in use (week_on implies ready)
        key = (now, week)
        if self._fc_memo[0] == key:  # a refresh asks twice at one ``now``: before and after its new profiles
            per_bin, per_pos = self._fc_memo[1]
        else:
            bins, wpos = self._positions(now - p.dt * np.arange(k)[::-1], week)
            per_pos = None
            if week:
                per_pos = np.bincount((np.arange(nf)[:, None] * 7 * nb + wpos[None, :]).ravel(), weights=w.ravel(),
                                      minlength=nf * 7 * nb).reshape(nf, 7 * nb)
                per_bin = per_pos.reshape(nf, 7, nb).sum(axis=1)
            else:
                per_bin = np.bincount((np.arange(nf)[:, None] * nb + bins[None, :]).ravel(), weights=w.ravel(),
                                      minlength=nf * nb).reshape(nf, nb)
            self._fc_memo = (key, (per_bin, per_pos))
        out = np.where(self.season_on[idx][None, :], per_bin @ self.prof[idx].T, 0.0)
        if week:
            pos = np.flatnonzero(per_pos.any(axis=0))
            j = np.flatnonzero(self.week_on[idx])
            cls = (np.mod(pos[None, :] - self.wk_start[idx[j]][:, None], 7 * nb) < 2 * nb).astype(int)
            out[:, j] = per_pos[:, pos] @ self.wk_prof[idx[j][:, None], cls * nb + (pos % nb)[None, :]].T
        return out

    def _move_levels(self, idx: np.ndarray, now: float, before: np.ndarray, j0: np.ndarray) -> None:
        """The levels follow a changed correction, so switching it on is no jump.

        The levels are of the corrected rows (x = y - correction). When a refresh changes the correction -- the
        daily profile switched on or off, learnt further, the day classes taking over -- the next row is
        corrected by the new one while the levels still hold the old: a clean daily cycle switched on at its
        peak was a jump of the whole amplitude (a sine of 20 with noise sd 0.5 alarmed at risk 0.78 the
        moment its profile went into use). Each level moves by the change as it would have seen it over the
        rows before ``now`` (``move_w``; ``before``: the old correction's filtered values for the series
        ``j0``, those that had one): fast, mid and mid2, the baseline and the level CUSUM's reference, the
        season bookkeeping's level (``sref``, a period's time constant: the residuals the profiles learn
        from, a day-class profile for weeks), and the Hampel history by the change at its rows."""
        j = idx[self._member(idx, j0) | self._corrected(idx)]
        if not j.size:
            return
        d = self._filtered_correction(j, now)
        d[:, self._member(j, j0)] -= before[:, self._member(j0, j)]
        if not d.any():
            return
        self.fast[j] -= d[0]
        self.mid[j] -= d[1]
        self.mid2[j] -= d[2]
        self.base[j] -= d[3]
        self.sref[j] -= d[4]
        self.last_xs[j] -= d[5:].T  # column c: the row c steps before ``now``
        if self.episodes is not None:
            self.episodes.lvl[j] -= d[3]

    def _base(self, x: np.ndarray, obs: np.ndarray, idx: np.ndarray, base_ref: np.ndarray, spread: np.ndarray,
              inep: np.ndarray, xm: np.ndarray) -> np.ndarray:
        """The baseline path: winsorised around the frozen reference, except in an episode's rows (``inep``),
        where it follows the data at three times the rate (adapting to a new level), not winsorised around the
        reference but around the median of the last ``HAMPEL`` rows (``xm``; three in the twenty-first session,
        five in the twenty-second, seven since the twenty-third, when a glitch of three rows of 1e6 still alarmed
        twice): a lasting level is in most of them three rows later, a glitch of one to three rows in none
        (followed as it came, a spike of 1e5 noise sds had moved the baseline for the whole
        refractory period and alarmed again at its end)."""
        free = inep | ~np.isfinite(base_ref)[None, :]
        lo = np.where(free, -np.inf, (base_ref - WINSOR * spread)[None, :])
        hi = np.where(free, np.inf, (base_ref + WINSOR * spread)[None, :])
        xb = np.clip(np.where(inep, xm, x) if inep.any() else x, lo, hi)
        a = self.a_base if not inep.any() else np.where(inep, self.a_base_refr, self.a_base)
        return _ewm(xb, a, self.base[idx], obs)

    def _still(self, idx: np.ndarray, y: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """Rows deep inside a run of identical raw values: the run has reached ``FREEZE_DECADES`` of
        improbability under the series' own repeat rate p (Jeffreys prior) -- L >= max(FREEZE_MIN,
        6 / -log10 p) -- the same yardstick as the frozen-values channel. The scales and the long-term
        surprise statistics skip these rows: a stretch with no movement says nothing about how the series
        moves when it moves, and without this rule a long freeze shrinks the noise and spread to ~0 and
        normal movement resuming after it alarms again and again while they grow back (they may grow only
        4.5x per chunk, being winsorised at ``WINSOR`` frozen scales)."""
        last, run0 = self.last_y[idx], self.run[idx]
        if y.shape[0] == 1:  # the engine's one-row step: the same arithmetic, fewer numpy calls
            dobs = obs & np.isfinite(last)[None, :]
            same = dobs & (y == last[None, :])
            run = np.where(same, self.run[idx][None, :] + 1.0, np.where(dobs, 0.0, self.run[idx][None, :]))
            prev = last[None, :]
        else:
            prev = _shift(last, _ffill(y, last))
            dobs = obs & np.isfinite(prev)
            same = dobs & (y == prev)
            reset = dobs & ~same
            cs = np.cumsum(same, axis=0)
            cs_at = np.maximum.accumulate(np.where(reset, cs, 0), axis=0)
            run = np.where(np.logical_or.accumulate(reset, axis=0), cs - cs_at, self.run[idx][None, :] + cs)
        self.reps[idx] += same.sum(axis=0)
        self.diffs[idx] += dobs.sum(axis=0)
        self.run[idx] = run[-1]
        self.last_y[idx] = np.where(obs[-1], y[-1], prev[-1])
        self.runs = Runs(prev, dobs, same, run, run0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lfreeze = np.maximum(FREEZE_MIN, FREEZE_DECADES / -np.log10(self.ref_p[idx]))
        return same & (run >= np.where(np.isfinite(lfreeze), lfreeze, np.inf)[None, :])

    def _refractory(self, risk: np.ndarray, t: np.ndarray, until: np.ndarray) -> tuple[np.ndarray, ...]:
        """Cap risk at alarm/2 for ``refractory`` seconds after each alarm onset (loop over crossings only).
        Returns the capped risk, the new ``until`` and the rows of an episode (its onset and the capped rows
        after it)."""
        alarm = self.p.alarm
        hot = risk >= alarm
        if risk.shape[0] == 1:
            fire = hot[0] & (t[0] >= until)
            capped = ((t[0] < until) & ~fire)[None, :]
            out = np.where(capped, np.minimum(risk, alarm / 2), risk)
            return out, np.where(fire, t[0] + self.p.refractory, until), capped | fire[None, :]
        until = until.copy()
        cur = np.repeat(until[None, :], risk.shape[0], axis=0)  # until in effect before each row
        for k in np.flatnonzero(hot.any(axis=1)):
            cur[k] = until
            fire = hot[k] & (t[k] >= until)
            until = np.where(fire, t[k] + self.p.refractory, until)
            cur[k + 1 :] = until
        # rows between crossings keep the until set at the last crossing (filled above)
        fired = hot & (t[:, None] >= cur)
        capped = (t[:, None] < cur) & ~fired
        out = np.where(capped, np.minimum(risk, alarm / 2), risk)
        return out, until, capped | fired

    def _season(self, idx: np.ndarray, now: float) -> None:
        """Fold the chunk's residuals into the two half-profiles, and decide whether the profile is used.

        Each half-profile bin is a mean over samples, not over chunks: a running mean over its first
        periods, then each period of samples leaves ``season_keep`` of the old value (``SEASON_KEEP``, more
        when a bin gets < 2 samples a period) -- a chunk of 256 rows holds ~2 days at 10-minute sampling and
        10 at hourly, and every one of them counts. The two halves (even and odd
        periods) see independent noise, so across the bins learnt in both (each seen in >= 1 period of its
        own: the bin was seen on >= 2 days) mean(a x b) estimates the variance of the true profile without
        the noise bias of an in-sample fit, and mean((a - b)^2) / 4 the noise their average still carries.
        The residual variance the profile would leave is predicted from these, the profile is used while it
        removes >= ``SEASON_GAIN`` of the variance, and whenever the variance it removes changes (switched
        on or off, or learnt better) the level spread's state moves by that change: the spread measures the
        corrected series from the next row on, not ~1 baseline time constant later (at 10-minute sampling that is ~1 day and the next refresh
        ~2 days away: a missing daily peak was measured against the spread of the uncorrected cycle). The move
        stops at the out-of-sample residual (season9b): the halves' agreement says how well the average day is
        known, not how well it predicts the next one (weekends, holidays, amplitude changing day to day)."""
        n, nb = idx.size, self.bins
        wk = self._fold_week(idx, now) if self.weekly else None
        half, cover = self._fold(self.half, self.cover, self.acc, idx)
        cv = cover.reshape(n, 2, nb)
        both = (cv >= 1.0).all(axis=1)  # (n, bins): learnt in both halves
        # var_raw is an EW mean started at 0: debias it by the weight its samples have had
        raw = self.var_raw[idx] / np.maximum(_ew_weight(self.a_var, self.nobs[idx]), 1e-12)
        if not both.any():  # no bin seen on two days yet (cover only grows: nothing was ever in use)
            return
        k = both.sum(axis=1)
        k1 = np.maximum(k, 1)[:, None, None]
        hv = np.where(both[:, None, :], half.reshape(n, 2, nb), 0.0)
        hv = np.where(both[:, None, :], hv - hv.sum(axis=2, keepdims=True) / k1, 0.0)  # centred over learnt bins
        sv = _smooth(hv, both)
        a, b, sa, sb = hv[:, 0], hv[:, 1], sv[:, 0], sv[:, 1]
        # variance removed by subtracting the average of the halves: var(s) - var(noise left) (plain), or
        # 2 cov(s, Ss) - var(Ss) - var(S noise) (smoothed across neighbouring bins); each from cross-half terms
        gains = np.stack([a * b - 0.25 * (a - b) ** 2, a * sb + b * sa - sa * sb - 0.25 * (sa - sb) ** 2])
        gains = gains.sum(axis=2) / k1[:, 0, 0]
        smooth = gains[1] > gains[0]
        self.prof[idx] = 0.5 * np.where(smooth[:, None], sa + sb, a + b)
        gain = np.where(smooth, gains[1], gains[0])
        share = k / np.maximum((cv > 0).any(axis=1).sum(axis=1), 1)  # of the bins seen, the learnt ones
        pred = raw - share * gain  # the residual variance the profile would leave (only learnt bins are corrected)
        on = (share >= SEASON_COVER) & (raw > 0) & (pred < (1.0 - SEASON_GAIN) * raw)
        removed = np.where(on, share * gain, 0.0)
        if self.weekly:
            pa, pb = np.where(smooth[:, None], sa, a), np.where(smooth[:, None], sb, b)
            week, g_week = self._week(idx, pa, pb, raw, on, *wk)
            removed = np.where(week, g_week, removed)
        # the spread's state saw the old correction: move it by the change in removed variance only (what the
        # raw variance did, it saw itself), never below the noise sd (NaN before the noise is known: no floor)
        moved = removed != self.season_gain[idx]
        if moved.any():
            with np.errstate(invalid="ignore"):
                sp = np.sqrt(np.maximum(self.spread[idx] ** 2 - (removed - self.season_gain[idx]), 0.0))
            sp = np.fmax(sp, self.noise[idx] * math.sqrt(math.pi) / 2)
            # season9b: ... nor below what the profile learnt so far left on the days after it (out of sample,
            # over the last ~period; debiased EW): where the next day is not the last one (weekly cycles,
            # holidays, amplitude changing day to day) the prediction from the halves' agreement is too kind
            with np.errstate(invalid="ignore", divide="ignore"):
                oos = np.sqrt(self.var_oos[idx] / _ew_weight(self.a_oos, self.n_oos[idx]))
            sp = np.where(self.n_oos[idx] > 0, np.fmax(sp, np.fmin(self.spread[idx], oos)), sp)
            # ... and the long-term deviation scale by the same factor (it saw the old correction too)
            with np.errstate(invalid="ignore", divide="ignore"):
                f = sp / self.spread[idx]
            self.dev_l[idx] = np.where(moved & np.isfinite(f), self.dev_l[idx] * f, self.dev_l[idx])
            self.spread[idx] = np.where(moved, sp, self.spread[idx])
        self.season_gain[idx] = removed
        self.has_prof[idx] = k > 0
        self.season_on[idx] = on

    def _phase_sums(self, idx: np.ndarray, bins: np.ndarray, raw: np.ndarray, ok: np.ndarray) -> None:
        """Add the chunk's squared surprise (capped at ``PHASE_CAP``, before any phase divisor) per half-period
        bin (``bins``: the phase bin plus ``self.bins`` in odd periods)."""
        ok = ok & np.isfinite(raw) & np.isfinite(self.ref_noise[idx])[None, :]
        self.ph_acc.add(idx, bins, np.where(ok, np.minimum(raw, PHASE_CAP) ** 2, 0.0), ok)

    def _phase(self, idx: np.ndarray) -> None:
        """Fifteenth session: surprise routine at one phase of the period is no news there.

        A daily job (a backup at 02:00) or a sharp daily edge inside one of the profile's bins (the bin's mean
        mixes both sides) jumps at the same phase every day; the profile cannot take it (too little variance
        to switch on, or smeared over the bin), so it alarmed every day. Each phase bin keeps the mean squared
        surprise there (capped at ``PHASE_CAP``), from even and from odd days apart (folded as the profile's
        halves), and the surprise there is divided by sqrt(max(1, p / typical - 1)), p the smaller of the two
        halves and typical its median over the bins: the excess must be seen on both kinds of day (a one-off
        anomaly, or a heavy-tailed series' chance spikes, raise one half only) and be twice the typical power
        before anything is damped."""
        nb = self.bins
        half, cover = self._fold(self.ph_pow, self.ph_cover, self.ph_acc, idx)
        seen = (cover.reshape(idx.size, 2, nb) > 0).all(axis=1)
        some = seen.any(axis=1)
        if not some.any():
            return
        j, sn = idx[some], seen[some]
        pmin = half[some].reshape(j.size, 2, nb).min(axis=1)
        typ = _nanmedian_rows(np.where(sn, pmin, np.nan))  # each row has a seen bin (``some``)
        with np.errstate(invalid="ignore", divide="ignore"):
            fac = np.sqrt(np.maximum(1.0, pmin / typ[:, None] - 1.0))
        self.ph_fac[j] = np.where(sn & np.isfinite(fac), fac, 1.0)

    def _fold(self, half: np.ndarray, cover: np.ndarray, acc: ChunkSums, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold the chunk's sums ``acc`` of series ``idx`` (every series: a chunk boundary) into ``half`` and
        ``cover`` in place, at the positions the chunk touched, and clear them; the rows ``idx`` after it."""
        if acc.pos.size:
            at = (idx[:, None], acc.pos[None, :])  # np.ix_'s index, without its per-call checks
            half[at], cover[at] = self._folded(half[at], cover[at], acc.s[idx], acc.c[idx])
        if idx.size == acc.s.shape[0]:
            acc.clear()
        else:
            acc.s[idx], acc.c[idx] = 0.0, 0.0
        return half[idx], cover[idx]

    def _folded(self, half: np.ndarray, cover: np.ndarray, acc: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Half-profiles and their cover after folding in a chunk's per-bin sums ``acc`` over ``c`` samples (the
        daily halves and the day-class halves share this rule)."""
        visits = c * (self.p.dt / self.bin_w)  # periods' worth of samples (the bins hold whole samples)
        cover = cover + visits
        with np.errstate(invalid="ignore", divide="ignore"):
            # each half is fed every other period: keep^2 per own visit is keep per period
            w = np.fmax(1.0 - np.power(self.season_keep, 2.0 * visits), visits / cover)
            half = np.where(c > 0, half + w * (acc / c - half), half)
        return half, cover

    def _fold_week(self, idx: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Fold the chunk's sums per UTC day of the week into the day profiles (``_season``'s rule per visit),
        re-choose the weekend window where due (``_weekend``), and draw the day-class halves from the day
        profiles for the window in use: the weekend's first day is one half, its second the other; the
        weekdays alternate from the window's end (3 and 2 days). Different days, independent noise: the same
        out-of-sample arithmetic as the daily halves. Returns the halves and their cover (columns: class,
        half, bin; weekdays first) -- derived, not state, so a moved window costs no relearning."""
        n, nb = idx.size, self.bins
        prof, cover = self._fold(self.dw_prof, self.dw_cover, self.dw_acc, idx)
        prof, cover = prof.reshape(n, 7, nb), cover.reshape(n, 7, nb)
        self._weekend(idx, now)
        # each (day, bin)'s place in the week counted in days from the window start: 0, 1 weekend, 2-6 weekdays
        pos = np.mod(self._wpos[None] - self.wk_start[idx][:, None, None], 7 * nb) // nb
        grp = np.where(pos < 2, 2 + pos, pos % 2)  # (class, half): weekdays 0 / 1 alternating, weekend 2 / 3
        onehot = grp[..., None] == np.arange(4)
        c4 = np.einsum("ndb,ndbg->ngb", cover, onehot)
        s4 = np.einsum("ndb,ndbg->ngb", cover * prof, onehot)
        with np.errstate(invalid="ignore", divide="ignore"):
            half = np.where(c4 > 0, s4 / c4, 0.0)
        return half.reshape(n, 4 * nb), c4.reshape(n, 4 * nb)

    def _weekend(self, idx: np.ndarray, now: float) -> None:
        """day12: where the series' weekend lies, chosen from its own past rows.

        Exports carry local times of any zone (or UTC from a service elsewhere), so the weekend is a window of
        two days (48 hours) starting at any hour of the UTC week. The signal: the series against a level of a
        week's time constant, summed per UTC hour of the week since the first row (``hw_s``, ``hw_c``): a
        weekend's lower level stays a step in it, where against the profiles' one-day level it is smeared
        over the days after (measured: half-day errors). Each start is scored by the variance the weekday /
        weekend split explains within each hour of the day, over the days seen at that hour: n_we n_wd / n x
        (weekend mean - weekday mean)^2 (the same sum of squares for every start apart from the days it
        assigns, so the noise in it favours none). Chosen once >= 2 days have been seen on >= ``SEASON_COVER``
        of the hours, then re-chosen at most once a day (a start only moves when another explains more);
        the class profiles are not used before the first choice. Where the window moves the realized check
        starts again. O(168 x 24) per choice, a day of rows apart: O(1) amortised per row."""
        nb = self.bins
        if (now - self.wk_chosen[idx] < DAY_S).all():  # chosen within a day everywhere: nothing is due
            return
        cover = self.hw_c[idx].reshape(-1, 7, 24)
        with np.errstate(invalid="ignore", divide="ignore"):
            prof = np.where(cover > 0, self.hw_s[idx].reshape(-1, 7, 24) / cover, 0.0)
        seen = cover > 0
        two = seen.sum(axis=1) >= 2  # (n, hours): seen on >= 2 days of the week
        due = two.sum(axis=1) >= SEASON_COVER * np.maximum(seen.any(axis=1).sum(axis=1), 1)
        due &= now - self.wk_chosen[idx] >= DAY_S
        if not due.any():
            return
        j = np.flatnonzero(due)
        sv = seen[j].astype(float)
        ms = prof[j] * sv
        we_s, we_n = ms + np.roll(ms, -1, axis=1), sv + np.roll(sv, -1, axis=1)  # [d]: the two days from day d
        tot_s, tot_n = ms.sum(axis=1, keepdims=True), sv.sum(axis=1, keepdims=True)
        wd_s, wd_n = tot_s - we_s, tot_n - we_n
        with np.errstate(invalid="ignore", divide="ignore"):
            f = we_n * wd_n / tot_n * (we_s / we_n - wd_s / wd_n) ** 2  # (series, first weekend day, bin)
        f = np.where((we_n > 0) & (wd_n > 0), f, 0.0)
        score = f[:, self._wfirst, np.arange(24)[None, :]].sum(axis=2)  # (series, start hour)
        cur = score[np.arange(j.size), np.round(self.wk_start[idx[j]] * 24 / nb).astype(int) % 168]
        best = np.round(score.argmax(axis=1) * nb / 24).astype(int) % (7 * nb)
        move = (cur < score.max(axis=1)) | ~np.isfinite(self.wk_chosen[idx[j]])  # a tie keeps the window in use
        moved = idx[j[move]]
        self.wk_start[moved] = best[move]
        self.wk_chosen[idx[j]] = now
        # the realized check's evidence was about the old window: it starts again, and applies once a week of
        # rows (a weekend among them) is behind it -- a day of weekday rows says little about the split
        self.var_wd[moved] = 0.0
        self.var_ww[moved] = 0.0
        self.n_ww[moved] = -6.0 * DAY_S / self.p.dt  # the check applies from a day of rows on: here a week

    def _week(self, idx: np.ndarray, pa: np.ndarray, pb: np.ndarray, raw: np.ndarray, daily_on: np.ndarray,
              wk_half: np.ndarray, wk_cover: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """week10: whether weekday and weekend profiles replace the daily one, and the variance they remove.

        Day classes: the weekend window in use (day12, ``_weekend``: chosen from the series' rows, UTC Saturday
        and Sunday until then) and the other five days. Each class has two half-profiles from different days
        (``_fold_week``), so the same out-of-sample arithmetic as the daily halves applies: per class, over
        its bins learnt in both halves, a x b - (a - b)^2 / 4
        (or the smoothed form) is the variance its average removes from that class's rows. The daily profile
        in use (P = (pa + pb) / 2, even-day and odd-day parts) is scored on the same rows without in-sample
        bias: 2 P.P_c - P^2, with P.P_c estimated across parities (pa x the class's odd half, pb x its even
        half: different days, independent noise). Both are weighted by the classes' shares of days (5/7, 2/7)
        and by the share of each class's bins learnt. The class profiles are centred together (day-weighted),
        not each on its own: a weekend lower in level is part of what they learn. They are used only once
        >= ``SEASON_COVER`` of each class's bins seen are learnt, and only where they leave
        < (1 - ``SEASON_GAIN``) of the variance the daily choice leaves (the daily profile if in use, else
        the raw variance; taken as at least ``WEEK_LEFT_MIN`` of the raw variance): the daily rule's
        thresholds, applied to what the daily profile leaves, so a series without a weekly cycle keeps the
        daily profile (and the daemon's short traces never reach this: each class needs >= 2 of its own
        days)."""
        n, nb = idx.size, self.bins
        cv = wk_cover.reshape(n, 2, 2, nb)  # (series, class, half, bin)
        both = (cv >= 1.0).all(axis=2)  # (n, class, bins)
        k = both.sum(axis=2)
        share = k / np.maximum((cv > 0).any(axis=2).sum(axis=2), 1)
        ready = (k > 0).all(axis=1) & (share >= SEASON_COVER).all(axis=1) & (raw > 0)
        ready &= np.isfinite(self.wk_chosen[idx])  # day12: not before a window was chosen from the series' rows
        self.week_ready[idx] = ready
        if not ready.any():
            self.week_on[idx] = False
            return self.week_on[idx], np.zeros(n)
        k1 = np.maximum(k, 1)
        hv = np.where(both[:, :, None, :], wk_half.reshape(n, 2, 2, nb), 0.0)
        mean = (WEEK_SHARE[None, :, None] * hv.sum(axis=3) / k1[:, :, None]).sum(axis=1)  # (n, half): day-weighted
        hv = np.where(both[:, :, None, :], hv - mean[:, None, :, None], 0.0)
        sv = _smooth(hv.reshape(2 * n, 2, nb), both.reshape(2 * n, nb)).reshape(n, 2, 2, nb)
        a, b, sa, sb = hv[:, :, 0], hv[:, :, 1], sv[:, :, 0], sv[:, :, 1]
        gains = np.stack([a * b - 0.25 * (a - b) ** 2, a * sb + b * sa - sa * sb - 0.25 * (sa - sb) ** 2])
        gains = gains.sum(axis=3) / k1[None]  # (2, n, class)
        smooth = gains[1] > gains[0]
        g_cls = np.where(smooth, gains[1], gains[0])
        pd_ = 0.5 * (pa + pb)
        g_day = np.where(both, pa[:, None, :] * b + pb[:, None, :] * a - pd_[:, None, :] ** 2, 0.0).sum(axis=2) / k1
        g_week = (WEEK_SHARE[None, :] * share * g_cls).sum(axis=1)
        g_daily = np.where(daily_on, (WEEK_SHARE[None, :] * share * g_day).sum(axis=1), 0.0)
        # thirty-first session: what the daily choice leaves is floored at WEEK_LEFT_MIN of raw. ``raw`` is a
        # two-period EW of the recent variance, the gains long-run estimates from the halves; where the daily
        # profile explains (nearly) everything, raw - g_daily is their disagreement around 0, often negative, and
        # "< 80 % of a negative remainder" held for class profiles no better than the daily one (a noise-free
        # daily sawtooth: raw 297.9, both gains 304.3; 70 of the sharp probe's 72 series, none with a weekly
        # cycle, had them switched on at some refresh). With the floor they must remove SEASON_GAIN x 5 % = 1 %
        # of raw more than the daily profile: at the refreshes where they were on, the sharp probe's series gained
        # <= 0.21 % of raw, the weekly corpus's (seeds 1-4) series with a weekly cycle >= 1.75 %.
        left = np.maximum(raw - g_daily, WEEK_LEFT_MIN * raw)
        on = ready & (g_week - g_daily > SEASON_GAIN * left)
        # ... and what they left on the days after they were learnt, against the daily profile on the same rows
        # (>= a day of rows): the halves' test trusts one weekend, this checks it on the next days
        on &= (self.n_ww[idx] * self.p.dt < DAY_S) | (self.var_ww[idx] < (1.0 - SEASON_GAIN) * self.var_wd[idx])
        prof = 0.5 * np.where(smooth[:, :, None], sa + sb, a + b)
        self.wk_prof[idx] = prof.reshape(n, 2 * nb)
        self.week_on[idx] = on
        return on, np.where(on, g_week, 0.0)

    def _catch_up(self, idx: np.ndarray) -> None:
        """Twenty-ninth session: a scale that the majority of a chunk's rows exceeded is raised to what they say.

        The noise and spread updates are winsorised at ``WINSOR`` of the scale frozen at the chunk start, which
        keeps a minority of outliers from inflating it; but where the scale started too small (a series that
        began on a flat stretch, or at a quiet hour, and then moves far more) most rows are capped, and the
        scale grew only ~2x per chunk: a noise-free daily trapezoid (20 to 80) still had a spread of 2 on day 2
        and its level CUSUM alarmed every time its refractory period ended. Where more than half of a chunk's
        (>= ``CATCH_MIN``) rows exceeded a multiple m of the cap (the largest of ``CATCH_UP``), their median
        did, and the scale becomes at least what a median of m x cap means for Gaussian rows (spread: sd =
        1.4826 median |deviation|; noise, a mean |difference|: 1.1829 x its median); the long-window twins
        (the level CUSUM's ratio, the variance channel's yardstick) move by the same factor."""
        # median -> state: a spread is a sd (1.4826 x median |deviation|), the noise state a mean |difference|
        # (sqrt(2 / pi) / 0.6745 = 1.1829 x its median)
        # (called before the refresh freezes new references: the caps are still the chunk's)
        cap_d, cap_v = self._caps(idx, *self._frozen_scales(idx))
        for over, cap, unit, state, twins in ((self.over_d, cap_d, 1.1829, "noise", ("noise_l", "noise_w")),
                                              (self.over_v, cap_v, 1.4826, "spread", ("dev_l",))):
            cnt = over[idx]
            k = ((cnt[:, 1:] > 0.5 * cnt[:, :1]) & (cnt[:, :1] >= CATCH_MIN)).sum(axis=1)
            over[idx] = 0.0
            if not k.any():
                continue
            j = idx[k > 0]
            floor = unit * np.asarray(CATCH_UP)[k[k > 0] - 1] * cap[k > 0]
            old = getattr(self, state)[j]
            with np.errstate(invalid="ignore", divide="ignore"):
                f = np.where(np.isfinite(floor) & (floor > old), floor / old, 1.0)
            f = np.where(np.isfinite(f), f, 1.0)
            getattr(self, state)[j] = old * f
            for tw in twins:
                getattr(self, tw)[j] = getattr(self, tw)[j] * f

    def _refresh(self, idx: np.ndarray, now: float) -> None:
        """Chunk boundary: fold the seasonal sums in and freeze new references."""
        cnt = self.acc_v[idx, 2]
        wv = _ew_weight(self.a_var, cnt)
        cnt1 = np.maximum(cnt, 1.0)
        self.var_raw[idx] += wv * (self.acc_v[idx, 0] / cnt1 - self.var_raw[idx])
        co = self.acc_v[idx, 3]
        wo = _ew_weight(self.a_oos, co)
        self.var_oos[idx] += np.where(co > 0, wo * (self.acc_v[idx, 1] / np.maximum(co, 1.0) - self.var_oos[idx]), 0.0)
        self.n_oos[idx] += co
        self.acc_v[idx] = 0.0
        if self.weekly:
            cw = self.wk_acc_v[idx, 2]
            ww = np.where(cw > 0, _ew_weight(self.a_week, cw), 0.0)
            cw1 = np.maximum(cw, 1.0)
            self.var_wd[idx] += ww * (self.wk_acc_v[idx, 0] / cw1 - self.var_wd[idx])
            self.var_ww[idx] += ww * (self.wk_acc_v[idx, 1] / cw1 - self.var_ww[idx])
            self.n_ww[idx] += cw
            self.wk_acc_v[idx] = 0.0
        self._catch_up(idx)
        j0 = idx[self._corrected(idx)]
        before = self._filtered_correction(j0, now)
        self._season(idx, now)
        self._move_levels(idx, now, before, j0)
        self._phase(idx)
        self.ref_q[idx] = self.quantum[idx]
        self.ref_p[idx] = np.where(self.diffs[idx] > 0, (self.reps[idx] + 0.5) / (self.diffs[idx] + 1.0), np.nan)
        self.ref_base[idx] = self.base[idx]
        self.ref_noise[idx] = self.noise[idx] * math.sqrt(math.pi) / 2
        self.ref_spread[idx] = self.spread[idx]
        self.ref_slope[idx] = np.sqrt(self.slope_v[idx])
        with np.errstate(invalid="ignore", divide="ignore"):
            self.ref_rl[idx] = (self.noise_l[idx] * math.sqrt(math.pi) / 2) / (self.dev_l[idx] * 1.2533)
        self.ref_lmean[idx] = self.lmean[idx]
        weight = _ew_weight(self.a_long, self.nraw[idx])  # EW started at 0: debias
        lsd = np.sqrt(np.maximum(self.lvar[idx], 0.0) / np.maximum(weight, 1e-9))
        self.ref_lsd[idx] = np.where(self.nraw[idx] >= 64, lsd, np.nan)  # no likelihood from a handful of rows


def add_dense(s: np.ndarray, c: np.ndarray, idx: np.ndarray, pos: np.ndarray, w: np.ndarray, ok: np.ndarray) -> None:
    """Add ``w`` (T, len(idx)) where ``ok`` to the sums ``s`` of series ``idx`` at positions ``pos`` (T,), and one
    count each to ``c`` (dense (series, position) arrays kept over all history; ``ChunkSums`` is the sparse,
    per-chunk twin). A one-row step: plain fancy indexing, its (series, position) pairs being distinct."""
    if w.shape[0] == 1:
        sel = idx[ok[0]]
        s[sel, pos[0]] += w[0, ok[0]]
        c[sel, pos[0]] += 1.0
        return
    m = s.shape[1]
    flat = (np.arange(idx.size)[None, :] * m + pos[:, None])[ok]
    size = idx.size * m
    s[idx] += np.bincount(flat, weights=w[ok], minlength=size).reshape(idx.size, m)
    c[idx] += np.bincount(flat, minlength=size).reshape(idx.size, m)


def _over(dev: np.ndarray, ok: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Per series: the rows ``ok`` and those of them whose ``dev`` exceeds each ``CATCH_UP`` multiple of ``cap``."""
    cols = [ok.sum(axis=0)]
    with np.errstate(invalid="ignore"):
        cols += [(ok & (dev > m * cap[None, :])).sum(axis=0) for m in CATCH_UP]
    return np.stack(cols, axis=1)


def _ew_weight(a: float, n: np.ndarray) -> np.ndarray:
    """The weight ``n`` steps of exponential smoothing with ``a`` give their inputs together (an EW mean
    started at 0 is debiased by dividing by it)."""
    return 1.0 - np.power(1.0 - a, n)


def _smooth(u: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Circular (1, 2, 1) / 4 average over neighbouring bins (last axis of ``u``, shape (n, 2, bins)), using
    only the bins where ``ok`` (n, bins)."""
    m = np.broadcast_to(ok[:, None, :], u.shape).astype(float)
    v = np.concatenate([u, m], axis=1)
    pad = np.concatenate([v[..., -1:], v, v[..., :1]], axis=-1)
    s = pad[..., :-2] + 2.0 * v + pad[..., 2:]
    return np.where(ok[:, None, :], s[:, :2] / np.maximum(s[:, 2:], 1.0), 0.0)


def combine(forecast: np.ndarray, classifier: np.ndarray | None, clear: float = 0.8, damp_below: float = 0.1,
            raise_min: float = RAISE_OFF) -> np.ndarray:
    """The combination rule: risk from forecast breach evidence ``forecast`` and classifier probability.

    - clear forecast evidence (``forecast >= clear``) is never vetoed;
    - below that the classifier may damp an ambiguous forecast when it is confident the shape is benign:
      forecast x min(1, classifier / damp_below);
    - the classifier raises risk on its own only where it reaches ``raise_min`` (off by default: on traces
      of a generator it had not seen, most of the alarms it raised alone were false; see
      docs/prediction.md);
    - without a classifier (cold start) risk = forecast.
    Monotone in both inputs, so more evidence of either kind never lowers risk.
    """
    f = np.asarray(forecast, dtype=float)
    if classifier is None:
        return f
    c = np.asarray(classifier, dtype=float)
    raised = np.where(c >= raise_min, c, 0.0)
    damped = np.maximum(raised, f * np.minimum(1.0, c / damp_below))
    return np.where(f >= clear, np.maximum(f, raised), damped)
