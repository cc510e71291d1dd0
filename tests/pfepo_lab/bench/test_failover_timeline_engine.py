"""The full bench timeline against the real predictive engine (no lab): with the bench's ``predict.*``
settings, the forecast at the horizon of the uplink's latency as the relay sets it (plus a little noise)
crosses the shared 150 ms threshold long before the latency itself does, and the benign spike on ap is
never forecast to cross it. This is the premise of the full run (predictive can act on the forecast,
reactive on the observation); a change of the engine or of the timeline that breaks it fails here, before
a 40-minute bench run would show it. (In the lab the probes also carry the control path's delay, tens of
ms on a loaded machine, so the observed crossing comes earlier there: see benchmarks/results/failover.md.)"""

from __future__ import annotations

import random

from pfepo.predict.engine import PredictiveEngine
from pfepo_lab.bench.failover import Scenario

THRESHOLD_MS = 150.0  # the shipped default policy's and the reactive baseline's latency threshold


def _first_forecast_breach(sc: Scenario, seed: int) -> tuple[float | None, bool]:
    eng = PredictiveEngine(**sc.predict, model_path=None)
    rnd = random.Random(seed)
    first, benign = None, False
    t0 = 1_000_000.0
    for k in range(int(sc.failure_at_s / 0.5)):  # probes every 0.5 s, as in the lab
        t = k * 0.5
        eu = 1.0 + 2.0 * rnd.random()
        ap = 1.0 + 2.0 * rnd.random() + (sc.benign_ms if sc.benign_at_s <= t < sc.benign_at_s + sc.benign_s else 0.0)
        loss = 0.0
        if t >= sc.warmup_s:
            frac = (t - sc.warmup_s) / sc.ramp_s
            eu += sc.ramp_ms * frac
            loss = max(0.0, sc.loss_pct * (frac - (1 - sc.loss_tail)) / sc.loss_tail)
        eng.observe("uplink:eu", t0 + t, {"latency_ms": eu, "loss_pct": loss})
        eng.observe("uplink:ap", t0 + t, {"latency_ms": ap, "loss_pct": 0.0})
        if k % 4:
            continue  # the daemon's decision loop: about every 2 s is enough here
        preds = eng.predict(t0 + t)
        benign |= preds["uplink:ap"].predicted.get("latency_ms", 0.0) > THRESHOLD_MS
        if first is None and preds["uplink:eu"].predicted.get("latency_ms", 0.0) > THRESHOLD_MS:
            first = t
    return first, benign


def test_the_full_ramp_is_forecast_to_breach_well_before_it_is_observed():
    sc = Scenario()
    observed = sc.warmup_s + sc.ramp_s * THRESHOLD_MS / sc.ramp_ms
    first, benign = _first_forecast_breach(sc, seed=1)
    assert first is not None and sc.warmup_s < first < observed - 30.0, (first, observed)
    assert not benign
