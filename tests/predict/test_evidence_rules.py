"""Evidence rules of PredictiveEngine._evidence added for relative precursors and cold start: for each rule
a shape that must alarm and look-alikes that must not (forecast-only engine, default thresholds)."""

from __future__ import annotations

import numpy as np

from pfepo.predict.engine import PredictiveEngine


def _alarms(dt: float, metric: str, signal, t_end: float, act: float = 0.4, t0: float = 0.0, **kw) -> np.ndarray:
    """Times at which the forecast-only engine's risk is at or above ``act`` (one series of ``metric``)."""
    eng = PredictiveEngine(**kw)
    t = np.arange(t0, t_end, dt)
    y = signal(t)
    out = []
    for k in range(t.size):
        eng.observe("ep", t[k], {metric: y[k], "up": 1})
        snap = eng.snapshot(t[k])
        if eng.score(snap.x, snap.breach, snap.up)[0] >= act:
            out.append(t[k])
    return np.array(out)


def _noisy(level: float, sd: float, seed: int = 5):
    return lambda t: level + np.random.default_rng(seed).normal(0, sd, t.size)


def test_a_relative_creep_that_never_reaches_the_threshold_alarms():
    """Departure evidence: latency 8 ms creeping to ~70 ms over 8 minutes (x9, never near 150 ms, the linear
    projection stays under it) alarms while it creeps, at 60 s and at 5 s sampling."""
    def creep(t):
        return _noisy(8.0, 0.7)(t) + 62.0 * np.clip((t - 7200.0) / 480.0, 0, 1)

    for dt in (60.0, 5.0):
        al = _alarms(dt, "latency_ms", creep, 7200.0 + 480.0)
        assert al.size and al[0] <= 7200.0 + 420.0, (dt, al[:3])


def test_relative_look_alikes_stay_quiet():
    """Look-alikes of a relative precursor: a busy plateau x1.6 reached by a 5-minute ramp (CPU 30 -> 48 %,
    threshold 90: far from its baseline in spreads, rising for minutes, but only x1.6), a daily-style wave of +-30 % with a 30-minute period, a near-zero loss series moving x6
    (0.05 -> 0.3 %, threshold 2 %: far in ratio, not towards the threshold) and a latency step to x3 that
    stays flat (a new level is not a creep)."""
    shapes = {
        "busy": ("cpu_pct", lambda t: _noisy(30.0, 1.0)(t) * (1 + 0.6 * np.clip((t - 7200.0) / 300.0, 0, 1))),
        "wave": ("latency_ms", lambda t: _noisy(40.0, 1.0)(t) * (1 + 0.3 * np.sin(2 * np.pi * t / 1800.0))),
        "loss": ("loss_pct", lambda t: np.abs(_noisy(0.05, 0.01)(t)) * (1 + 5.0 * np.clip((t - 7200.0) / 300.0, 0, 1))),
        "step": ("latency_ms", lambda t: _noisy(20.0, 1.0)(t) * np.where(t >= 7200.0, 3.0, 1.0)),
    }
    for dt in (5.0, 60.0):
        for name, (metric, f) in shapes.items():
            al = _alarms(dt, metric, f, 9000.0)
            assert al.size == 0, (dt, name, al[:3])


def _ramp(start: float):
    """CPU 50 % with noise, then from ``start`` a 4%/min climb (crosses 90 % after 10 minutes)."""
    return lambda t: _noisy(50.0, 1.0)(t) + 4.0 * np.clip((t - start) / 60.0, 0, None)


def test_no_extrapolation_in_a_series_first_minutes():
    """Cold start: a climb from the series' first sample is not extrapolated before the series has two
    horizons (10 minutes) of history -- 76 % after 6.5 minutes is no evidence yet (it alarmed at ~5.5 minutes
    before this rule, with 1 s sampling) -- while the same climb an hour into the series is announced
    at least a minute before it crosses 90 %."""
    early = _alarms(1.0, "cpu_pct", _ramp(0.0), 400.0)
    assert early.size == 0, early[:3]
    late = _alarms(5.0, "cpu_pct", _ramp(3600.0), 3600.0 + 600.0)
    assert late.size and late[0] <= 3600.0 + 600.0 - 60.0, late[:3]
