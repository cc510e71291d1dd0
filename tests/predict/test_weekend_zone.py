"""day12: the weekday / weekend split follows the series' own week, whatever zone its timestamps are in
(pfepo.predict.core, ``AnomalyCore._weekend``).

Exports carry local times of any zone (or UTC from a service in another zone): a weekend seen from +5 h or
-8 h starts hours before or after midnight UTC. The window is chosen from past rows only, and batch and
one-row calls agree."""

from __future__ import annotations

import numpy as np
import pytest

from pfepo.predict.core import CHUNK, DAY_S, AnomalyCore
from pfepo.predict.univariate import params_for

ALARM = 0.5
T0 = 1.7e9  # a Tuesday, 22:13 UTC


def _zoned(dt: float, weeks: int, seed: int, zone: float, t0: float = T0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weekly series of tests/predict/test_weekly.py (weekday peak of 6 noise sds, weekends 0.4 of it and
    1 sd lower; the peak from local 00:00 to 12:00) lived in local time ``zone`` hours from UTC; timestamps
    in UTC. Returns t, y and each row's local time (s)."""
    rng = np.random.default_rng(seed)
    n = int(weeks * 7 * DAY_S / dt)
    t = t0 + np.arange(n) * dt
    loc = t + zone * 3600.0
    day = np.sin(2 * np.pi * loc / DAY_S)
    weekend = np.mod(np.floor(loc / DAY_S) + 3, 7) >= 5
    y = 100 + 12 * np.clip(day, 0, None) * np.where(weekend, 0.4, 1.0) - np.where(weekend, 2.0, 0.0) + rng.normal(0, 2, n)
    return t, y, loc


def _near_transition(loc: np.ndarray, hours: float = 3.0) -> np.ndarray:
    """Rows within ``hours`` of a local weekend start (Saturday 00:00) or end (Monday 00:00)."""
    dow = np.mod(np.floor(loc / DAY_S) + 3, 7)  # Monday 0
    h = np.mod(loc, DAY_S) / 3600.0
    after = ((dow == 5) | (dow == 0)) & (h < hours)
    before = ((dow == 4) | (dow == 6)) & (h >= 24.0 - hours)
    return after | before


@pytest.mark.parametrize("zone", [5.0, -8.0])
@pytest.mark.parametrize("dt", [300.0, 600.0])
def test_weekend_transitions_of_another_zone_do_not_alarm(dt, zone):
    """Three weeks, five seeds: no alarm within 3 hours of a local weekend start or end from day 14 on (the
    class profiles are learnt). Main (f906a60, UTC days): +5 h alarms on every seed at 5 and 10 minutes, at
    local Saturday 00:50-02:40 (its class switch comes 5 hours late); -8 h passes there too (a guard)."""
    alarms = []
    for seed in range(5):
        t, y, loc = _zoned(dt, 3, seed, zone)
        r = AnomalyCore(params_for(dt), 1).update(y[:, None], t)[:, 0]
        k = int(14 * DAY_S / dt)
        alarms.append(int(((r >= ALARM) & _near_transition(loc))[k:].sum()))
    assert alarms == [0] * 5


@pytest.mark.parametrize("zone", [5.0, -8.0, 3.0, 11.0, 0.0])
def test_the_window_follows_the_zone(zone):
    """After three weeks the weekend window starts within 2 hours of local Saturday 00:00 (in UTC: 00:00 minus
    the zone), three seeds."""
    dt = 300.0
    for seed in range(3):
        t, y, _ = _zoned(dt, 3, seed, zone)
        c = AnomalyCore(params_for(dt), 1)
        c.update(y[:, None], t)
        nb = c.bins
        true = (5 * nb - zone * 3600.0 / c.bin_w) % (7 * nb)
        err = (c.wk_start[0] - true + 3.5 * nb) % (7 * nb) - 3.5 * nb
        assert abs(err) * c.bin_w <= 2 * 3600.0, (seed, err * c.bin_w / 3600.0)


def test_the_window_is_chosen_from_past_rows_only():
    """Two series equal for ten days, then their zone differs (+5 h vs -8 h): up to day 10 the risk of one batch
    call and the window at every chunk boundary are the same for both; the window stays at UTC Saturday for
    the first two days of rows, and the first series' window at day 10 is the one a core fed only those ten
    days holds."""
    dt = 300.0
    t, y1, _ = _zoned(dt, 3, 1, 5.0)
    _, y2, _ = _zoned(dt, 3, 1, -8.0)
    k = (int(10 * DAY_S / dt) // CHUNK) * CHUNK
    y2[:k] = y1[:k]
    r1 = AnomalyCore(params_for(dt), 1).update(y1[:, None], t)[:, 0]
    r2 = AnomalyCore(params_for(dt), 1).update(y2[:, None], t)[:, 0]
    assert np.array_equal(r1[:k], r2[:k])
    hist = []
    for y in (y1, y2):
        c = AnomalyCore(params_for(dt), 1)
        h = []
        for a in range(0, y.size, CHUNK):
            c.update(y[a : a + CHUNK, None], t[a : a + CHUNK])
            h.append(int(c.wk_start[0]))
        hist.append(h)
    m = k // CHUNK
    assert hist[0][:m] == hist[1][:m]
    assert not np.array_equal(r1[k:], r2[k:])  # the futures differ
    early = int(2 * DAY_S / dt) // CHUNK
    assert all(s == 5 * c.bins for s in hist[0][:early])
    short = AnomalyCore(params_for(dt), 1)
    short.update(y1[:k, None], t[:k])
    assert short.wk_start[0] == hist[0][m - 1]


def test_streaming_and_batch_agree_with_a_moved_window():
    """Batch, one-row and odd-block calls give the same risk and window on a -8 h series at 30 minutes with
    gaps (the hour-of-week sums of the one-row path and the batch path's bincount)."""
    dt = 1800.0
    t, y, _ = _zoned(dt, 4, 2, -8.0)
    y[np.random.default_rng(3).random(y.size) < 0.03] = np.nan
    cb = AnomalyCore(params_for(dt), 1)
    batch = cb.update(y[:, None], t)[:, 0]
    c = AnomalyCore(params_for(dt), 1)
    stream = np.concatenate([c.update(y[k : k + 1, None], t[k : k + 1])[:, 0] for k in range(y.size)])
    odd = AnomalyCore(params_for(dt), 1)
    cuts = [0, 5, 200, 201, 700, y.size]
    blocks = np.concatenate([odd.update(y[a:b, None], t[a:b])[:, 0] for a, b in zip(cuts, cuts[1:], strict=False)])
    assert cb.wk_start[0] != 5 * cb.bins and cb.wk_start[0] == c.wk_start[0] == odd.wk_start[0]
    assert np.allclose(batch, stream, atol=1e-9) and np.allclose(batch, blocks, atol=1e-9)
    assert np.allclose(cb.wk_prof, c.wk_prof, atol=1e-9) and np.allclose(cb.wk_prof, odd.wk_prof, atol=1e-9)
