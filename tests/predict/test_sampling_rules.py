"""Benign look-alike rules that must hold at any sampling rate (1, 5, 10 and 60 s): noise is judged at the
series' own sampling interval, a spike shorter than ``LEVEL_S`` never alarms, a noisy busy plateau does not
pass for a trend, and a genuine steady climb is still announced (forecast-only engine, default thresholds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pfepo.predict.engine import LEVEL_S, LEVEL_TAU_S, SOURCES, PredictiveEngine

RATES = (1.0, 5.0, 10.0, 60.0)


def _run(dt: float, metric: str, signal, t_end: float, act: float = 0.4, **kw) -> tuple[PredictiveEngine, np.ndarray]:
    """Feed ``signal`` sampled every ``dt`` s; times (at model-step boundaries) where risk >= ``act``."""
    eng = PredictiveEngine(**kw)
    t = np.arange(0.0, t_end, dt)
    y = signal(t)
    out = []
    for k in range(t.size):
        eng.observe("ep", t[k], {metric: y[k], "up": 1})
        if t[k] % eng.step_s == 0 or dt > eng.step_s:
            snap = eng.snapshot(t[k])
            if eng.score(snap.x, snap.breach, snap.up)[0] >= act:
                out.append(t[k])
    return eng, np.array(out)


@pytest.mark.parametrize("dt", RATES)
def test_the_fast_levels_noise_is_measured_at_the_series_own_sampling_interval(dt):
    """White noise of sd 4: the standard error of the fast level the rules use is that of the level's filter
    at the series' own interval (step means below the 10 s step), within 35 %, at every rate. Before, a
    60 s series, held between samples, was credited with ~1/10 of its noise."""
    sd = 4.0
    eng, _ = _run(dt, "cpu_pct", lambda t: 50.0 + np.random.default_rng(2).normal(0, sd, t.size), 4 * 3600.0, act=2.0)
    i = eng.midx["cpu_pct"]
    got = float(eng._level_sd(eng.bank.n)[i])
    per_step = sd / math.sqrt(max(1.0, eng.step_s / dt))  # noise of what one model step sees
    a = 1 - math.exp(-max(dt, eng.step_s) / LEVEL_TAU_S)
    want = per_step * math.sqrt(a / (2 - a))
    assert 0.65 * want <= got <= 1.35 * want, (dt, got, want)


def _busy(x: float, noise_up: float, seed: int):
    """CPU 45 % rising over 10 minutes to a 90-minute busy plateau at ``1 + x``, noise sd 2 growing with the
    load by ``noise_up`` (heteroscedastic), then back."""
    def busy(t):
        s = np.clip((t - 4000.0) / 600.0, 0, 1) * np.clip((4000.0 + 600.0 + 5400.0 - t) / 600.0, 0, 1)
        return 45.0 * (1 + x * s) + (2.0 + noise_up * s) * np.random.default_rng(seed).standard_normal(t.size)
    return busy


@pytest.mark.parametrize("dt", RATES)
def test_a_noisy_busy_plateau_is_no_trend_at_any_sampling_rate(dt):
    """A x1.6 busy plateau (72 %, 0.8 of the 90 % threshold), noise sd 2 -> 6: neither the ramp nor the noise on
    the plateau may alarm, at any rate."""
    _, al = _run(dt, "cpu_pct", _busy(0.6, 4.0, 0), 11500.0)
    assert al.size == 0, (dt, al[:3])


def test_noise_between_slow_samples_is_no_trend():
    """At 60 s sampling, a x1.7 plateau (76.5 %, 0.85 of the threshold), noise sd 2 -> 5, four noise draws:
    no alarm may come from the trend. With the previous code draws 0 and 3 alarmed (6 steps each) -- noise
    over two or three slow samples passed for a supported trend. Draw 3 alarmed at the ramp's top by
    *growth* evidence (confirmed over a window where trend and growth evidence alternated) until predict7's
    trend rules (support in both halves of the window, a persisting projected breach) took the trend's
    part away: no draw alarms now. Growth keeps the anomaly core's step-based noise scale (too small at
    60 s: a known gap, docs/prediction.md "Where it falls short"); recorded here so a change shows."""
    by: dict[int, set[str]] = {}
    for seed in range(4):
        eng = PredictiveEngine()
        t = np.arange(0.0, 11500.0, 60.0)
        y = _busy(0.7, 3.0, seed)(t)
        j = eng.midx["cpu_pct"]
        for k in range(t.size):
            eng.observe("ep", t[k], {"cpu_pct": y[k], "up": 1})
            snap = eng.snapshot(t[k])
            if eng.score(snap.x, snap.breach, snap.up)[0] >= 0.4:
                by.setdefault(seed, set()).add(SOURCES[eng.alarm_src[j]])
    assert all("trend" not in v for v in by.values()), by
    assert by == {}, by


@pytest.mark.parametrize("dt", RATES)
def test_spikes_shorter_than_level_s_never_alarm_at_any_sampling_rate(dt):
    """Latency spikes of 5x (40 -> 200 ms, threshold 150) lasting 5, 20, 40 and 55 s, one every 10 minutes:
    shorter than ``LEVEL_S``, so neither an observed breach nor the forecast's level may confirm them."""
    assert LEVEL_S == 60.0
    durs = (5.0, 20.0, 40.0, 55.0)

    def spiky(t):
        k = (t // 600.0).astype(int) % len(durs)
        on = (t % 600.0 >= 300.0) & (t % 600.0 < 300.0 + np.take(durs, k))
        return (40.0 + np.random.default_rng(6).normal(0, 2, t.size)) * np.where(on & (t > 3000.0), 5.0, 1.0)

    _, al = _run(dt, "latency_ms", spiky, 3000.0 + 8 * 600.0)
    assert al.size == 0, (dt, al[:3])


@pytest.mark.parametrize("dt", RATES)
def test_a_steady_climb_is_still_announced_at_any_sampling_rate(dt):
    """CPU 50 % with noise sd 1.5, then a 4 %/min climb from t = 4000 s (crosses 90 % ~600 s later): announced
    before the crossing at every rate (the noise test must not hide a real trend)."""
    def climb(t):
        return 50.0 + np.random.default_rng(8).normal(0, 1.5, t.size) + 4.0 * np.clip((t - 4000.0) / 60.0, 0, None)

    _, al = _run(dt, "cpu_pct", climb, 4800.0)
    assert al.size and 4000.0 < al[0] <= 4600.0 - min(60.0, dt), (dt, al[:1])


def test_a_refit_does_not_turn_the_old_models_state_into_a_trend():
    """Latency 50 ms stepping down to 34 ms, then a refit to phi 0.97 / theta -0.98 (what fits return on
    noisy levels): the forecast without drift must stay at the level. With the old model's ARMA state carried
    into the new parameters, the same kind of series (a look-alike trace) was forecast at 184 ms at the
    horizon right after the refit, and the forecast's level "breached" 150 ms with nothing happening."""
    fits = iter([(-0.01, -0.98, 1.0), (0.97, -0.98, 1.0)])
    eng = PredictiveEngine(fit=lambda window, start: next(fits, None))
    rng = np.random.default_rng(3)
    j = eng.midx["latency_ms"]
    worst = 0.0
    for k in range(200):
        y = (50.0 if k < 90 else 34.0) + rng.normal(0, 1.0)
        eng.observe("ep", 10.0 * k, {"latency_ms": y, "up": 1})
        eng.snapshot(10.0 * k)
        if eng.stats["fits"] == 2:
            mean, _ = eng.bank.forecast(drift=False)
            worst = max(worst, float(np.max(np.abs(mean[j] - eng.bank.level[j]))))
    assert eng.stats["fits"] == 2 and worst < 10.0, worst


def _ramp(top: float, ramp_s: float, sd: float = 1.0, seed: int = 0, t0: float = 4000.0):
    """CPU 50 % (noise sd ``sd``) rising linearly from ``t0`` over ``ramp_s`` to ``top`` and staying there."""
    def ramp(t):
        return 50.0 + (top - 50.0) * np.clip((t - t0) / ramp_s, 0, 1) + sd * np.random.default_rng(seed).standard_normal(t.size)
    return ramp


@pytest.mark.parametrize("dt", (5.0, 60.0))
@pytest.mark.parametrize(("top", "ramp_s"), [(83.0, 1200.0), (84.0, 1500.0)])
def test_a_ramp_slowing_onto_a_plateau_just_under_the_threshold_is_no_forecast(dt, top, ramp_s):
    """A 20-25 minute climb to a busy plateau at 0.92-0.93 of the 90 % threshold: the lagging drift carried the
    projected path to the threshold only at the horizon's end. Before predict7 this alarmed at 5 s sampling
    (at the ramp's top: 5230 and 5500 s) -- the breach must now persist over a quarter of the horizon on the
    fast level's path, and the rise must hold in both halves of the support window. (At 60 s the previous
    rules were quiet on these too: kept as the invariance check.)"""
    _, al = _run(dt, "cpu_pct", _ramp(top, ramp_s), 4000.0 + ramp_s + 900.0)
    assert al.size == 0, (dt, al[:3])


@pytest.mark.parametrize("dt", (5.0, 60.0))
def test_a_slow_climb_through_the_threshold_is_still_announced(dt):
    """The same slope carried on through the threshold (50 -> 100 % over 40 minutes: 1.25 %/min, crossing
    90 % at 5920 s): still announced, at 5 s at least two minutes before the crossing (5770 s measured; the
    previous rules: 5650 s -- the persistence rule costs this slow climb 120 s of lead), at 60 s sampling no
    later than before (6060 s, after the crossing, both: two slow samples above the threshold)."""
    _, al = _run(dt, "cpu_pct", _ramp(100.0, 2400.0), 6400.0)
    assert al.size, dt
    assert al[0] <= (5920.0 - 120.0 if dt == 5.0 else 6060.0), (dt, al[:1])


@pytest.mark.parametrize("dt", (5.0, 60.0))
def test_a_trend_loses_its_support_soon_after_the_ramp_stops(dt):
    """A 5-minute ramp to 84 % (0.93 of the threshold) that stops: the trend's support must end within 130 s
    of the stop, because the rise must hold in the second half of the support window too (measured: 115 s at
    5 s sampling, 80 s at 60 s; with the whole-window and first-half tests alone 145 s and 140 s)."""
    eng = PredictiveEngine()
    t = np.arange(0.0, 5200.0, dt)
    y = _ramp(84.0, 300.0, sd=0.5)(t)
    j = eng.midx["cpu_pct"]
    ev = []
    for k in range(t.size):
        eng.observe("ep", t[k], {"cpu_pct": y[k], "up": 1})
        eng.snapshot(t[k])
        if eng.pring[:, j].max() > 0:  # unconfirmed evidence in the confirmation window
            ev.append(t[k])
    assert ev and ev[-1] - 4300.0 <= 130.0, (dt, ev[:1], ev[-1:])
