"""The diagnostic look-alike generator: readable traces, annotated events, benign by construction."""

from __future__ import annotations

import json

import numpy as np

from pfepo.traces.csv import read_trace
from pfepo.traces.lookalikes import KINDS, SAMPLING_S, THRESHOLDS, lookalike_trace, write_set


def test_traces_are_readable_and_every_event_is_annotated(tmp_path):
    paths = write_set(tmp_path, [1], per_seed=2)
    assert len(paths) == 2
    for p in paths:
        tr = read_trace(p)
        events = json.loads(p.with_suffix(".events.json").read_text())
        assert events and all(e["endpoint"] in tr.endpoints and e["kind"] in KINDS for e in events)
        assert (tr.frame["up"] == 1).all()


def test_sets_are_broad_and_plateaus_stay_under_their_thresholds():
    """Over a few seeds: every kind and every sampling rate appears; a plateau's peak level (noise aside)
    stays under 0.9 of the utilisation and CPU thresholds (a load that crosses its threshold is a breach, not a look-alike)."""
    kinds, rates = set(), set()
    for seed in (1, 2, 3):
        for n in range(4):
            frame, events = lookalike_trace(seed, n)
            dts = np.diff(np.unique(frame["timestamp"].to_numpy()))
            rates.add(float(np.median(dts)))
            for e in events:
                kinds.add(e["kind"])
                if e["kind"] == "plateau":
                    for k in ("utilization_pct", "cpu_pct"):
                        assert e["level_peak_over_threshold"][k] <= 0.9, (seed, n, e)
                if e["kind"] in ("spike", "spike_cluster"):
                    assert all(5 <= d <= 60 and 2 <= x <= 5 for _, d, x in e["spikes"])
    assert kinds == set(KINDS) and rates == set(SAMPLING_S)
    assert set(THRESHOLDS) == {"latency_ms", "loss_pct", "utilization_pct", "cpu_pct", "error_rate_pct"}
