"""Streaming anomaly scoring of ``pfepo predict`` on our own labelled synthetic series: ``python -m
pfepo.evaluate.streamscore``.

    python -m pfepo.evaluate.streamscore --series 30 --seed 1 --json stream.json

A corpus of univariate series is generated here (never a public benchmark's data): noise types
(Gaussian, Poisson counts, random walk, heavy-tailed, quantised integers, daily cycle, daily cycle with
busy plateaus, sparse spikes), sampling every 1, 5 or 10 minutes, 2,000-8,000 rows, and 1-3 labelled
anomalies each (level shift, spike, drift, variance burst, dip, daily-cycle break).

Scoring follows the published "standard profile" of streaming anomaly benchmarks: around each anomaly a
window of 10 % of the series' length divided by its number of anomalies; the first 15 % of each series is
a probationary period (flags ignored); a flag is a row whose score reaches the threshold; the first flag
in a window earns ``sigma(y)`` (y = -1 at the window start .. 0 at its end; sigma(y) = 2 / (1 + e^(5y)) - 1),
a missed window costs 1, every flag outside windows costs 0.11 (scaled by sigma of its distance after
the previous window). Totals are normalised so that never flagging scores 0 and a perfect detector 100,
and each detector's threshold is the best one on the corpus (as these benchmarks do).

Detectors, in the same run: ``pfepo predict`` (pfepo.predict.univariate.score), the scorer shipped before
the shared core (pfepo_lab.bench._legacy_univariate, on ``--legacy`` series), and a rolling z-score over 288
rows.

``--subtle`` makes a harder corpus of the anomaly classes real telemetry has and the default corpus lacks
(the development corpus of pfepo/predict/episodes.py): magnitudes of only 2-5 sd; values frozen (a stuck
exporter repeating one value); sustained level shifts; a daily peak missing for a day; spike-density
increases; variance changes; slow drifts; bases with slow wander (AR(1)), heavy tails, quantised
near-constant values and low counts; sampling every 1, 5 or 10 minutes; and one series in three with no
anomaly at all (so false alarms on normal series count).

``--wide`` (stream8, see ``make_wide``) adds the shapes real exports have that both lack: lognormal
latency, bursty on/off traffic, long flat stretches at 0, integer steps, heavy-tailed spike clusters, a
daily peak at 5-10 minute sampling, irregular sampling with gaps, slow wander under t3 noise; with
persisting regime changes, storms, dropouts, frozen values, variance increases and missing peaks. All
three generators draw their common bases from one ``_base_series`` (each seed's default and subtle
corpus is byte-identical to the one before it was shared; tested).

``--weekly`` (season9b, see ``make_weekly``): daily cycles the previous day does not fully predict -- weekends
lower (5-10 and 30-60 minute sampling), a different weekend shape, weekday holidays shaped like weekends
(normal unless labelled), Poisson counts and lognormal volume on a daily cycle, amplitude drawn anew each
day, AR(1) wander; half of each base's series normal throughout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

BASES = ("gauss", "counts", "random_walk", "heavy_tail", "integers", "daily", "daily_busy", "spiky")
ANOMALIES = ("shift", "spike", "drift", "variance", "dip", "cycle_break")
SUBTLE_BASES = ("gauss", "wander", "counts", "random_walk", "heavy_tail", "near_constant", "integers", "daily",
                "daily_busy", "spiky")
SUBTLE_ANOMALIES = ("shift", "frozen", "spike_density", "variance", "slow_drift", "dip", "missing_peak")


@dataclass
class Labelled:
    name: str
    t: np.ndarray
    y: np.ndarray
    windows: list[tuple[int, int]]  # row index ranges [a, b)


def _base_series(rng: np.random.Generator, base: str, n: int, day: np.ndarray, sd: float, lvl: float,
                 counts: tuple[float, float], count_sd_floor: float) -> tuple[np.ndarray, float]:
    """The normal part of a series of kind ``base`` and its noise sd; one generator for every corpus, each
    branch drawing from ``rng`` in a fixed order (so a seed's corpus stays byte-identical)."""
    if base == "gauss":
        y = lvl + rng.normal(0, sd, n)
    elif base == "wander":  # slow AR(1) wander (rho 0.98) under white noise: real CPU/latency look like this
        e = rng.normal(0, sd * 0.25, n)
        e[0] = 0.0  # the path starts at 0
        y = lvl + ar_path(e, 0.98) + rng.normal(0, sd, n)
        sd = float(np.sqrt(sd**2 + (sd * 0.25) ** 2 / (1 - 0.98**2)))
    elif base == "counts":
        y = rng.poisson(rng.uniform(*counts), n).astype(float)
        sd = float(max(np.sqrt(y.mean()), count_sd_floor))
    elif base == "random_walk":
        y = lvl + np.cumsum(rng.normal(0, sd / 4, n))
    elif base == "heavy_tail":
        y = lvl + sd * rng.standard_t(3, n)
    elif base == "near_constant":  # e.g. a ratio near 0.1 in steps of 0.002
        sd = 0.005
        y = np.round((0.1 + rng.normal(0, sd, n)) / 0.002) * 0.002
    elif base == "integers":
        y = np.round(lvl / 50 + rng.normal(0, 0.8, n))
        sd = 0.8
    elif base == "daily":
        y = lvl + 6 * sd * day + rng.normal(0, sd, n)
    elif base == "daily_busy":
        y = lvl + 6 * sd * np.clip(day, 0, None) + rng.normal(0, sd, n)
    elif base == "spiky":
        y = np.where(rng.random(n) < 0.01, lvl + rng.uniform(5, 15, n) * sd, lvl + rng.normal(0, sd, n))
    else:
        raise ValueError(f"unknown base {base!r}")
    return y, sd


def make_series(rng: np.random.Generator, k: int) -> Labelled:
    base = BASES[k % len(BASES)]
    n = int(rng.integers(2000, 8001))
    dt = float(rng.choice([60.0, 300.0, 600.0]))
    t = 1.6e9 + np.arange(n) * dt
    day = np.sin(2 * np.pi * t / 86_400 + rng.uniform(0, 6.3))
    sd = rng.uniform(0.5, 5)
    lvl = rng.uniform(10, 1000)
    y, sd = _base_series(rng, base, n, day, sd, lvl, counts=(3.0, 60.0), count_sd_floor=0.0)
    m = int(rng.integers(1, 4))
    starts = np.sort(rng.choice(np.arange(int(0.25 * n), int(0.95 * n)), m, replace=False))
    w = max(10, int(0.1 * n / m))
    windows = []
    for s in starts:
        kind = ANOMALIES[int(rng.integers(0, len(ANOMALIES)))]
        mag = rng.uniform(4, 8) * sd
        dur = int(rng.integers(5, max(6, w // 2)))
        idx = np.arange(n)
        if kind == "shift":
            y = y + np.where(idx >= s, mag, 0.0)
        elif kind == "spike":
            y = y + np.where(idx == s, 2 * mag, 0.0)
        elif kind == "drift":
            y = y + np.clip((idx - s) / dur, 0, 1) * mag * 1.5
        elif kind == "variance":
            y = y + np.where((idx >= s) & (idx < s + dur), rng.normal(0, 3 * sd, n), 0.0)
        elif kind == "dip":
            y = y - np.where((idx >= s) & (idx < s + dur), mag, 0.0)
        else:  # the cycle stops (flat at its mean) for a while, then returns
            y = np.where((idx >= s) & (idx < s + 3 * dur), lvl + rng.normal(0, sd, n), y)
        windows.append((max(0, s - w // 2), min(n, s + w // 2)))
    return Labelled(f"{k:02d}-{base}", t, y, windows)


def make_subtle(rng: np.random.Generator, k: int) -> Labelled:
    """One series of the ``--subtle`` corpus (see the module docstring)."""
    base = SUBTLE_BASES[k % len(SUBTLE_BASES)]
    daily = base in ("daily", "daily_busy")
    dt = float(rng.choice([60.0, 300.0, 600.0]))
    lo = int(4 * 86_400 / dt) if daily else 2000  # a daily series holds >= 4 days (the cycle must be learnt)
    n = int(rng.integers(min(lo, 7000), max(lo, 8000) + 1))
    t = 1.6e9 + np.arange(n) * dt
    day = np.sin(2 * np.pi * t / 86_400 + rng.uniform(0, 6.3))
    sd = rng.uniform(0.5, 5)
    lvl = rng.uniform(10, 1000)
    idx = np.arange(n)
    y, sd = _base_series(rng, base, n, day, sd, lvl, counts=(1.0, 20.0), count_sd_floor=1.0)
    quantum = {"integers": 1.0, "counts": 1.0, "near_constant": 0.002}.get(base)
    m = 0 if k % 3 == 2 else int(rng.integers(1, 3))  # every third series is normal throughout
    windows: list[tuple[int, int]] = []
    kinds_done: list[str] = []
    if m:
        starts = np.sort(rng.choice(np.arange(int(0.3 * n), int(0.9 * n)), m, replace=False))
        w = max(10, int(0.1 * n / m))
        for s in starts:
            kinds = [a for a in SUBTLE_ANOMALIES if a != "missing_peak" or daily]
            kind = "missing_peak" if daily and rng.random() < 0.5 else kinds[int(rng.integers(0, len(kinds)))]
            if kind == "missing_peak":  # the anomaly starts where the peak should begin
                rise = np.flatnonzero((idx >= s) & (day > 0) & (np.roll(day, 1) <= 0))
                s = int(rise[0]) if rise.size and rise[0] < n - 10 else s
            mag = rng.uniform(2, 5) * sd
            dur = int(rng.integers(max(5, w // 4), max(6, w // 2)))
            on = (idx >= s) & (idx < s + dur)
            sign = rng.choice([-1.0, 1.0])
            if kind == "shift":  # sustained: to the end of the series
                y = y + np.where(idx >= s, sign * mag, 0.0)
            elif kind == "frozen":
                y = np.where(on, y[s - 1], y)
            elif kind == "spike_density":
                hit = on & (rng.random(n) < 0.15)
                y = y + np.where(hit, rng.uniform(3, 6, n) * sd, 0.0)
            elif kind == "variance":
                y = y + np.where(on, rng.normal(0, rng.uniform(1.5, 3) * sd, n), 0.0)
            elif kind == "slow_drift":  # ramps over the whole window half, then stays
                y = y + sign * np.clip((idx - s) / max(dur, 1), 0, 1) * mag
            elif kind == "dip":
                y = y + np.where(on, sign * mag, 0.0)
            else:  # the day's peak does not come: the positive half of the cycle is flat for one day
                one_day = int(86_400 / dt)
                day_on = (idx >= s) & (idx < s + one_day)
                y = np.where(day_on & (day > 0), lvl + rng.normal(0, sd, n), y)
            if quantum and kind != "frozen":
                y = np.round(y / quantum) * quantum
            windows.append((max(0, s - w // 2), min(n, s + w // 2)))
            kinds_done.append(kind)
    return Labelled(f"{k:02d}-{base}-{'+'.join(kinds_done) or 'normal'}", t, y, windows)


WIDE_BASES = ("lognormal", "bursty", "flat_active", "steps_int", "heavy_spiky", "daily_peak", "irregular",
              "wander_heavy")
WIDE_ANOMALIES = ("regime", "spike", "storm", "dropout", "frozen", "variance")


def ar_path(e: np.ndarray, phi: float) -> np.ndarray:
    """``acc_i = phi x acc_(i-1) + e_i`` from ``acc = 0``: an AR(1) path driven by ``e``, as one linear filter
    (the same floats as the Python loop it replaces in the corpora, benchmarks and tests)."""
    return lfilter([1.0], [1.0, -phi], e)


def _ar1(rng: np.random.Generator, n: int, rho: float, sd: float) -> np.ndarray:
    """A stationary AR(1) path with innovation sd ``sd`` (the slow wander of real CPU or latency)."""
    e = rng.normal(0, sd, n)
    return np.asarray(pd.Series(e).ewm(alpha=1 - rho, adjust=False).mean()) / (1 - rho)


def make_wide(rng: np.random.Generator, k: int) -> Labelled:
    """One series of the ``--wide`` corpus: shapes real exports have that the other two corpora lack.

    Bases (every scale stated in the series' own units: the anomaly size is a multiple of the base's
    robust sd, 1.4826 x the median absolute deviation of its first differences / sqrt 2):
    lognormal request latency (sigma 0.3-0.8, multiplicative); bursty traffic (an on/off process: quiet
    Poisson counts, bursts of 5-60 rows at 3-10x); long flat stretches (exactly 0 for hours, then active
    gamma-distributed stretches, like a disk's write rate); integer steps (a quantised value that changes
    on 2-10 % of rows by +-1, mean-reverting: instance or queue counts); heavy-tailed spiky (t2 noise plus
    clusters of spikes); a daily peak at 5- or 10-minute sampling (>= 5 days); irregular sampling
    (interval jittered +-30 %, and 1-4 gaps of 5-200 missing rows); a slow AR(1) wander under t3 noise.
    Anomalies (a frozen run or a dropout becomes a storm where the base sits still anyway): a regime change that persists (level x 3-8 sd and noise x 0.5-2, to the end), one large
    spike (8-20 sd), a storm (10-40 rows of spikes), a dropout (the value falls to the series' floor
    for 5-50 rows), frozen values, a variance increase (x 2-4), and (daily_peak) a missing peak. Every
    third series is normal throughout."""
    base = WIDE_BASES[k % len(WIDE_BASES)]
    dt = float(rng.choice([300.0, 600.0])) if base == "daily_peak" else float(rng.choice([60.0, 300.0, 600.0]))
    lo = int(5 * 86_400 / dt) if base == "daily_peak" else 2000
    n = int(rng.integers(lo, max(lo, 8000) + 1))
    step = np.full(n, dt)
    if base == "irregular":
        step = dt * rng.uniform(0.7, 1.3, n)
    t = 1.6e9 + np.cumsum(step) - step[0]
    day = np.sin(2 * np.pi * t / 86_400 + rng.uniform(0, 6.3))
    lvl = rng.uniform(10, 1000)
    sd = rng.uniform(0.5, 5)
    quantum = None
    if base == "lognormal":
        y = lvl * np.exp(rng.uniform(0.3, 0.8) * rng.normal(0, 1, n))
    elif base == "bursty":
        lam = rng.uniform(5, 50)
        on = np.zeros(n, dtype=bool)
        i = 0
        while i < n:
            i += int(rng.geometric(1 / rng.uniform(100, 600)))
            ln = int(rng.integers(5, 61))
            on[i : i + ln] = True
            i += ln
        y = rng.poisson(lam * np.where(on, rng.uniform(3, 10), 1.0), n).astype(float)
        quantum = 1.0
    elif base == "flat_active":
        on = np.zeros(n, dtype=bool)
        i = int(rng.integers(0, 200))
        while i < n:
            ln = int(rng.integers(20, 200))
            on[i : i + ln] = True
            i += ln + int(rng.integers(50, 600))
        y = np.where(on, rng.gamma(2.0, lvl / 2, n), 0.0)
    elif base == "steps_int":
        c = float(np.round(rng.uniform(3, 40)))
        y = np.empty(n)
        v, p_move = c, rng.uniform(0.02, 0.1)
        mv = rng.random(n) < p_move
        up = rng.random(n) < 0.5
        for i in range(n):
            if mv[i]:
                v += 1.0 if (up[i] if v == c else v < c) else -1.0
            y[i] = v
        quantum = 1.0
    elif base == "heavy_spiky":
        y = lvl + sd * rng.standard_t(2, n)
        hit = rng.random(n) < 0.005
        y = y + np.where(hit, rng.uniform(5, 20, n) * sd, 0.0)
    elif base == "daily_peak":
        y = lvl + rng.uniform(4, 10) * sd * np.clip(day, 0, None) ** 2 + rng.normal(0, sd, n)
    elif base == "irregular":
        y = lvl + _ar1(rng, n, 0.95, sd * 0.3) + rng.normal(0, sd, n)
    else:  # wander_heavy
        y = lvl + _ar1(rng, n, 0.99, sd * 0.2) + sd * rng.standard_t(3, n)
    d = np.diff(y)
    rsd = float(max(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2), 0.5 * np.std(y), quantum or 0.0))
    floor = float(np.min(y))
    m = 0 if k % 3 == 2 else int(rng.integers(1, 3))
    windows: list[tuple[int, int]] = []
    kinds_done: list[str] = []
    idx = np.arange(n)
    if m:
        starts = np.sort(rng.choice(np.arange(int(0.3 * n), int(0.9 * n)), m, replace=False))
        w = max(10, int(0.1 * n / m))
        for s in starts:
            kind = WIDE_ANOMALIES[int(rng.integers(0, len(WIDE_ANOMALIES)))]
            if base in ("flat_active", "steps_int") and kind in ("frozen", "dropout"):
                kind = "storm"  # it sits still or at its floor anyway: no anomaly to see
            if base == "daily_peak" and rng.random() < 0.5:
                kind = "missing_peak"
                rise = np.flatnonzero((idx >= s) & (day > 0) & (np.roll(day, 1) <= 0))
                s = int(rise[0]) if rise.size and rise[0] < n - 10 else s
            mag = rng.uniform(3, 8) * rsd
            dur = int(rng.integers(5, 51))
            on = (idx >= s) & (idx < s + dur)
            sign = rng.choice([-1.0, 1.0])
            if kind == "regime":
                y = np.where(idx >= s, y.mean() + sign * mag + rng.uniform(0.5, 2) * (y - y.mean()), y)
            elif kind == "spike":
                y = y + np.where(idx == s, rng.uniform(8, 20) * rsd, 0.0)
            elif kind == "storm":
                storm = on & (rng.random(n) < 0.5)
                y = y + np.where(storm, rng.uniform(5, 15, n) * rsd, 0.0)
            elif kind == "dropout":
                y = np.where(on, floor, y)
            elif kind == "frozen":
                y = np.where(on | (idx == s), y[s - 1], y)
            elif kind == "variance":
                y = y + np.where(on, rng.normal(0, rng.uniform(2, 4) * rsd, n), 0.0)
            else:  # the day's peak does not come
                day_on = (idx >= s) & (idx < s + int(86_400 / dt))
                y = np.where(day_on & (day > 0), lvl + rng.normal(0, sd, n), y)
            if quantum and kind != "frozen":
                y = np.round(y / quantum) * quantum
            windows.append((max(0, s - w // 2), min(n, s + w // 2)))
            kinds_done.append(kind)
    if base == "irregular":  # gaps: rows never exported
        keep = np.ones(n, dtype=bool)
        for _ in range(int(rng.integers(1, 5))):
            a = int(rng.integers(int(0.2 * n), n - 10))
            keep[a : a + int(rng.integers(5, 201))] = False
        for a, b in windows:  # a window keeps at least its anomaly's start
            keep[(a + b) // 2] = True
        new = np.cumsum(keep) - 1
        windows = [(int(new[a] if keep[a] else new[a] + 1), int(new[b - 1] + 1)) for a, b in windows]
        t, y = t[keep], y[keep]
    return Labelled(f"{k:02d}-{base}-{'+'.join(kinds_done) or 'normal'}", t, y, windows)


WEEKLY_BASES = ("weekly5", "weekly30", "weekend_shape", "poisson_daily", "heavy_daily", "amp_vary", "holiday",
                "ar_daily")
WEEKLY_ANOMALIES = ("shift", "spike", "dip", "variance", "missing_peak", "holiday_day")


def make_weekly(rng: np.random.Generator, k: int) -> Labelled:
    """One series of the ``--weekly`` corpus (season9b): daily cycles that the previous day does not fully
    predict -- the shapes of real cloud, traffic and demand telemetry.

    Bases (>= 2 weeks, sampling every 5 minutes unless said): weekly5 (a daily cycle whose weekends are lower in
    level and amplitude, 5 or 10 minutes), weekly30 (the same at 30 or 60 minutes, 4-6 weeks), weekend_shape
    (weekdays peak at midday, weekends flat-ish with a late-evening bump), poisson_daily (Poisson counts,
    rate on a daily cycle, weekends lower), heavy_daily (lognormal volume, multiplicative, on a daily cycle),
    amp_vary (the daily amplitude drawn anew each day, x0.5-1.5), holiday (weekly, plus 1-2 weekdays shaped
    like a weekend: NOT an anomaly), ar_daily (a daily cycle with slow AR(1) wander and day-to-day
    amplitude). Anomalies (every other series none): a sustained shift, a spike, a dip, a variance burst,
    a missing peak (a weekday's peak does not come) and a labelled holiday-shaped weekday (weekly bases
    only; the same shape is normal where it is not labelled)."""
    base = WEEKLY_BASES[k % len(WEEKLY_BASES)]
    if base == "weekly30":
        dt = float(rng.choice([1800.0, 3600.0]))
        n = int(rng.integers(4, 7) * 7 * 86_400 / dt)
    else:
        dt = float(rng.choice([300.0, 600.0])) if base == "weekly5" else 300.0
        n = int(rng.integers(int(14 * 86_400 / dt), int(21 * 86_400 / dt) + 1))
        n = min(n, 6048)
    t = 1.6e9 + np.arange(n) * dt + float(rng.integers(0, 7)) * 86_400
    ph = rng.uniform(0, 6.3)
    day = np.sin(2 * np.pi * t / 86_400 + ph)
    dnum = np.floor(t / 86_400).astype(int)
    weekend = ((dnum + 3) % 7) >= 5  # 1970-01-01 was a Thursday
    nd = int(dnum[-1] - dnum[0] + 1)
    dayi = dnum - dnum[0]
    lvl = rng.uniform(20, 1000)
    sd = rng.uniform(0.5, 5)
    amp = rng.uniform(4, 10) * sd
    wk = rng.uniform(0.3, 0.7)  # weekend share of the weekday amplitude
    idx = np.arange(n)
    weekday_rows = ~weekend
    hol_days = np.array([], dtype=int)
    if base == "holiday":  # 1-2 weekdays after the first week shaped like weekends, normal
        cand = np.unique(dayi[weekday_rows & (dayi >= 8)])
        hol_days = rng.choice(cand, min(cand.size, int(rng.integers(1, 3))), replace=False) if cand.size else hol_days
    hol = np.isin(dayi, hol_days)

    if base in ("weekly5", "weekly30", "holiday"):
        w = weekend | hol
        y = lvl + amp * np.where(w, wk * np.clip(day, 0, None), np.clip(day, 0, None)) - np.where(w, rng.uniform(0.5, 2) * sd, 0.0)
        y = y + rng.normal(0, sd, n)
    elif base == "weekend_shape":
        late = np.clip(np.sin(2 * np.pi * t / 86_400 + ph - 2.0), 0, None) ** 3
        y = lvl + amp * np.where(weekend, 0.5 * late, np.clip(day, 0, None)) + rng.normal(0, sd, n)
    elif base == "poisson_daily":
        lam = rng.uniform(3, 40)
        rate = lam * (1 + rng.uniform(0.5, 2) * np.clip(day, 0, None) * np.where(weekend, wk, 1.0))
        y = rng.poisson(rate).astype(float)
        sd = float(np.sqrt(lam))
    elif base == "heavy_daily":
        s = rng.uniform(0.3, 0.7)
        y = lvl * np.exp(rng.uniform(0.5, 1.2) * day + s * rng.normal(0, 1, n)) * np.where(weekend, wk + 0.3, 1.0)
        sd = float(lvl * s)
    elif base == "amp_vary":
        a_day = rng.uniform(0.5, 1.5, nd)[dayi]
        y = lvl + amp * a_day * np.clip(day, 0, None) + rng.normal(0, sd, n)
    else:  # ar_daily
        a_day = rng.uniform(0.7, 1.3, nd)[dayi]
        y = lvl + amp * a_day * day + _ar1(rng, n, 0.99, sd * 0.3) + rng.normal(0, sd, n)
    m = 0 if (k + k // len(WEEKLY_BASES)) % 2 == 1 else int(rng.integers(1, 3))  # each base: half normal
    windows: list[tuple[int, int]] = []
    kinds_done: list[str] = []
    if m:
        lo = max(int(0.3 * n), int(8 * 86_400 / dt))
        starts = np.sort(rng.choice(np.arange(lo, int(0.9 * n)), m, replace=False))
        w = max(10, int(0.1 * n / m))
        for s in starts:
            kinds = [a for a in WEEKLY_ANOMALIES if a != "holiday_day" or base in ("weekly5", "weekly30", "holiday")]
            kind = kinds[int(rng.integers(0, len(kinds)))]
            if kind in ("missing_peak", "holiday_day"):  # from the start of a weekday's peak
                rise = np.flatnonzero((idx >= s) & weekday_rows & ~hol & (day > 0) & (np.roll(day, 1) <= 0))
                if not rise.size or rise[0] >= n - 10:
                    kind = "dip"
                else:
                    s = int(rise[0])
            mag = rng.uniform(3, 6) * sd
            dur = int(rng.integers(max(5, w // 4), max(6, w // 2)))
            on = (idx >= s) & (idx < s + dur)
            sign = rng.choice([-1.0, 1.0])
            one_day = (idx >= s) & (idx < s + int(86_400 / dt))
            if kind == "shift":
                y = y + np.where(idx >= s, sign * mag, 0.0)
            elif kind == "spike":
                y = y + np.where(idx == s, rng.uniform(6, 12) * sd, 0.0)
            elif kind == "dip":
                y = y + np.where(on, sign * mag, 0.0)
            elif kind == "variance":
                y = y + np.where(on, rng.normal(0, rng.uniform(2, 3) * sd, n), 0.0)
            elif kind == "missing_peak":
                flat = np.percentile(y[~weekend], 10) + rng.normal(0, sd, n) * (base != "poisson_daily")
                y = np.where(one_day & (day > 0), flat, y)
            else:  # a weekday shaped like a weekend, labelled (an outage day, a strike)
                y = np.where(one_day, y - (1 - wk) * amp * np.clip(day, 0, None) - sd, y)
            if base == "poisson_daily":
                y = np.round(np.maximum(y, 0))
            windows.append((max(0, s - w // 2), min(n, s + w // 2)))
            kinds_done.append(kind)
    return Labelled(f"{k:02d}-{base}-{int(dt)}s-{'+'.join(kinds_done) or 'normal'}", t, y, windows)


def shift_hours(s: Labelled, hours: float) -> Labelled:
    """The series with its timestamps moved by ``hours`` after generation (day12): the same values and labels,
    exported as local times of another zone (or UTC from a service elsewhere), so its days and weekends no
    longer start at midnight UTC. The draws are unchanged: the corpus is the same one, only its clock moves."""
    if not hours:
        return s
    return Labelled(s.name, s.t + hours * 3600.0, s.y, s.windows)


def _sigma(y: float) -> float:
    return 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0


def score_file(flags: np.ndarray, windows: list[tuple[int, int]], a_fp: float = 0.11) -> tuple[float, int]:
    n = flags.size
    prob = int(0.15 * n)
    total, missed = 0.0, 0
    idx = np.flatnonzero(flags)
    idx = idx[idx >= prob]
    in_window = np.zeros(n, dtype=bool)
    for a, b in windows:
        in_window[a:b] = True
        hit = idx[(idx >= a) & (idx < b)]
        if hit.size:
            total += _sigma(-(b - hit[0]) / max(b - a, 1))
        else:
            total -= 1.0
            missed += 1
    ends = np.array([b for _, b in windows])
    lens = np.array([b - a for a, b in windows])
    for i in idx[~in_window[idx]]:
        before = np.flatnonzero(ends <= i)
        if before.size:
            j = before[-1]
            total += a_fp * _sigma((i - ends[j]) / max(lens[j], 1))
        else:
            total -= a_fp
    return total, missed


def benchmark(corpus: list[Labelled], scores: dict[str, list[np.ndarray]]) -> dict:
    """Best-threshold normalised score per detector."""
    n_win = sum(len(s.windows) for s in corpus)
    perfect = n_win * _sigma(-1.0)
    null = -float(n_win)
    out = {}
    for name, per in scores.items():
        m = len(per)
        if m == 0:
            continue
        best = (-np.inf, None, None)
        for thr in np.unique(np.r_[np.linspace(0.05, 0.99, 48), np.quantile(np.concatenate(per), [0.9, 0.99, 0.999])]):
            tot, miss, flags = 0.0, 0, 0
            for s, r in zip(corpus[:m], per, strict=True):
                f = r >= thr
                sc, mi = score_file(f, s.windows)
                tot, miss, flags = tot + sc, miss + mi, flags + int(f.sum())
            n_w = sum(len(s.windows) for s in corpus[:m])
            norm = 100 * (tot - (-n_w)) / (n_w * _sigma(-1.0) - (-n_w))
            if norm > best[0]:
                best = (norm, float(thr), {"missed_windows": miss, "windows": n_w, "flags": flags})
        out[name] = {"score": round(best[0], 1), "threshold": round(best[1], 3), **best[2], "series": m}
    out["_corpus"] = {"series": len(corpus), "windows": n_win, "rows": int(sum(s.y.size for s in corpus)),
                      "perfect_raw": round(perfect, 2), "null_raw": null}
    return out


def rolling_z(y: np.ndarray, w: int = 288) -> np.ndarray:
    s = pd.Series(y)
    mu = s.rolling(w, min_periods=30).mean().shift(1)
    sd = s.rolling(w, min_periods=30).std().shift(1)
    z = ((s - mu) / sd).abs().fillna(0).to_numpy()
    return np.clip(z / 10.0, 0, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pfepo.evaluate.streamscore", description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--legacy", type=int, default=8, help="series scored by the previous scorer (slow)")
    ap.add_argument("--subtle", action="store_true", help="the harder corpus (2-5 sd, frozen values, missing peaks, ...)")
    ap.add_argument("--wide", action="store_true", help="shapes of real exports: heavy tails, bursts, flat stretches,"
                    " integer steps, irregular sampling and gaps, persisting regime changes")
    ap.add_argument("--weekly", action="store_true", help="daily cycles with weekly structure, holidays, count and"
                    " heavy-tailed volume on a daily cycle, day-to-day amplitude (half the series normal)")
    ap.add_argument("--shift-hours", type=float, default=0.0, help="add H hours to every generated timestamp (labels"
                    " are row ranges and move with them): the same series exported in another time zone")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    from pfepo.predict.univariate import from_columns, score
    from pfepo_lab.bench._legacy_univariate import score_series as legacy

    rng = np.random.default_rng(args.seed)
    make = make_weekly if args.weekly else make_wide if args.wide else make_subtle if args.subtle else make_series
    corpus = [shift_hours(make(rng, k), args.shift_hours) for k in range(args.series)]
    t0 = time.perf_counter()
    ours = [score(from_columns(pd.Series(s.t), pd.Series(s.y))) for s in corpus]
    el = time.perf_counter() - t0
    dets = {"pfepo predict": ours, "rolling z-score (288 rows)": [rolling_z(s.y) for s in corpus]}
    if args.legacy > 0:
        dets["previous scorer"] = [legacy(s.y) for s in corpus[: args.legacy]]
        dets["pfepo predict (same series as previous)"] = ours[: args.legacy]
    res = benchmark(corpus, dets)
    res["_corpus"]["pfepo_predict_rows_per_s"] = round(res["_corpus"]["rows"] / el)
    print(json.dumps(res, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
