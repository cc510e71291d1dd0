"""The what-if's predictor replay, cached and extended incrementally.

The predictor part of a what-if (the engine replayed causally over the history, ~85 % of a cold 24 h
run) depends on the edited policy only through the criterion thresholds the engine is built with
(``settings_from_policy``), plus the daemon's horizon, step and model. So the result is kept per
(thresholds, horizon, step, model) and reused by the next what-if whose window starts at most
``slack(hours)`` after the cached replay's start: only the history written since is read and fed to the
same engine object, which carries its whole state between calls. Feeding a step range in one piece or
in several gives the same numbers (the loop is ``pfepo.evaluate.replay.step_through``, the one ``pfepo
evaluate`` runs; ``tests/console/test_whatif_cache.py`` checks it to the bit).

Only whole steps older than ``MARGIN_S`` are kept (the history writer may still add samples to younger
ones); the younger tail of each run is replayed on a copy of the engine and dropped.

Engine order: every endpoint of the config is registered at the start, in config order, so an endpoint
whose first sample comes later does not change the others' numbers; endpoints without a sample since
the replay started are left out of the result, as a replay of the trace would leave them out.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

MARGIN_S = 30.0  # steps younger than this may still receive samples: replayed, never cached
CHUNK_STEPS = 720  # history read and replayed in pieces: progress, and x (T, E, F) bounded in memory


def slack(hours: float) -> float:
    """How much earlier than the asked window a cached replay may have started and still be used."""
    return max(900.0, 0.1 * hours * 3600.0)


@dataclass
class Series:
    """What the decision loop needs of the replay, per step (T) and endpoint (E)."""

    ts: np.ndarray  # (T,)
    endpoints: list[str]
    metrics: list[str]
    values: np.ndarray  # (T, E, M) observed step means, NaN where no sample
    up: np.ndarray  # (T, E) health, carried forward
    prob: np.ndarray  # (T, E) the engine's risk, as ``engine.predict`` gives it
    predicted: np.ndarray  # (T, E, M) forecast mean at the horizon
    anchor: float = 0.0  # where the predictor replay started
    cached_steps: int = 0  # steps taken from the cache (not replayed in this call)


@dataclass
class _Entry:
    anchor: float
    engine: object
    endpoints: list[str]
    index: dict[str, int]
    idx_all: np.ndarray
    done: float  # history before this step boundary is in the arrays below
    prev_up: np.ndarray  # (E,) last health, carried into the next piece
    ts: list = field(default_factory=list)  # per piece: (T,), (T, E, M), (T, E), (T, E), (T, E), (T, E, M)
    values: list = field(default_factory=list)
    up: list = field(default_factory=list)
    present: list = field(default_factory=list)
    prob: list = field(default_factory=list)
    predicted: list = field(default_factory=list)
    used: float = field(default_factory=time.time)

    def steps(self) -> int:
        return sum(a.size for a in self.ts)


Reader = Callable[[float, float], object]  # (start, end) -> Trace or None: the history as the what-if sees it


class PredictorCache:
    """Per-daemon cache of predictor replays (a few keys, least recently used dropped)."""

    def __init__(self, keep: int = 3):
        self.keep = keep
        self._entries: dict[tuple, _Entry] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def series(self, settings, model: Path | None, endpoints: list[str], since: float, until: float,
               read: Reader, progress: Callable[[float, str], None] | None = None, use_cache: bool = True) -> Series:
        """The engine replayed over [since, until) (see the module docstring for what is reused)."""
        key = (tuple(sorted(settings.thresholds.items())), settings.horizon_s, settings.step_s,
               str(model), model.stat().st_mtime_ns if model is not None and model.exists() else 0, tuple(endpoints))
        step = settings.step_s
        with self._lock:
            entry = self._entries.get(key) if use_cache else None
            if entry is not None and not (entry.anchor <= since and since - entry.anchor <= slack((until - since) / 3600)):
                entry = None
            cached = 0 if entry is None else entry.steps()
            if entry is None:
                entry = self._new(settings, model, endpoints, since)
            boundary = math.floor((until - MARGIN_S) / step) * step
            total = max(1.0, (until - entry.done) / step)
            if boundary > entry.done:
                self._feed(entry, entry.done, boundary, read, progress, total, keep=True)
            if use_cache:
                self._entries[key] = entry
                for k in sorted(self._entries, key=lambda k: self._entries[k].used)[: max(0, len(self._entries) - self.keep)]:
                    del self._entries[k]
            entry.used = time.time()
            # the younger tail: on a copy of the engine (its classifier is read-only: shared, not copied)
            eng = copy.deepcopy(entry.engine, {id(entry.engine.classifier): entry.engine.classifier})
            tail = replace(entry, engine=eng, prev_up=entry.prev_up.copy(), ts=[], values=[], up=[], present=[],
                           prob=[], predicted=[])
            if until > entry.done:
                self._feed(tail, entry.done, until, read, progress, total, keep=False)

            def cat(name: str) -> list:
                return getattr(entry, name) + getattr(tail, name)

            if not cat("ts"):
                return Series(np.zeros(0), [], list(eng.metrics), np.zeros((0, 0, eng.m)), np.zeros((0, 0)),
                              np.zeros((0, 0)), np.zeros((0, 0, eng.m)), entry.anchor)
            ts = np.concatenate(cat("ts"))
            first = int(np.searchsorted(ts, math.floor(since / step) * step))
            ts = ts[first:]
            present = np.concatenate(cat("present"))[first:]
            # endpoints with a row in the asked window: a replay of that window's trace knows only those
            keep = np.flatnonzero(present.any(axis=0))

            def window(name: str) -> np.ndarray:
                return np.concatenate(cat(name))[first:][:, keep]

            return Series(ts, [endpoints[i] for i in keep], list(eng.metrics), window("values"), window("up"),
                          window("prob"), window("predicted"), entry.anchor, max(0, cached - first))

    # ------------------------------------------------------------------ internals
    def _new(self, settings, model, endpoints: list[str], since: float) -> _Entry:
        from pfepo.evaluate.harness import make_engine

        eng = make_engine(settings, model)
        idx = eng.ensure(endpoints)
        return _Entry(anchor=since, engine=eng, endpoints=list(endpoints), index={n: i for i, n in enumerate(endpoints)},
                      idx_all=idx, done=since, prev_up=np.ones(len(endpoints)))

    def _feed(self, entry: _Entry, start: float, end: float, read: Reader, progress, total: float, keep: bool) -> None:
        """Read [start, end) and replay it piece by piece; ``start``/``end`` on step boundaries except the
        last (tail) piece."""
        from pfepo.evaluate.replay import step_through

        step = entry.engine.step_s
        eng = entry.engine
        t = start
        while t < end:  # pieces end on step boundaries (a step's samples are averaged in one piece)
            b = min(end, math.floor(t / step) * step + CHUNK_STEPS * step)
            if progress is not None:
                progress((t - entry.done) / step / total if keep else 1.0,
                         f"predictor: {(t - start) / step:.0f} of {(end - start) / step:.0f} steps"
                         + ("" if keep else " (newest, not cached)"))
            trace = read(t, b)
            t = b
            if trace is None or trace.frame.empty:
                continue
            ts, values, present, up = _dense(trace.frame, entry.index, eng.metrics, entry.prev_up)
            xs, br, pr, su, _fr, _ob = step_through(eng, entry.idx_all, ts, values, present, up)
            x, br, su = np.array(xs), np.array(br), np.array(su)
            k, e = ts.size, len(entry.endpoints)
            prob = eng.score_parts(x.reshape(k * e, -1), br.reshape(k * e, -1), su.reshape(k * e))[0].reshape(k, e)
            entry.prev_up = up[-1].copy()
            entry.ts.append(ts)
            entry.values.append(values)
            entry.up.append(up)
            entry.present.append(present)
            entry.prob.append(prob)
            entry.predicted.append(np.array(pr))
        if keep:
            entry.done = end


def _dense(frame, index: dict[str, int], metrics: list[str], prev_up: np.ndarray):
    """``pfepo.evaluate.replay.dense`` with a fixed endpoint order, health carried in from the previous
    piece (``prev_up``; 1 before an endpoint's first row, as there)."""
    ts, step = np.unique(frame["ts"].to_numpy(), return_inverse=True)
    unknown = set(frame["endpoint"]) - set(index)
    if unknown:
        frame = frame[~frame["endpoint"].isin(unknown)]
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
    up[0] = prev_up
    up[1 + step, eidx] = frame["up"].to_numpy()
    idx = np.where(np.isfinite(up), np.arange(t + 1)[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    filled = np.take_along_axis(up, idx, axis=0)
    filled[~np.isfinite(filled)] = 1.0
    return ts, values, present, filled[1:]
