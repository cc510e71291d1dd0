"""Extra evidence channels of the anomaly core: episodes that build up over time.

The core (pfepo.predict.core) scores surprise per row against its own long-term distribution, so it
sees jumps, spikes and creeps, but not evidence that is weak per row and strong in sum. Real telemetry
has three such classes, and each gets a channel here, measured in the series' own scales:

- **frozen values** (a stuck sensor or exporter repeating one value): a run of ``L`` identical values
  has probability ``p^L`` under the series' own repeat rate ``p`` (repeats / differences seen, with a
  Jeffreys 1/2 prior). Evidence = ``L x -log10 p`` decades; it alarms at ``E0 = 6`` (one in a million
  runs: a series has ~1e4 runs, so about one false alarm per hundred series if runs were independent)
  and only once the run is at least ``MIN_RUN`` = 5 repeats and more than twice the longest run the
  series has had so far ("far longer than its own runs"). A series that normally sits still (p near 1)
  never fires.
- **sustained level shifts** (2-5 sd, e.g. in a series sampled every 5-10 minutes; also a daily peak
  that does not come, since the core subtracts the learnt daily profile first): a two-sided CUSUM of
  the deviation from a slow reference level, in units of the core's level spread times
  ``sqrt(VIF)``. VIF = (1 + rho) / (1 - rho) is the variance inflation of a mean of autocorrelated
  values, with rho = 1 - (noise / spread)^2 (the lag-1 autocorrelation of an AR(1) whose one-step
  noise and level spread are the core's, both over the long-term window, >= 600 samples: sixteenth
  session; over the baseline's 150 the ratio swung on a count stepping by one now and then, and with it the
  CUSUM's unit): a random walk or a slow wander has rho near 1 and a large VIF, so its long excursions do
  not accumulate; white noise has VIF 1. For two baseline time constants after an onset the unit is the
  smaller of this one and the same over the long-term window (nineteenth session): the baseline's spread
  then still holds the episode's own rows, which hid a second shift soon after a first.
- **variance and spike-density increases**: a one-sided Bernoulli CUSUM of *large moves* (a first
  difference of more than ``C_EXC`` = 3 mean absolute differences over the long-term window, a running
  mean at first, the core's ``noise_w``; twenty-third session: it was the baseline's noise scale, whose
  sampling error over ~150 samples let a scale reading 18 % low by chance turn ordinary moves into a
  "burst" against the whole-history rate below): its
  log-likelihood ratio of "the odds of a large move are ``ODDS`` = 4 times the series' own" (4 = the
  variance ratio of a doubled noise sd) against the series' own rate (counted over all its history,
  Jeffreys prior, after ``MIN_W`` = 600 differences, the core's minimum for long-term statistics). The
  threshold log(1e5) gives >= 1e5 rows between false alarms (Lorden's bound) whatever the series'
  distribution, because the null rate is the series' own. Twenty-ninth session: at a phase of the day where
  large moves are routine (more frequent on even and odd days alike), the null rate is the phase's own
  (``Episodes._phase_rate``). A first version used the Gaussian likelihood
  ratio of squared differences; a few % error in the noise scale made it fire on plain Gaussian, daily
  and quantised series (tested), which this count-based form does not.

And one damping of the core's own risk:

- **routine jumps**: where the core's innovation (|value - fast level| in noise sds) at a row reaches a
  level of ``GRID`` (4, 6, 8, 12, 16, 20) that this series reaches routinely, at a rate ``q`` per row
  (counted over its history, Jeffreys prior, after ``MIN_W`` rows), the core's risk is multiplied by
  ``exp(-q x horizon rows)``: the probability that the series makes no such jump within one horizon.
  ``risk`` reads as the probability that an episode starts within the horizon, so a jump that this
  series makes about once per horizon is no evidence of one. A series with regular spikes stops
  alarming on each; a first jump of that size still alarms (q ~ 0). Deviations (creeps, shifts) are not
  damped: only the innovation is looked at.

Level CUSUM constants: allowance ``K = 1`` (half the 2-unit change to detect, the textbook choice) and
threshold ``H = 7`` (in the units above). With exactly known scales ``H = 5`` gives ~1e5 rows between
false alarms per side for Gaussian iid input (Siegmund's approximation); but the core's scales come from
~150 samples and were measured up to ~10 % low, and with a scale 20 % low (two such errors) H = 5 gives
only ~5e3 rows (it fired on a plain Gaussian series in a test), so H is the value that keeps ~1e5 rows
there. A change of 2 units is then found in ~7 rows, of 3 units in ~3-4. Each row's input is
winsorised at 4 units (the core's WINSOR), so one wild value cannot fire the channel alone. The
statistics are capped at twice their thresholds (so they re-arm soon after an episode).

Output: each channel's risk is ``Phi(evidence - threshold)`` (0.5 at its threshold, like the core's
``Phi(zl - z0)``), and for the two CUSUMs ``Phi(evidence - threshold + CROSSED)`` at and over it (>= 0.84:
their threshold is already a ~1e5-row false-alarm bound; thirteenth session); the core's ``risk`` is the
maximum of its own (after the routine damping) and these. The output stays event-like
with a refractory period of its own (the core's ``refractory``): after any onset (the core's or a
channel's) the combined risk is capped at ``alarm / 2`` and the CUSUMs are held at 0, and the reference
level restarts at the core's fast level, so a lasting new level does not alarm again. The core's own
state (``zl``, ``dev``, ``raw``, ``ref_*``, its refractory and baseline) is never touched: the engine's
forecast evidence and the classifier read it.

Everything is vectorised over series and rows (log-depth scans); the few state-dependent choices use the
state frozen at the core's chunk boundaries, so batch and streaming agree like the core's (tested).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from pfepo.predict.core import (  # core imports this module lazily (no cycle)
    FREEZE_DECADES,
    FREEZE_MIN,
    _shift,
    add_dense,
)

E0 = FREEZE_DECADES  # frozen: decades of improbability of a run under the series' own repeat rate (the core's freeze)
MIN_RUN = FREEZE_MIN  # frozen: at least this many repeats
K = 1.0  # CUSUM allowance (half the 2-unit change to detect)
H = 7.0  # CUSUM threshold (5 for known scales; 7 keeps ~1e5 rows between false alarms with scales 20 % low)
CAP = 2 * H
CLIP = 4.0  # winsorising of each row's CUSUM input (the core's WINSOR)
H_VAR = math.log(1e5)  # variance CUSUM threshold in log-likelihood units: >= 1e5 rows between false alarms
C_EXC = 3.0  # a large move: |first difference| > 3 mean absolute differences (~1.7 % of Gaussian moves)
ODDS = 4.0  # the alternative: the odds of a large move x 4 (the factor of a doubled noise sd's variance)
GRID = np.array([4.0, 6.0, 8.0, 12.0, 16.0, 20.0])  # surprise levels (the core's RAW_CAP is 20)
MIN_W = 600  # differences behind its own mean before the variance channel speaks (the core's min_long)
BIG = 1e30
CROSSED = 1.0  # a CUSUM at or over its threshold reports risk Phi(excess + CROSSED) >= 0.84, not ~0.5 (below)
RESTART_N = 2.0  # after an onset the reference level restarts at the onset row, winsorised around the running median


def _at_or_above(lev: np.ndarray, ok: np.ndarray, g: int) -> np.ndarray:
    """Per series (columns of ``lev``, (T, n) grid levels, -1 below the grid), the count of rows where ``ok``
    at or above each of the ``g`` levels: (n, g). A histogram summed from the top, not a (T, n, g) comparison."""
    n = lev.shape[1]
    use = ok & (lev >= 0)
    flat = (np.broadcast_to(np.arange(n) * g, lev.shape) + lev)[use]
    hist = np.bincount(flat, minlength=n * g).reshape(n, g)
    return np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]


def clamp_scan(u: np.ndarray, s0: np.ndarray, cap: float | np.ndarray = CAP) -> np.ndarray:
    """Path of s_t = min(cap, max(0, s_(t-1) + u_t)) for every column, as a log-depth scan.

    Each step is a map s -> min(hi, max(lo, s + a)); the composition of two such maps is again one
    (a = a1 + a2, lo = clip(lo1 + a2, lo2, hi2), hi = clip(hi1 + a2, lo2, hi2)), so prefix compositions
    double like an associative scan. A NaN row is the identity (lo = -BIG, hi = BIG, a = 0). ``cap`` is a
    number or one per column."""
    ok = np.isfinite(u)
    a = np.where(ok, u, 0.0)
    lo = np.where(ok, 0.0, -BIG)
    hi = np.where(ok, np.broadcast_to(cap, u.shape[1:])[None, :], BIG)
    k, tn = 1, u.shape[0]
    while k < tn:
        a2, l2, h2 = a[k:], lo[k:], hi[k:]
        nl = np.minimum(np.maximum(lo[:-k] + a2, l2), h2)  # np.clip, without its per-call overhead
        nh = np.minimum(np.maximum(hi[:-k] + a2, l2), h2)
        a[k:] = a2 + a[:-k]
        lo[k:] = nl
        hi[k:] = nh
        k *= 2
    return np.minimum(hi, np.maximum(lo, s0[None, :] + a))


class Episodes:
    """Channel state of the core's N series (grown with it)."""

    channels: tuple[str, ...] = ("frozen", "level", "variance", "routine")

    def __init__(self, core) -> None:  # core: pfepo.predict.core.AnomalyCore (not imported: no cycle)
        self.core = core
        self.n = 0
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        old = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        # runs of identical values and the repeat rate are the core's (``AnomalyCore._still``, ``core.runs``)
        self.maxrun = np.zeros(n)  # longest completed run
        self.ref_maxrun = np.zeros(n)
        self.lvl = np.full(n, np.nan)  # reference level of the shift CUSUM
        self.s_hi = np.zeros(n)
        self.s_lo = np.zeros(n)
        self.s_var = np.zeros(n)
        self.until = np.full(n, -np.inf)  # refractory of the combined output
        self.n_lvl = np.zeros(n)  # values behind the reference level (a running mean until 1/a_base)
        self.ge = np.zeros((n, len(GRID)))  # rows with the core's surprise >= each GRID level
        self.n_raw = np.zeros(n)
        self.ref_ge = np.full((n, len(GRID)), np.nan)  # their rates, frozen at chunk boundaries
        self.w_sum = np.zeros(n)  # large moves seen, and differences seen
        self.w_cnt = np.zeros(n)
        self.ref_w = np.full(n, np.nan)  # their rate, frozen at chunk boundaries
        # twenty-ninth session: the same per phase bin of the core's period, from even and from odd periods
        # (columns as the core's half-profiles), and the rate per bin where a phase has its own (``_phase_rate``)
        nb = self.core.bins
        self.wb_sum = np.zeros((n, 2 * nb))
        self.wb_cnt = np.zeros((n, 2 * nb))
        self.ref_wbin = np.full((n, nb), np.nan)
        self.ref_nl = np.full(n, np.nan)  # the core's long-window mean |difference|, frozen there (floored as its scale)
        for k, arr in old.items():
            getattr(self, k)[: arr.shape[0]] = arr
        self.n = n

    def nbytes(self) -> int:
        return int(sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray)))

    # ----- one chunk of the core ------------------------------------------------------------------
    def step(self, idx: np.ndarray, y: np.ndarray, t: np.ndarray, x: np.ndarray, xm: np.ndarray, obs: np.ndarray,
             fast: np.ndarray, sig: np.ndarray, spread: np.ndarray, nobs: np.ndarray, core_out: np.ndarray, end: bool,
             raw: np.ndarray | None = None, phase: np.ndarray | None = None, *, hbins: np.ndarray) -> np.ndarray:
        """Combined risk for a chunk: ``y`` raw rows, ``x`` the core's season-corrected rows, ``xm`` those rows
        winsorised around the median of the last ``core.HAMPEL`` (which the CUSUM's reference level follows
        and restarts at; twenty-first to twenty-third sessions: a glitch of one to three rows is no level --
        followed as it came at 1/count after a restart, a spike of 1e5 noise sds had held the reference off
        for the whole refractory period and alarmed again at its end; the median itself would bias the
        reference on skewed noise), ``fast``
        its fast level path, ``sig``/``spread`` its frozen scales, ``nobs`` its observation count path,
        ``core_out`` its own event-like risk and ``phase`` its divisor per row (``AnomalyCore._phase``: a
        level routine at this phase of the day, a daily job, moves the level CUSUM that much less); ``hbins`` the
        rows' half-profile columns as the core computed them for the chunk (``AnomalyCore.half_bins``)."""
        core = self.core
        if self.n < core.n:
            self._alloc(core.n)
        p = core.p
        ready = (nobs >= core.n_warm) & np.isfinite(core.ref_noise[idx])[None, :]
        prev_y = core.runs.prev  # the last observed value before each row
        if raw is not None:
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # the core's innovation (jumps, spikes)
                innov = np.minimum(np.abs(x - _shift(core.fast[idx], fast)) / sig[None, :], GRID[-1])  # inf: the top
            core_out = core_out * self._routine(idx, np.where(np.isfinite(raw), innov, np.nan), ready)
        frozen = self._frozen(idx, ready & ("frozen" in self.channels))
        # CUSUM inputs: level deviation in spread x sqrt(VIF) units; variance log-likelihood ratio
        with np.errstate(invalid="ignore", divide="ignore"):
            rl = core.ref_rl[idx]
            r = np.minimum(np.maximum(np.where(np.isfinite(rl) & (rl > 0), rl, sig / spread), 1e-3), 1.0)
            vif = np.sqrt((2.0 - r * r) / (r * r))
            scale = spread * vif
            # the same unit with the spread over the long-term window (noise / r_long: the recent noise scale
            # over the long window's noise-to-spread ratio), for the rows just after an onset (below)
            scale_l = np.where(np.isfinite(rl) & (rl > 0), sig / r * vif, scale)
            # raw differences: the learnt daily profile steps at its bin edges, the series does not
            d = y - prev_y
            # twenty-third session: judged against the long-window noise scale (mean |difference| over the
            # long-term window), whose sampling error is half the baseline scale's: a baseline scale reading
            # 18 % low by chance made ordinary moves a "burst" (the rate below is the series' whole history)
            mad = np.where(np.isfinite(self.ref_nl[idx]), self.ref_nl[idx], sig * 2.0 / math.sqrt(math.pi))
            big = np.abs(d) > C_EXC * mad[None, :]  # a large move
            wok = obs & np.isfinite(d) & ready
            self.w_sum[idx] += (big & wok).sum(axis=0)
            self.w_cnt[idx] += wok.sum(axis=0)
            # the series' own rate of large moves; at a phase of the day where it has its own, that one
            bins = hbins % core.bins  # the phase bin (a half-profile column is the bin plus bins in odd periods)
            add_dense(self.wb_sum, self.wb_cnt, idx, hbins, big.astype(float), wok)
            pb = self.ref_wbin[idx[None, :], bins[:, None]]
            p0 = np.where(np.isfinite(pb), pb, self.ref_w[idx][None, :])
            p1 = ODDS * p0 / (1.0 + (ODDS - 1.0) * p0)
            v = np.where(big, np.log(p1 / p0), np.log((1.0 - p1) / (1.0 - p0)))  # Bernoulli log-likelihood ratio
        v = np.where(wok & np.isfinite(v) & ("variance" in self.channels), v, np.nan)
        until = self.until[idx].copy()
        lvl0 = self.lvl[idx].copy()
        s0 = (self.s_hi[idx].copy(), self.s_lo[idx].copy(), self.s_var[idx].copy())
        # Nineteenth session: for two baseline time constants after an onset the baseline's spread holds the
        # episode itself (a level shift's rows deviate from the lagging baseline), so a second shift soon
        # after a first drowned in its own predecessor; there the smaller of the two units counts. Onsets of
        # this chunk count from the next one, like the scales, which are frozen at chunk starts too. The last
        # onset is where the refractory period now in ``until`` began.
        recent = (t[:, None] - (until - p.refractory)[None, :]) < p.base_window_s
        unit = np.where(recent, np.fmin(scale, scale_l)[None, :], scale[None, :])
        rscale = np.broadcast_to(unit if phase is None else unit * phase, x.shape)
        ch, lvl, s_hi, s_lo, s_var, n_lvl = self._cusums(x, obs, ready, t, v, rscale, lvl0, self.n_lvl[idx], s0, until, xm)
        ch = np.fmax(ch, frozen)
        alarm = p.alarm
        hot = (ch >= alarm) | (core_out >= alarm)
        cur = np.repeat(until[None, :], t.size, axis=0)
        fired = np.zeros(hot.shape, dtype=bool)
        k = -1
        while True:
            rows = np.flatnonzero(hot[k + 1 :].any(axis=1))
            if rows.size == 0:
                break
            k = k + 1 + int(rows[0])
            cur[k] = until
            fire = hot[k] & (t[k] >= until)
            if not fire.any():
                continue
            fired[k] = fire
            until = np.where(fire, t[k] + p.refractory, until)
            cur[k + 1 :] = np.where(fire[None, :], until[None, :], cur[k + 1 :])
            # restart the CUSUMs of the series that fired, and their reference at the onset row (``xm``)
            c = np.flatnonzero(fire)
            zero = np.zeros(c.size)
            lvl[k, c], n_lvl[k, c] = xm[k, c], RESTART_N
            s_hi[k, c], s_lo[k, c], s_var[k, c] = zero, zero, zero
            if k + 1 < t.size:
                sub = self._cusums(x[k + 1 :, c], obs[k + 1 :, c], ready[k + 1 :, c], t[k + 1 :], v[k + 1 :, c],
                                   rscale[k + 1 :, c], xm[k, c], zero + RESTART_N, (zero, zero, zero), until[c],
                                   xm[k + 1 :, c])
                n_lvl[k + 1 :, c] = sub[5]
                ch_c = np.fmax(sub[0], frozen[k + 1 :, c])
                ch[k + 1 :, c], lvl[k + 1 :, c] = ch_c, sub[1]
                s_hi[k + 1 :, c], s_lo[k + 1 :, c], s_var[k + 1 :, c] = sub[2], sub[3], sub[4]
                hot[k + 1 :, c] = (ch_c >= alarm) | (core_out[k + 1 :, c] >= alarm)
        both = np.fmax(core_out, ch)
        capped = (t[:, None] < cur) & ~fired
        out = np.where(capped, np.minimum(both, alarm / 2), both)
        # write back
        self.until[idx] = until
        self.lvl[idx], self.n_lvl[idx] = lvl[-1], n_lvl[-1]
        self.s_hi[idx], self.s_lo[idx], self.s_var[idx] = s_hi[-1], s_lo[-1], s_var[-1]
        if end:
            self._refresh()
        return out

    # CUSUM helpers -----------------------------------------------------------------------------------
    def _cusums(self, x, obs, ready, t, v, scale, lvl0, n0, s0, until, xm):
        """Reference level path, the three CUSUM paths and their risk (held at 0 while refractory); ``scale``:
        the level's unit per row (T, N); ``xm``: what the reference follows (the rows, Hampel-winsorised)."""
        a_base = self.core.a_base
        cnt = n0[None, :] + np.cumsum(obs, axis=0)
        a = np.where(obs, np.maximum(a_base, 1.0 / np.maximum(cnt, 1.0)), 0.0)  # running mean, then EW
        lvl = _lin_scan(a, np.where(obs, xm, 0.0), np.where(np.isfinite(lvl0), lvl0, 0.0))
        ref = _shift(np.where(n0 > 0, lvl0, np.nan), lvl)
        with np.errstate(invalid="ignore", over="ignore"):
            z = np.minimum(np.maximum((x - ref) / scale, -CLIP), CLIP)
        live = obs & ready & np.isfinite(z) & ("level" in self.channels)
        hold = t[:, None] < until[None, :]
        zi = np.where(live, z, np.nan)
        up = np.where(hold, -BIG, zi - K)
        dn = np.where(hold, -BIG, -zi - K)
        vv = np.where(hold, -BIG, v)
        m = up.shape[1]
        cap = np.repeat(np.array([CAP, CAP, 2 * H_VAR]), m)
        s_all = clamp_scan(np.concatenate([up, dn, vv], axis=1), np.concatenate(s0), cap)
        s_hi, s_lo, s_var = s_all[:, :m], s_all[:, m : 2 * m], s_all[:, 2 * m :]
        ev = np.fmax(np.fmax(s_hi, s_lo) - H, s_var - H_VAR)
        # thirteenth session: at and over its threshold a CUSUM's risk is Phi(excess + CROSSED). The threshold
        # already carries the channel's false-alarm control (~1e5 rows between false alarms), and the CUSUM
        # restarts at the crossing, so Phi(excess) put its alarms at 0.5-0.6 whatever the shift: under a
        # single threshold for a whole corpus (streaming scores pick one, often 0.6-0.7, to cut the core's
        # weaker onsets) sustained shifts the channel had found did not count. Below the threshold: Phi(ev).
        risk = np.where(ready & ~hold, ndtr(np.where(ev >= 0.0, ev + CROSSED, ev)), 0.0)
        return risk, np.where(cnt > 0, lvl, np.nan), s_hi, s_lo, s_var, cnt

    # routine surprises -------------------------------------------------------------------------------
    def _routine(self, idx: np.ndarray, raw: np.ndarray, ready: np.ndarray) -> np.ndarray:
        """Damping of the core's risk where a surprise this large is routine for this series: q = its own
        rate of rows with surprise at least this grid level; factor exp(-q W), the chance that W rows of
        this series hold no such surprise. Eighteenth session: W = the baseline's window (an EW mean of time
        constant tau averages like a window of 2 tau; 300 rows for `pfepo predict` at >= 24 s sampling): a
        surprise the series shows about once per window of what it calls normal is part of that normal
        (heavy-tailed noise). It was the horizon (30 rows); the refractory period (tau) was tried in the
        thirteenth session and lost on the development corpora of that time (docs/prediction-log.md)."""
        ok = np.isfinite(raw) & ready
        lev = np.searchsorted(GRID, np.where(ok, raw, 0.0), side="right") - 1  # highest grid level <= raw
        self.ge[idx] += _at_or_above(lev, ok, GRID.size)
        self.n_raw[idx] += ok.sum(axis=0)
        if "routine" not in self.channels:
            return np.ones(raw.shape)
        q = self.ref_ge[idx[None, :], np.maximum(lev, 0)]
        p = self.core.p
        w_rows = p.base_window_s / p.dt
        return np.where(ok & (lev >= 0) & np.isfinite(q), np.exp(-np.where(np.isfinite(q), q, 0.0) * w_rows), 1.0)

    def _phase_rate(self) -> None:
        """Twenty-ninth session: large moves routine at one phase of the period are no variance increase there.

        A series whose noise is larger for part of each day (latency noisier in business hours) has large
        moves where the noisier part begins, every day (its long-window noise scale, ~10 hours at 1-minute
        sampling, lags the change), and the variance channel alarmed there daily: ~2 onsets a day. Per phase
        bin (pooled with its two neighbours), the rate of large moves is counted on even and on odd days apart,
        each shrunk towards the series' rate over all rows by one day's worth of samples of the bin; where
        both are above that rate (a one-off burst is on one kind of day only), the bin's rate over both kinds
        of day replaces it. A phase is never judged more strictly than the series' whole history.
        (Measured on eight such series of 11 days at 1-minute sampling: 179 onsets before; the smaller of the
        two halves per bin 114 -- a minimum of two noisy estimates is biased low --, both pooled 86, pooled
        with the neighbours 78.)"""
        core = self.core
        nb = core.bins
        prior = core.bin_w / core.p.dt  # samples per bin and period
        p = self.ref_w[:, None, None]
        v = np.concatenate([self.wb_sum.reshape(-1, 2, nb), self.wb_cnt.reshape(-1, 2, nb)], axis=1)
        pad = np.concatenate([v[..., -1:], v, v[..., :1]], axis=-1)  # circular: bin 0's left is the last bin
        v = v + pad[..., :-2] + pad[..., 2:]  # each bin with its two neighbours (one pass for sums and counts)
        big, cnt = v[:, :2], v[:, 2:]
        with np.errstate(invalid="ignore"):
            half = (big + prior * p) / (cnt + prior)
            pooled = (big.sum(axis=1) + prior * p[:, 0]) / (cnt.sum(axis=1) + prior)
        both = (cnt > 0).all(axis=1) & np.isfinite(pooled)
        rate = np.where((half > p).all(axis=1), pooled, p[:, 0])
        self.ref_wbin = np.where(both, np.fmax(rate, self.ref_w[:, None]), np.nan)

    # frozen values ------------------------------------------------------------------------------------
    def _frozen(self, idx: np.ndarray, ready: np.ndarray) -> np.ndarray:
        core = self.core
        dobs, same, run, run0 = core.runs.dobs, core.runs.same, core.runs.run, core.runs.run0
        reset = dobs & ~same
        prev_run = _shift(run0, run)
        ended = np.where(reset, prev_run, 0.0).max(axis=0)
        self.maxrun[idx] = np.maximum(self.maxrun[idx], ended)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -np.log10(core.ref_p[idx])
            lmin = np.maximum(MIN_RUN, 2.0 * self.ref_maxrun[idx] + 1.0)
            lfire = np.maximum(lmin, E0 / step)
            e = run * step[None, :]
            return np.where((run >= lmin[None, :]) & (run <= 2 * lfire[None, :]) & ready & np.isfinite(e),
                            ndtr(e - E0), 0.0)

    def _refresh(self) -> None:
        rate = (self.ge + 0.5) / (self.n_raw[:, None] + 1.0)
        self.ref_ge = np.where(self.n_raw[:, None] >= MIN_W, rate, np.nan)
        # the series' own rate of large moves (Jeffreys prior), once MIN_W differences are behind it
        self.ref_w = np.where(self.w_cnt >= MIN_W, (self.w_sum + 0.5) / (self.w_cnt + 1.0), np.nan)
        self._phase_rate()
        self.ref_maxrun = self.maxrun.copy()
        core = self.core
        floor = np.fmax(0.5 * core.ref_q[: self.n], np.finfo(float).tiny)
        self.ref_nl = np.where(core.n_d[: self.n] >= MIN_W, np.fmax(core.noise_w[: self.n], floor), np.nan)


def _lin_scan(a: np.ndarray, u: np.ndarray, s0: np.ndarray) -> np.ndarray:
    """Path of s_t = (1 - a_t) s_(t-1) + a_t u_t (per-row weights), as a log-depth scan."""
    at = 1.0 - a
    bt = a * u
    k, tn = 1, a.shape[0]
    while k < tn:
        bt[k:] = bt[k:] + at[k:] * bt[:-k]
        at[k:] = at[k:] * at[:-k]
        k *= 2
    return bt + at * s0[None, :]
