"""Labelled training rows from history: replayed features + "does a failure start within the horizon".

A row (endpoint, t) is positive when a failure event (``up`` 1 -> 0) of that endpoint starts in
(t, t + horizon]; rows while the endpoint is down are dropped (the failure is already known there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pfepo.evaluate.replay import replay
from pfepo.predict.engine import PredictiveEngine
from pfepo.traces.csv import Trace, from_frame


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray  # one id per source trace (for held-out validation)
    window: dict


def labels(ts: np.ndarray, up: np.ndarray, horizon_s: float) -> np.ndarray:
    """(T, E) 1 where a failure of that endpoint starts within (t, t + horizon]."""
    t, e = up.shape
    y = np.zeros((t, e), dtype=np.int8)
    for k in range(e):
        starts = ts[1:][(up[:-1, k] == 1) & (up[1:, k] == 0)]
        for s in starts:
            y[(ts < s) & (ts >= s - horizon_s), k] = 1
    return y


def build_dataset(traces: list, engine_config: dict) -> Dataset:
    xs, ys, gs = [], [], []
    t0, t1, sources = np.inf, -np.inf, []
    for g, tr in enumerate(traces):
        if isinstance(tr, pd.DataFrame):
            tr = from_frame(tr, f"<frame {g}>")
        assert isinstance(tr, Trace)
        eng = PredictiveEngine(**engine_config)
        r = replay(tr, eng)
        y = labels(r.ts, r.up, eng.horizon_s)
        keep = (r.up == 1) & r.present & r.fresh[:, None]  # repeated snapshots add no information
        xs.append(r.x[keep])
        ys.append(y[keep])
        gs.append(np.full(int(keep.sum()), g))
        t0, t1 = min(t0, float(r.ts[0])), max(t1, float(r.ts[-1]))
        sources.append(tr.path)
    return Dataset(
        x=np.concatenate(xs),
        y=np.concatenate(ys).astype(int),
        groups=np.concatenate(gs),
        window={"start": t0, "end": t1, "sources": sources},
    )
