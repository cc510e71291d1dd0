"""load11: the correlated-noise statistics' bookkeeping. The running totals behind the block sums of
``_ar_noise`` stay bounded however long a series runs (they grew without limit, and with them the rounding of
block sums taken as differences of totals), and the factor and its block length are computed once per model
step (twice and three times before). The outputs are unchanged: docs/prediction-log.md load11 compares the
evidence arrays of main and this code on issue-shaped traces (bit-identical)."""

from __future__ import annotations

import numpy as np
import pytest

import pfepo.predict.engine as E
from pfepo.predict.engine import PredictiveEngine


@pytest.mark.parametrize("dt", [1.0, 10.0])
def test_the_running_totals_stay_bounded(dt):
    """2 hours of a metric at ~1,000: every total stays within 2 x the ring's span of values (before: the
    total of every sample, 7e6 at 1 s), and the factor is still a factor."""
    eng = PredictiveEngine()
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 2 * 3600.0, dt)
    y = 1000.0 + 10.0 * rng.standard_normal(t.size)
    for k in range(t.size):
        eng.observe("ep", t[k], {"cpu_pct": y[k], "up": 1})
    eng.snapshot(t[-1])
    i = eng.midx["cpu_pct"]
    bound = 2 * eng.ar_cs.shape[0] * 1100.0
    assert abs(eng.ar_tot[i]) <= bound, eng.ar_tot[i]
    assert np.nanmax(np.abs(eng.ar_cs[:, i])) <= bound
    assert 1.0 <= float(eng._ar_factor(eng.bank.n)[i]) <= E.AR_MAX


def test_the_factor_is_computed_once_per_step(monkeypatch):
    """One call each of ``_ar_factor`` and ``_ar_k`` per model step (the growth rule and ``_ar_noise`` reuse
    them)."""
    calls = {"_ar_factor": 0, "_ar_k": 0}
    for name in calls:
        orig = getattr(PredictiveEngine, name)

        def counted(self, *a, _orig=orig, _name=name, **kw):
            calls[_name] += 1
            return _orig(self, *a, **kw)

        monkeypatch.setattr(PredictiveEngine, name, counted)
    eng = PredictiveEngine()
    rng = np.random.default_rng(1)
    for k in range(600):
        eng.observe("ep", 10.0 * k, {"cpu_pct": 50 + rng.standard_normal(), "latency_ms": 40.0, "up": 1})
    eng.snapshot(6000.0)
    steps = eng.stats["steps"]
    assert calls == {"_ar_factor": steps, "_ar_k": steps}, (calls, steps)
