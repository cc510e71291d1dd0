"""plateau12: a load metric (utilisation, CPU) over its policy threshold on a busy plateau -- its lowest level not
rising beyond noise over the last 1-3 trend windows -- while latency, loss and errors are quiet is no alarm; a
saturating climb, and the same plateau with latency moving, alarm as before (forecast-only engine, default
thresholds, 1/5/10/60 s sampling)."""

from __future__ import annotations

import numpy as np
import pytest

import pfepo.predict.engine as E
from tests.predict.test_load_damping import RATES, T0, _alarms, _quiet

PLATEAU_S = 2400.0  # the plateau after its ramp
AFTER = T0 + 1200.0  # the ramp's top (T0 + 240 s) is a rise for three trend windows, and an alarm there is held 300 s


def _ar_noise(rng: np.random.Generator, t: np.ndarray, tau_s: float = 20.0) -> np.ndarray:
    """Unit-variance noise correlated over ``tau_s`` (an AR(1) sampled at ``t``), as real telemetry wanders."""
    z = np.empty(t.size)
    z[0] = rng.standard_normal()
    for k in range(1, t.size):
        r = np.exp(-(t[k] - t[k - 1]) / tau_s)
        z[k] = r * z[k - 1] + np.sqrt(1 - r * r) * rng.standard_normal()
    return z


def _plateau(t: np.ndarray, seed: int, latency_moving: bool = False) -> dict[str, np.ndarray]:
    """A busy plateau: utilisation 59 -> 94.4 % (x1.6) and CPU 40 -> 60 % (x1.5) over 4 minutes from T0, then flat
    for ``PLATEAU_S``, with noise of 1 point correlated over 20 s on utilisation: it wanders over its 95 % threshold
    for a minute or more now and then (the observed breach of the policy). Latency, loss and errors flat or, with
    ``latency_moving``, latency climbing 40 -> 120 ms (still under its 150 ms threshold) from T0 + 600 s on."""
    rng = np.random.default_rng(seed)
    s = np.clip((t - T0) / 240.0, 0, 1)
    u = 59.0 * (1 + 0.6 * s) + 1.0 * _ar_noise(rng, t)
    c = 40.0 * (1 + 0.5 * s)
    q = _quiet(rng, t.size)
    if latency_moving:
        q["latency_ms"] = q["latency_ms"] * (1 + 2.0 * np.clip((t - T0 - 600.0) / 1200.0, 0, 1))
    return {"utilization_pct": u, "cpu_pct": c * (1 + 0.02 * rng.standard_normal(t.size)), **q}


def _first_after(dt: float, ys: dict[str, np.ndarray], t: np.ndarray, after: float) -> float | None:
    al = [a for a, _ in _alarms(dt, ys, t) if a >= after]
    return al[0] if al else None


@pytest.mark.parametrize("dt", RATES)
def test_a_flat_load_plateau_over_its_threshold_with_a_healthy_service_is_no_alarm(dt, monkeypatch):
    """No alarm from T0 + 1200 s (the ramp's top, three trend windows, one hold later); the old rules
    (``PLATEAU = False``) alarm there on the observed or forecast-level breach of 95 %."""
    t = np.arange(0.0, T0 + 240.0 + PLATEAU_S, dt)
    ys = _plateau(t, 1)
    assert _first_after(dt, ys, t, AFTER) is None, dt
    monkeypatch.setattr(E, "PLATEAU", False)
    old = _first_after(dt, ys, t, AFTER)
    assert old is not None, dt


@pytest.mark.parametrize("dt", RATES)
def test_the_same_plateau_with_latency_moving_alarms_as_before(dt, monkeypatch):
    """Latency climbing (still under its threshold) is a quality metric moving: the load breach is evidence as
    before, the same alarm steps from T0 + 1200 s with and without the rule."""
    t = np.arange(0.0, T0 + 240.0 + PLATEAU_S, dt)
    ys = _plateau(t, 1, latency_moving=True)
    new = [a for a, _ in _alarms(dt, ys, t) if a >= AFTER]
    monkeypatch.setattr(E, "PLATEAU", False)
    assert new and new == [a for a, _ in _alarms(dt, ys, t) if a >= AFTER], (dt, new[:3])


def _saturating(t: np.ndarray, seed: int, metric: str, span_s: float, top: float, base: float) -> dict[str, np.ndarray]:
    """One load metric climbing ``base`` -> ``top`` % over ``span_s`` from T0 (the issue's 10-minute utilisation
    climb to 100 %, its 20-minute CPU climb to 99 %), the other load metric flat, quality metrics flat: no quality
    metric moves before the failure at T0 + ``span_s``."""
    rng = np.random.default_rng(seed)
    s = np.clip((t - T0) / span_s, 0, 1)
    other = "cpu_pct" if metric == "utilization_pct" else "utilization_pct"
    return {metric: np.minimum((base + (top - base) * s) * (1 + 0.03 * rng.standard_normal(t.size)), 100.0),
            other: 45.0 * (1 + 0.03 * rng.standard_normal(t.size)), **_quiet(rng, t.size)}


@pytest.mark.parametrize("dt", RATES)
@pytest.mark.parametrize(("metric", "span_s", "top"), [("utilization_pct", 600.0, 100.0), ("cpu_pct", 1200.0, 99.0)])
def test_a_saturating_climb_alarms_as_before(dt, metric, span_s, top, monkeypatch):
    """A climb to saturation rises: every alarm step is the same with and without the rule, up to two minutes
    after the climb's end (at 60 s sampling the first alarm of the utilisation climb comes only at saturation)."""
    t = np.arange(0.0, T0 + span_s + 120.0, dt)
    ys = _saturating(t, 2, metric, span_s, top, 45.0)
    new = [a for a, _ in _alarms(dt, ys, t)]
    monkeypatch.setattr(E, "PLATEAU", False)
    old = [a for a, _ in _alarms(dt, ys, t)]
    assert new and new == old, (dt, metric, new[:2], old[:2])
