"""Replay a trace causally through a PredictiveEngine on a simulated clock.

At each distinct timestamp t of the trace: the rows stamped t are observed, the engine is advanced to
``now = t`` and its snapshot (features, forecasts) is recorded. Nothing at t can see rows after t.
Scoring the recorded feature rows afterwards in one batched classifier call gives exactly the numbers
``predict(t)`` would have given at each step (the classifier is a pure function of the feature row),
at a fraction of the per-call overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pfepo.predict.engine import PredictiveEngine
from pfepo.traces.csv import Trace


@dataclass
class Replay:
    ts: np.ndarray  # (T,) distinct timestamps
    endpoints: list[str]
    metrics: list[str]
    values: np.ndarray  # (T, E, M) observed values (NaN = missing/no row)
    present: np.ndarray  # (T, E) endpoint had a row at t
    up: np.ndarray  # (T, E) health (carried forward; 1 where no row yet)
    x: np.ndarray  # (T, E, F) features at t
    breach: np.ndarray  # (T, E, M)
    predicted: np.ndarray  # (T, E, M)
    snap_up: np.ndarray  # (T, E) health as the engine saw it
    fresh: np.ndarray  # (T,) a model step closed at t (else the snapshot repeats the previous one)
    observed: np.ndarray | None = None  # (T, E) a breach under way (observed for LEVEL_S) at t

    def probabilities(self, engine: PredictiveEngine) -> np.ndarray:
        """(T, E) risk at every step, as ``engine.predict`` would give it."""
        return self.parts(engine)[0]

    def parts(self, engine: PredictiveEngine) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(T, E) risk, forecast evidence and classifier probability (None without a classifier)."""
        t, e, f = self.x.shape
        risk, fc, c = engine.score_parts(self.x.reshape(t * e, f), self.breach.reshape(t * e, -1),
                                         self.snap_up.reshape(t * e))
        return risk.reshape(t, e), fc.reshape(t, e), None if c is None else c.reshape(t, e)


def dense(trace: Trace, metrics: list[str]) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Trace rows -> (ts, endpoints, values (T,E,M), present (T,E), up (T,E) carried forward)."""
    endpoints = trace.endpoints
    ts, values, present, up = dense_frame(trace.frame, {n: i for i, n in enumerate(endpoints)}, metrics)
    return ts, endpoints, values, present, up


def dense_frame(frame, index: dict[str, int], metrics: list[str],
                prev_up: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the endpoints in ``index`` (name -> column) -> (ts, values (T,E,M), present (T,E), up (T,E)).

    Health is carried forward between an endpoint's rows; before its first row it is ``prev_up`` (the
    state carried in from an earlier piece of the same history, the what-if cache's case), else 1."""
    frame = frame[frame["endpoint"].isin(list(index))]
    ts, step = np.unique(frame["ts"].to_numpy(), return_inverse=True)
    eidx = frame["endpoint"].map(index).to_numpy()
    t, e = ts.size, len(index)
    values = np.full((t, e, len(metrics)), np.nan)
    for j, m in enumerate(metrics):
        if m in frame.columns:
            values[step, eidx, j] = frame[m].to_numpy()
    present = np.zeros((t, e), dtype=bool)
    present[step, eidx] = True
    up = np.full((t + 1, e), np.nan)
    if prev_up is not None:
        up[0] = prev_up
    up[1 + step, eidx] = frame["up"].to_numpy()
    idx = np.where(np.isfinite(up), np.arange(t + 1)[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    filled = np.take_along_axis(up, idx, axis=0)
    filled[~np.isfinite(filled)] = 1.0
    return ts, values, present, filled[1:]


def replay(trace: Trace, engine: PredictiveEngine, on_step=None) -> Replay:
    ts, endpoints, values, present, up = dense(trace, engine.metrics)
    idx_all = engine.ensure(endpoints)
    t, e = present.shape
    xs, br, pr, su, fr, ob = step_through(engine, idx_all, ts, values, present, up, on_step)
    return Replay(
        ts=ts,
        endpoints=endpoints,
        metrics=list(engine.metrics),
        values=values,
        present=present,
        up=up,
        x=np.array(xs),
        breach=np.array(br),
        predicted=np.array(pr),
        snap_up=np.array(su),
        fresh=np.array(fr, dtype=bool),
        observed=np.array(ob, dtype=bool).reshape(t, e),
    )


def step_through(engine: PredictiveEngine, idx_all: np.ndarray, ts: np.ndarray, values: np.ndarray,
                 present: np.ndarray, up: np.ndarray, on_step=None) -> tuple[list, list, list, list, list, list]:
    """The causal loop of ``replay``: observe each step's rows, advance, record the snapshot. Lists of
    per-step x, breach, predicted, snapshot health, fresh flag, observed. Also fed chunk by chunk (the
    console's what-if cache): the engine carries everything between calls. ``on_step(k, snapshot)``, if
    given, is called after each step's snapshot."""
    xs, br, pr, su, fr, ob = [], [], [], [], [], []
    for k in range(ts.size):
        rows = np.flatnonzero(present[k])
        before = engine.stats["steps"]
        engine.observe_arrays(float(ts[k]), idx_all[rows], values[k, rows], up[k, rows])
        s = engine.snapshot(float(ts[k]))
        fr.append(engine.stats["steps"] != before)
        xs.append(s.x[idx_all])
        br.append(s.breach[idx_all])
        pr.append(s.predicted[idx_all])
        su.append(s.up[idx_all])
        ob.append(s.observed[idx_all])
        if on_step is not None:
            on_step(k, s)
    return xs, br, pr, su, fr, ob
