"""Root-cause report: the signal that moved first is named with its lead; proposals stay in bounds."""

from __future__ import annotations

import numpy as np

from pfepo.predict.rootcause import propose_adjustment, root_cause
from pfepo.traces.csv import read_trace
from pfepo.traces.generate import Sizes, generate


def test_latency_creep_is_named_first_with_a_plausible_lead(tmp_path):
    p = generate(tmp_path, 4, scenarios=("latency_creep",), sizes=Sizes(endpoints=2, failing=1, failure_hours=3))[0]
    tr = read_trace(p)
    f = tr.frame
    ep = "latency-creep-ep0"
    g = f[f.endpoint == ep]
    fail = float(g["ts"].to_numpy()[np.flatnonzero(np.diff(g["up"].to_numpy()) < 0)[0] + 1])
    rep = root_cause(f, ep, fail)
    assert rep["precursor"] and rep["first_signal"]["metric"] == "latency_ms"
    assert rep["first_signal"]["direction"] == "up" and 60 <= rep["lead_s"] <= 1800
    assert all(s["lead_s"] > 0 for s in rep["signals"])
    # the predictor's risk stayed low: propose an earlier (lower) act threshold, within bounds
    rts = g["ts"].to_numpy()
    risk = np.where(rts >= fail - 120, 0.3, 0.05)
    prop = propose_adjustment(rep, rts, risk, act=0.4)
    assert prop and prop["kind"] == "lower_act" and 0.2 <= prop["to"] < 0.4
    assert propose_adjustment(rep, rts, np.where(rts >= fail - 600, 0.9, 0.0), act=0.4) is None


def test_no_precursor_gives_no_signal_and_no_proposal():
    ts = np.arange(0.0, 7200.0, 10.0)
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame({"ts": ts, "endpoint": "a", "latency_ms": 50 + rng.normal(0, 2, ts.size)})
    rep = root_cause(frame, "a", 7000.0)
    assert rep["precursor"] is False and rep["first_signal"] is None
    assert propose_adjustment(rep, ts, np.zeros(ts.size), act=0.4) is None
