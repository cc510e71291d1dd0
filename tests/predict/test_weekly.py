"""week10: weekday and weekend profiles in the anomaly core (pfepo.predict.core, ``AnomalyCore._week``).

A daily cycle whose weekends (UTC Saturday and Sunday) are lower in level and amplitude -- office traffic,
business-hours load -- must not alarm on its weekends once two weeks are learnt, at 5-, 10-, 30- and
60-minute sampling, and a weekday whose peak does not come must still alarm; series without a weekly
cycle keep the daily profile alone."""

from __future__ import annotations

import numpy as np
import pytest

from pfepo.predict.core import DAY_S, AnomalyCore
from pfepo.predict.univariate import params_for

ALARM = 0.5
T0 = 1.7e9  # a Tuesday, 22:13 UTC


def _weekly(dt: float, weeks: int, seed: int, missing: bool = False):
    """Peak of 6 noise sds on weekdays, 0.4 of it and 1 sd lower on weekends; optionally the peak of the
    second-to-last full weekday missing (flat at the night level)."""
    rng = np.random.default_rng(seed)
    n = int(weeks * 7 * DAY_S / dt)
    t = T0 + np.arange(n) * dt
    day = np.sin(2 * np.pi * t / DAY_S)
    dnum = np.floor(t / DAY_S)
    weekend = np.mod(dnum + 3, 7) >= 5
    y = 100 + 12 * np.clip(day, 0, None) * np.where(weekend, 0.4, 1.0) - np.where(weekend, 2.0, 0.0) + rng.normal(0, 2, n)
    miss = np.zeros(n, dtype=bool)
    if missing:
        d = np.unique(dnum[~weekend])[-2]
        miss = (dnum == d) & (day > 0)
        y[miss] = 100 + rng.normal(0, 2, miss.sum())
    return t, y, weekend, miss


def _risk(t, y, dt):
    c = AnomalyCore(params_for(dt), 1)
    return c.update(y[:, None], t)[:, 0], c


def _weeks(dt):
    return 3 if dt <= 600 else 5  # the slow samplings: 4-6 weeks, like the weekly corpus's weekly30


@pytest.mark.parametrize("dt", [300.0, 600.0, 1800.0, 3600.0])
def test_lower_weekends_do_not_alarm_once_two_weeks_are_learnt(dt):
    """Ten seeds, from day 14 on: alarm episodes starting on a weekend or within 2 h of a weekday/weekend
    switch are at most one per four weekends seen, and alarm episodes anywhere at most one per 20
    series-days (the noise is Gaussian: a lone 4-sd sample may alarm wherever it falls).

    Measured episodes (weekend-related / all) at 5, 10, 30 and 60 minutes: 4bdaa37 (before week10) 20/20,
    10/10, 9/10, 3/3; f906a60 1/1, 0/0, 0/1, 0/2; day12 2/2 (one of them a 3.93-sd sample 22 minutes before
    a weekend), 0/0, 0/1, 0/2. Three seeds with no alarm at all, the test before day12, passed on f906a60
    by a risk of 0.4996 against 0.5 at that sample."""
    weeks = _weeks(dt)
    weekend_eps = all_eps = 0
    days = weekends = 0.0
    for seed in range(10):
        t, y, weekend, _ = _weekly(dt, weeks, seed)
        r, c = _risk(t, y, dt)
        k = int(14 * DAY_S / dt)
        a = r[k:] >= ALARM
        starts = np.flatnonzero(a & ~np.r_[False, a[:-1]]) + k
        switches = t[np.flatnonzero(weekend[1:] != weekend[:-1]) + 1]
        near = [bool(weekend[i] or np.any(np.abs(switches - t[i]) <= 2 * 3600)) for i in starts]
        weekend_eps += sum(near)
        all_eps += len(starts)
        days += (t[-1] - t[k]) / DAY_S
        weekends += weeks - 2
        assert bool(getattr(c, "week_on", [False])[0]), seed
    assert weekend_eps <= weekends / 4, (weekend_eps, weekends)
    assert all_eps <= days / 20, (all_eps, days)


@pytest.mark.parametrize("dt", [300.0, 600.0, 1800.0, 3600.0])
def test_a_missing_weekday_peak_still_alarms(dt):
    """The weekday peak of the second-to-last full weekday does not come: an alarm within 4 hours of its
    start (8 at hourly sampling: a handful of samples), three seeds (main 4bdaa37: never at 5, 10 and 60
    minutes, after 5-5.5 hours at 30)."""
    bound = 8 * 3600 if dt >= 3600 else 4 * 3600
    for seed in range(3):
        t, y, _, miss = _weekly(dt, _weeks(dt), seed, missing=True)
        r, _ = _risk(t, y, dt)
        s = int(np.flatnonzero(miss)[0])
        hit = np.flatnonzero(r[s : s + int(DAY_S / dt)] >= ALARM)
        assert hit.size and hit[0] * dt <= bound, (seed, hit[:1])


@pytest.mark.parametrize("kind", ["daily", "amp_vary"])
def test_without_a_weekly_cycle_the_daily_profile_stays(kind):
    """Three weeks at 5 minutes of a plain daily cycle and of one whose amplitude is drawn anew each day
    (x0.5-1.5): the class profiles are never in use at the end (their out-of-sample residual on the days
    after they were learnt is no better than the daily profile's)."""
    dt = 300.0
    per = int(DAY_S / dt)
    n = 21 * per
    t = T0 + np.arange(n) * dt
    peak = np.clip(np.sin(2 * np.pi * t / DAY_S), 0, None)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        amp = rng.uniform(0.5, 1.5, 21)[np.arange(n) // per] if kind == "amp_vary" else 1.0
        y = 100 + 12 * amp * peak + rng.normal(0, 2, n)
        _, c = _risk(t, y, dt)
        assert c.season_on[0] and not c.week_on[0]


def test_streaming_and_batch_agree_with_the_weekly_profiles_in_use():
    """Batch, one-row and odd-block calls give the same risk on a weekly series (the class sums of the
    one-row path and the batch path's bincount)."""
    dt = 1800.0
    t, y, _, _ = _weekly(dt, 3, 1, missing=True)
    y[np.random.default_rng(2).random(y.size) < 0.03] = np.nan
    batch, cb = _risk(t, y, dt)
    c = AnomalyCore(params_for(dt), 1)
    stream = np.concatenate([c.update(y[k : k + 1, None], t[k : k + 1])[:, 0] for k in range(y.size)])
    odd = AnomalyCore(params_for(dt), 1)
    cuts = [0, 5, 200, 201, 700, y.size]
    blocks = np.concatenate([odd.update(y[a:b, None], t[a:b])[:, 0] for a, b in zip(cuts, cuts[1:], strict=False)])
    assert cb.week_on[0] and c.week_on[0]
    assert np.allclose(batch, stream, atol=1e-9) and np.allclose(batch, blocks, atol=1e-9)
    assert np.allclose(cb.wk_prof, c.wk_prof, atol=1e-9) and np.allclose(cb.wk_prof, odd.wk_prof, atol=1e-9)


@pytest.mark.parametrize("kind", ["sine", "sawtooth", "triangle"])
def test_a_noise_free_daily_shape_never_takes_the_class_profiles(kind):
    """Fourteen days at 5 minutes of a noise-free daily shape (three phases): the class profiles are never in
    use at any refresh. The daily profile explains nearly all its variance, so what it leaves is estimation
    error around 0; before the floor ``WEEK_LEFT_MIN`` the rule "the class profiles leave < 80 % of that" held
    for a negative remainder (70 of the sharp probe's 72 such series had them on at some refresh, e.g. a
    sawtooth: raw variance 297.9, daily and class gains both 304.3)."""
    dt = 300.0
    per = int(DAY_S / dt)
    t = T0 + np.arange(14 * per) * dt
    for ph in (0.3, 2.1, 4.4):
        frac = (t / DAY_S + ph / (2 * np.pi)) % 1.0
        y = {"sine": 50 + 20 * np.sin(2 * np.pi * frac), "sawtooth": 20 + 60 * frac,
             "triangle": 20 + 60 * np.abs(2 * frac - 1)}[kind]
        c = AnomalyCore(params_for(dt), 1)
        on = []
        for k in range(0, t.size, per // 4):  # every 6 hours: more often than the refreshes (256 rows)
            c.update(y[k : k + per // 4, None], t[k : k + per // 4])
            on.append(bool(c.week_on[0]))
        assert c.season_on[0] and not any(on), (ph, on.index(True) if any(on) else None)
