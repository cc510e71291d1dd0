"""PredictiveEngine: the daemon-facing API, bad values counted, gaps, causality, sampling, evidence rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pfepo.predict.engine import PredictiveEngine
from pfepo.predict.prediction import Prediction


def _feed(eng, ep, t0, n, f, dt=5.0):
    for k in range(n):
        eng.observe(ep, t0 + k * dt, f(k))


def test_predict_returns_explained_predictions_and_counts_bad_values():
    eng = PredictiveEngine(horizon_s=300.0)
    rng = np.random.default_rng(1)
    for k in range(240):  # samples arrive in time order across endpoints, as in the daemon
        eng.observe("steady", 5.0 * k, {"latency_ms": 40 + rng.normal(0, 2), "loss_pct": 0.1, "up": 1})
        eng.observe("creep", 5.0 * k, {"latency_ms": 40 + 0.6 * k + rng.normal(0, 2), "up": 1})
    eng.observe("steady", 1201.0, {"latency_ms": math.nan, "loss_pct": math.inf, "bogus": 1.0})
    out = eng.predict(1205.0)
    assert set(out) == {"steady", "creep"}
    assert all(isinstance(p, Prediction) and 0.0 <= p.probability <= 1.0 for p in out.values())
    assert out["creep"].probability > 0.5 > out["steady"].probability
    assert out["creep"].predicted["latency_ms"] > 150  # forecast at the horizon extrapolates the creep
    assert out["creep"].drivers and out["creep"].drivers[0][0] == "latency_ms"
    assert out["creep"].horizon_s == 300.0
    assert eng.stats["rejected_nonfinite"] == 1 and eng.stats["missing"] >= 1
    assert eng.stats["ignored_unknown_metric"] == 1


def test_down_endpoint_scores_one_and_long_gaps_do_not_crash():
    eng = PredictiveEngine()
    _feed(eng, "a", 0.0, 50, lambda k: {"latency_ms": 30.0, "up": 1})
    eng.observe("a", 300.0, {"up": 0})
    assert eng.predict(300.0)["a"].probability == 1.0
    eng.observe("a", 100_000.0, {"latency_ms": 31.0, "up": 1})  # a day-long silence
    p = eng.predict(100_005.0)["a"]
    assert 0.0 <= p.probability <= 1.0 and eng.stats["clock_jumps"] == 1


def test_predictions_are_causal():
    """Samples after ``now`` must not change what was predicted at ``now``."""
    rng = np.random.default_rng(2)
    vals = 40 + np.cumsum(rng.normal(0, 1, 300))
    a, b = PredictiveEngine(), PredictiveEngine()
    for k in range(200):
        a.observe("x", 5.0 * k, {"latency_ms": vals[k]})
        b.observe("x", 5.0 * k, {"latency_ms": vals[k]})
    pa = a.predict(995.0)["x"]
    b.observe("x", 1000.0, {"latency_ms": 10_000.0})  # the future
    pb = b.predict(995.0)["x"]
    assert pa.probability == pb.probability and pa.predicted == pb.predicted


def _creep(t):
    """Latency: 40 ms with noise, then from t=1800 s an accelerating creep crossing 150 ms at ~2580 s."""
    rng = np.random.default_rng(int(t.size))
    p = np.clip((t - 1800.0) / 900.0, 0, None)
    return 40 + 160 * p**1.5 + rng.normal(0, 2, t.size)


def _first_alarm(dt, signal, act=0.4, model_path=None):
    eng = PredictiveEngine(model_path=model_path)
    t = np.arange(0.0, 3000.0, dt)
    y = signal(t)
    first = None
    for k in range(t.size):
        eng.observe("ep", t[k], {"latency_ms": y[k], "cpu_pct": 30.0, "up": 1})
        snap = eng.snapshot(t[k])
        if first is None and eng.score(snap.x, snap.breach, snap.up)[0] >= act:
            first = t[k]
    return first


def test_the_same_engine_works_at_1_5_10_and_60_s_sampling():
    """Features and forecasts are in seconds: the creep is announced at about the same time at any rate,
    well before it crosses the threshold (~2580 s), and a flat series stays quiet at every rate."""
    firsts = {dt: _first_alarm(dt, _creep) for dt in (1.0, 5.0, 10.0, 60.0)}
    assert all(f is not None and 1900 < f < 2500 for f in firsts.values()), firsts
    assert max(firsts.values()) - min(firsts.values()) <= 240, firsts
    flat = {dt: _first_alarm(dt, lambda t: 40 + np.random.default_rng(1).normal(0, 2, t.size)) for dt in (1.0, 60.0)}
    assert all(f is None for f in flat.values()), flat


def _alarms(dt, signal, t_end=3000.0, act=0.4, **kw):
    """Times at which the forecast-only engine's risk is at or above ``act`` (one latency series)."""
    eng = PredictiveEngine(**kw)
    t = np.arange(0.0, t_end, dt)
    y = signal(t)
    out = []
    for k in range(t.size):
        eng.observe("ep", t[k], {"latency_ms": y[k], "up": 1})
        snap = eng.snapshot(t[k])
        if eng.score(snap.x, snap.breach, snap.up)[0] >= act:
            out.append(t[k])
    return np.array(out)


def test_a_ramp_that_stops_under_the_threshold_stops_alarming_soon():
    """A busy plateau: 40 -> 140 ms (threshold 150) over 5 minutes, then flat. The ramp may alarm while it
    rises; once the level stops rising the lagging trend is no longer extrapolated, so the evidence ends
    within ~2 minutes of the stop (here without the alarm hold) and never returns on the plateau."""
    def plateau(t):
        rng = np.random.default_rng(3)
        return 40 + 100 * np.clip((t - 1500.0) / 300.0, 0, 1) + rng.normal(0, 1.5, t.size)

    for dt in (5.0, 60.0):
        al = _alarms(dt, plateau, hold_s=0.0)
        assert al.size == 0 or al.max() <= 1800 + 150, (dt, al)


def test_a_breach_under_way_alarms_and_a_spike_does_not():
    """At 60 s sampling a breach under way (samples above for a minute) alarms at once; a one-sample spike
    does not; at 5 s sampling 20 s spikes of 3.5x, every 5 minutes, never alarm."""
    def base(t):
        return 40.0 + np.sin(t / 500.0)

    al = _alarms(60.0, lambda t: np.where(t >= 2400.0, 200.0, base(t)))
    assert al.size and al[0] <= 2460.0, al
    assert _alarms(60.0, lambda t: np.where(t == 2400.0, 400.0, base(t))).size == 0
    spikes = lambda t: np.where((t % 300.0 >= 100.0) & (t % 300.0 < 120.0), 3.5 * base(t) + 20, base(t))  # noqa: E731
    assert _alarms(5.0, spikes).size == 0


def test_a_breach_under_way_rides_through_single_dips():
    """Latency jumps to ~175 ms (threshold 150) and stays, but one sample in every 40 s reads 146 (noisy
    telemetry on a level above its threshold). A single sample below is a dip, not the end of the breach:
    it alarms within 90 s at 5 and 10 s sampling. (With runs broken by every dip the 10 s series never
    alarmed in 600 s: each run spanned 30 s, under ``LEVEL_S``, and the forecast's level lagged.)"""
    for dt in (5.0, 10.0):
        def sig(t, dt=dt):
            rng = np.random.default_rng(7)
            dip = np.round(t / dt).astype(int) % int(40 / dt) == 0
            return np.where(t >= 2400.0, np.where(dip, 146.0, 175.0 + rng.normal(0, 3, t.size)),
                            40.0 + rng.normal(0, 3, t.size))

        al = _alarms(dt, sig, hold_s=0.0)
        assert al.size and al[0] - 2400.0 <= 90.0, (dt, al[:3])


def test_a_fast_ramp_alarms_soon_after_it_crosses():
    """A 3-minute linear latency ramp, 40 -> 240 ms (threshold 150, crossed ~100 s in). A run above the
    threshold that the level approached over the minute before is a breach arriving, not a spike (the
    samples of the minute before a spike are its normal): it alarms within 30 s of the crossing at 5 and
    10 s sampling. (Measured before the rule: 60-70 s after it; the trend lagged the fast ramp.)"""
    for dt in (5.0, 10.0):
        def ramp(t):
            rng = np.random.default_rng(5)
            return 40.0 + 200.0 * np.clip((t - 2400.0) / 180.0, 0, 1) + rng.normal(0, 2, t.size)

        t = np.arange(0.0, 3000.0, dt)
        cross = t[np.argmax(ramp(t) > 150.0)]
        al = _alarms(dt, ramp, hold_s=0.0)
        assert al.size and al[0] <= cross + 30.0, (dt, cross, al[:3])


def test_a_spike_of_two_slow_samples_is_no_approach():
    """A series sampled every 30 s beside one sampled every 10 s (the engine steps every 10 s; the slow one's
    last sample is held between): a spike of two samples (40 -> 200 ms, every 10 minutes) spans 30 s, under
    ``LEVEL_S``. The samples of the minute before it are normal, so it did not approach its threshold: no
    alarm. (A first version of the rule judged the fast level over the minute *ending* at the run; on the
    held step 50 s after the spike's first sample all of that minute was the spike's: it alarmed on every
    spike, 10 of 10.)"""
    eng = PredictiveEngine(hold_s=0.0)
    rng = np.random.default_rng(9)
    t = np.arange(0.0, 6000.0, 10.0)
    y = np.where((t % 600.0 >= 300.0) & (t % 600.0 < 360.0), 200.0, 40.0 + rng.normal(0, 2, t.size))
    alarms = []
    for k in range(t.size):
        if t[k] % 30.0 == 0:
            eng.observe("slow", t[k], {"latency_ms": y[k], "up": 1})
        eng.observe("fast", t[k], {"latency_ms": 40.0 + rng.normal(0, 2), "up": 1})
        snap = eng.snapshot(t[k])
        if eng.score(snap.x, snap.breach, snap.up)[eng.index["slow"]] >= 0.4:
            alarms.append(t[k])
    assert not alarms, alarms[:5]


def test_an_alarm_is_an_event_held_through_flicker():
    """A level flickering around the threshold alarms once and stays on (held ``hold_s`` after the last
    confirmed evidence), instead of one alarm per crossing."""
    def flicker(t):
        return np.where(t >= 1800.0, 150.0 + 8.0 * np.sign(np.sin(t / 45.0)), 40.0)

    al = _alarms(5.0, flicker)
    assert al.size and np.all(np.diff(al) <= 5.0), np.diff(al).max()  # one continuous episode
    off = _alarms(5.0, flicker, hold_s=0.0)
    assert np.any(np.diff(off) > 60.0)  # without the hold: several episodes


def _exp_creep(t, onset=4000.0, tau=240.0):
    """Latency 40 ms, then from ``onset`` an exponential creep (+10 ms x (e^(s/tau) - 1)) that crosses 150 ms
    only ~600 s later, its last ~150 s carrying most of the rise: a linear drift sees it late."""
    rng = np.random.default_rng(11)
    return np.minimum(40 + rng.normal(0, 2, t.size) + 10 * np.expm1(np.clip(t - onset, 0, None) / tau), 400.0)


def test_an_accelerating_creep_alarms_well_before_it_crosses():
    """Growth evidence: a convex creep that crosses its threshold only in its last minutes is announced
    at least 90 s before the crossing, at 5 s and at 1 s sampling (measured: over 120 s and 104 s; a linear drift
    alone, the previous rule, alarmed 10 s before the crossing at 5 s and 16 s after it at 1 s)."""
    for dt in (5.0, 1.0):
        t = np.arange(0.0, 5000.0, dt)
        cross = t[np.argmax(_exp_creep(t) > 150.0)]
        al = _alarms(dt, _exp_creep, t_end=5000.0)
        assert al.size and 4000.0 < al[0] <= cross - 90.0, (dt, cross, al[:1])


def test_busy_plateaus_and_short_spikes_stay_quiet():
    """Benign look-alikes at 5 s and 1 s sampling: a busy plateau x1.6 (80 -> 128 ms, threshold 150) reached
    by a step or by a 5-minute linear ramp, 20 s spikes of 3.5x and 40 s spikes of 3.5x every 10 minutes. The
    ramp's onset is a kink, not growth (the ramp at 5 s: over several noise draws, next test); a spike moves
    the forecast's level for less than ``LEVEL_S``
    (40 s spikes alarmed every time at 1 s sampling before that rule)."""
    def noisy(t):
        return 80.0 + np.random.default_rng(7).normal(0, 3, t.size)

    shapes = {
        "step": lambda t: noisy(t) * np.where(t >= 4000.0, 1.6, 1.0),
        "ramp": lambda t: noisy(t) * (1 + 0.6 * np.clip((t - 4000.0) / 300.0, 0, 1)),
        "spike20": lambda t: noisy(t) * np.where((t % 600.0 >= 100.0) & (t % 600.0 < 120.0), 3.5, 1.0),
        "spike40": lambda t: noisy(t) * np.where((t % 600.0 >= 100.0) & (t % 600.0 < 140.0), 3.5, 1.0),
    }
    for dt in (5.0, 1.0):
        for name, f in shapes.items():
            if (dt, name) == (5.0, "ramp"):
                continue  # below: over several noise draws
            al = _alarms(dt, f, t_end=5000.0)
            assert al.size == 0, (dt, name, al[:3])


@pytest.mark.parametrize("drift,allowed", [("window", 1), ("brown", 2)])
def test_a_ramp_to_a_busy_plateau_rarely_alarms_over_noise_draws(drift, allowed):
    """The 5-minute ramp to a x1.6 plateau (80 -> 128 ms, 0.85 of the 150 ms threshold) at 5 s sampling,
    over 8 noise draws: its linear projection passes within a few ms of the threshold at the ramp's top, so
    whether it alarms depends on the draw. At most 1 of 8 may (measured: 1 of 8 -- draw 7 -- with the
    windowed drift; 2 of 8 with Brown's drift, which the single draw 7 of the test above used to hide; over
    16 draws 2 and 3). Brown's drift is the default again (see engine.DRIFT): it may alarm on 2 of 8."""
    def ramp(seed):
        return lambda t: (80.0 + np.random.default_rng(seed).normal(0, 3, t.size)) * (
            1 + 0.6 * np.clip((t - 4000.0) / 300.0, 0, 1))

    alarmed = [seed for seed in range(8) if _alarms(5.0, ramp(seed), t_end=5000.0, drift=drift).size]
    assert len(alarmed) <= allowed, alarmed
