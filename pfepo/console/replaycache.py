"""The what-if's predictor replay, cached and extended incrementally.

A cold 24 h what-if spends ~90 % of its time on the predictor: reading the history (~15 %) and
replaying the engine over it (~75 %, most of it in the periodic ARIMA refits). Two levels of cache:

- a **family** (step, endpoints, engine metrics, start of the replay): what does not depend on the
  policy -- the history as per-step arrays, read once and then only the newly written steps, and the
  ARIMA fits, memoised by their exact input (the series window and the start parameters): a fit is a
  pure function of those, so a replay with other thresholds gets the same fit for the same input;
- an **entry** per criterion thresholds (+ horizon and model) in a family: the engine object with its
  whole state and the risk and forecasts it gave at every step. An edited policy with the same
  thresholds (actions, risk weights, selectors...) reuses it as is; new thresholds replay the engine
  again over the family's arrays, with the fits from the memo.

The next what-if uses a family whose replay started at most ``slack(hours)`` before its window (the
engine then had that much more history to warm up on, as the daemon's own engine always has); the
newly written history is read once and fed to the same engine objects, which carry their state between
calls. Feeding steps in one piece or several gives the same numbers (the loop is
``pfepo.evaluate.replay.step_through``, the one ``pfepo evaluate`` runs);
``tests/console/test_whatif_cache.py`` checks that to the bit. Only whole steps older than
``MARGIN_S`` are kept (the history writer may still add samples to younger ones): the younger tail of
each run is replayed on a copy of the engine and dropped.

Endpoint order: every endpoint of the config is registered with the engine at the start, in config
order, so an endpoint whose first sample comes later changes no other endpoint's numbers; endpoints
without a row in the asked window are left out of the result, as a replay of that window's trace
leaves them out.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MARGIN_S = 30.0  # steps younger than this may still receive samples: replayed, never cached
CHUNK_STEPS = 720  # history read and engine fed in pieces: progress, and x (T, E, F) bounded in memory


MAX_SPAN_S = 1.1 * 24 * 3600  # a family serves windows inside [anchor, anchor + this]: 24 h + 10 %


def usable(anchor: float, since: float, until: float) -> bool:
    """A replay that started at ``anchor`` serves the window [since, until): it started no later than the
    window and is not older than ``MAX_SPAN_S`` (which bounds the arrays kept)."""
    return anchor <= since and until - anchor <= MAX_SPAN_S


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
    cached_steps: int = 0  # steps whose engine output came from the cache (not replayed in this call)
    read_steps: int = 0  # steps read from the history store in this call


@dataclass
class _Steps:
    """Per-step arrays, appended piece by piece."""

    ts: list = field(default_factory=list)
    values: list = field(default_factory=list)
    present: list = field(default_factory=list)
    up: list = field(default_factory=list)

    def n(self) -> int:
        return sum(a.size for a in self.ts)

    def cat(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name))


@dataclass
class _Family:
    anchor: float
    step_s: float
    index: dict[str, int]
    metrics: list[str]
    done: float  # the history before this time is in ``steps`` (a step boundary after the first piece)
    prev_up: np.ndarray  # (E,) last health, carried into the next piece
    steps: _Steps = field(default_factory=_Steps)
    fits: dict = field(default_factory=dict)  # ARIMA fit memo: exact input -> result
    entries: dict = field(default_factory=dict)  # engine key -> _Entry
    used: float = field(default_factory=time.time)


@dataclass
class _Entry:
    engine: object
    idx_all: np.ndarray
    pos: int = 0  # family steps fed to the engine
    prob: list = field(default_factory=list)
    predicted: list = field(default_factory=list)


Reader = Callable[[float, float], object]  # (start, end) -> Trace or None: the history as the what-if sees it


class PredictorCache:
    """Per-daemon cache of predictor replays: a few families, a few engines in each (least recently
    used dropped)."""

    def __init__(self, families: int = 2, engines: int = 3):
        self.max_families, self.max_engines = families, engines
        self._families: dict[tuple, _Family] = {}
        self._lock = threading.Lock()
        self.busy = ""  # what the holder of the lock is doing (shown to a run that waits)

    def series(self, settings, model: Path | None, endpoints: list[str], since: float, until: float,
               read: Reader, progress: Callable[[float, str], None] | None = None, use_cache: bool = True) -> Series:
        """The engine replayed over [since, until) (see the module docstring for what is reused)."""
        from pfepo.evaluate.harness import make_engine

        step = settings.step_s
        metrics = make_engine(settings, None).metrics  # no model load: only the metric list
        fkey = (step, tuple(endpoints), tuple(metrics))
        ekey = (tuple(sorted(settings.thresholds.items())), settings.horizon_s, str(model),
                model.stat().st_mtime_ns if model is not None and model.exists() else 0)
        outer = progress or (lambda p, text: None)

        def say(p: float, text: str) -> None:
            self.busy = text
            outer(p, text)

        while not self._lock.acquire(timeout=0.5):  # a warm-up (or another run) holds the cache
            outer(0.0, f"waiting for the cache ({self.busy or 'busy'})")
        try:
            return self._series(settings, model, endpoints, since, until, read, say, use_cache, step, metrics, fkey,
                                ekey)
        finally:
            self.busy = ""
            self._lock.release()

    def _series(self, settings, model, endpoints, since, until, read, say, use_cache, step, metrics, fkey,
                ekey) -> Series:
        fam = self._families.get(fkey) if use_cache else None
        if fam is not None and not usable(fam.anchor, since, until):
            fam = None
        if fam is None:
            fam = _Family(since, step, {n: i for i, n in enumerate(endpoints)}, list(metrics), since,
                          np.ones(len(endpoints)))
        fam.used = time.time()
        if use_cache:
            self._families[fkey] = fam
            _trim(self._families, self.max_families)
        n0 = fam.steps.n()
        boundary = math.floor((until - MARGIN_S) / step) * step
        if boundary > fam.done:
            say(0.0, "reading history")
            _read_into(fam, fam.steps, fam.done, boundary, read, keep=True)
        entry = fam.entries.pop(ekey, None)
        if entry is None:
            eng = _engine(settings, model, [e for k, e in fam.entries.items() if k[1:] == ekey[1:]])
            entry = _Entry(eng, eng.ensure(endpoints))
        fam.entries[ekey] = entry  # most recently used last
        _trim(fam.entries, self.max_engines, by_order=True)
        cached = entry.pos
        with _memoised_fits(fam.fits):
            _feed(entry, fam.steps, fam.metrics, say)
            # the younger tail: read now, replayed on a copy of the engine (its classifier is read-only:
            # shared, not copied), dropped after this call
            tail_steps = _Steps()
            if until > fam.done:
                tail_fam = _Family(fam.anchor, step, fam.index, fam.metrics, fam.done, fam.prev_up.copy())
                _read_into(tail_fam, tail_steps, fam.done, until, read, keep=False)
            eng = copy.deepcopy(entry.engine, {id(entry.engine.classifier): entry.engine.classifier})
            tail = _Entry(eng, entry.idx_all)
            _feed(tail, tail_steps, fam.metrics, say)
        if fam.steps.n() + tail_steps.n() == 0:
            m = len(fam.metrics)
            return Series(np.zeros(0), [], fam.metrics, np.zeros((0, 0, m)), np.zeros((0, 0)), np.zeros((0, 0)),
                          np.zeros((0, 0, m)), fam.anchor)

        def cat(name: str, owner_a, owner_b) -> np.ndarray:
            return np.concatenate(list(getattr(owner_a, name)) + list(getattr(owner_b, name)))

        ts = cat("ts", fam.steps, tail_steps)
        first = int(np.searchsorted(ts, math.floor(since / step) * step))
        present = cat("present", fam.steps, tail_steps)[first:]
        keep = np.flatnonzero(present.any(axis=0))  # endpoints with a row in the asked window

        def window(a: np.ndarray) -> np.ndarray:
            return a[first:][:, keep]

        return Series(ts[first:], [endpoints[i] for i in keep], list(fam.metrics),
                      window(cat("values", fam.steps, tail_steps)), window(cat("up", fam.steps, tail_steps)),
                      window(cat("prob", entry, tail)), window(cat("predicted", entry, tail)), fam.anchor,
                      max(0, cached - first), fam.steps.n() - n0 + tail_steps.n())


def _engine(settings, model: Path | None, siblings: list[_Entry]):
    """A fresh engine; the classifier (read-only once loaded) is shared with an engine of the same model
    and horizon instead of being loaded from disk again."""
    from pfepo.evaluate.harness import make_engine

    loaded = next((s.engine.classifier for s in siblings if s.engine.classifier is not None), None)
    if loaded is None:
        return make_engine(settings, model)
    eng = make_engine(settings, None)
    eng.classifier, eng.model_error = loaded, None
    return eng


def _trim(d: dict, keep: int, by_order: bool = False) -> None:
    order = list(d) if by_order else sorted(d, key=lambda k: d[k].used)
    for k in order[: max(0, len(d) - keep)]:
        del d[k]


def _read_into(fam: _Family, steps: _Steps, start: float, end: float, read: Reader, keep: bool) -> None:
    """Read [start, end) in pieces ending on step boundaries (a step's samples are averaged in one piece)."""
    steps_s = fam.step_s
    t = start
    while t < end:
        b = min(end, math.floor(t / steps_s) * steps_s + CHUNK_STEPS * steps_s)
        trace = read(t, b)
        t = b
        if trace is None or trace.frame.empty:
            continue
        ts, values, present, up = _dense(trace.frame, fam.index, fam.metrics, fam.prev_up)
        fam.prev_up = up[-1].copy()
        steps.ts.append(ts)
        steps.values.append(values)
        steps.present.append(present)
        steps.up.append(up)
    if keep:
        fam.done = end


def _feed(entry: _Entry, steps: _Steps, metrics: list[str], say) -> None:
    """Feed the steps the engine has not seen, in pieces; record its risk and forecasts."""
    from pfepo.evaluate.replay import step_through

    n = steps.n()
    if entry.pos >= n:
        return
    ts, values, present, up = (steps.cat(k) for k in ("ts", "values", "present", "up"))
    eng = entry.engine
    e = entry.idx_all.size
    for a in range(entry.pos, n, CHUNK_STEPS):
        b = min(n, a + CHUNK_STEPS)
        say((a - entry.pos) / max(1, n - entry.pos), f"predictor: step {a - entry.pos} of {n - entry.pos}")
        xs, br, pr, su, _fr, _ob = step_through(eng, entry.idx_all, ts[a:b], values[a:b], present[a:b], up[a:b])
        k = b - a
        prob = _score(eng, np.array(xs).reshape(k * e, -1), np.array(br).reshape(k * e, -1),
                      np.array(su).reshape(k * e)).reshape(k, e)
        entry.prob.append(prob)
        entry.predicted.append(np.array(pr))
    entry.pos = n


def _score(eng, x: np.ndarray, breach: np.ndarray, up: np.ndarray) -> np.ndarray:
    """``eng.score_parts(x, breach, up)[0]``, with the classifier asked only about the rows where its
    answer can matter. ``combine`` is monotone in the classifier's probability (its documented contract),
    so if it gives 0 for no forecast evidence at both ends, c = 0 and c = 1, it gives 0 for every c; rows
    without positive evidence then score 0 (1 where the endpoint is down, as ``score_parts`` has it). Most
    rows of a history have no evidence, and the classifier was half the cost of a replay."""
    if eng.classifier is not None:
        try:
            from pfepo.predict.core import combine

            ends = combine(np.zeros(2), np.array([0.0, 1.0]), clear=eng.clear, raise_min=eng.raise_min)
            zero_ok = bool(np.all(ends == 0.0))
        except (TypeError, ValueError, AttributeError):
            zero_ok = False
        if zero_ok:
            with np.errstate(invalid="ignore"):
                hot = np.flatnonzero(np.nan_to_num(np.where(breach > 0, breach, 0.0)).max(axis=1, initial=0.0) > 0)
            risk = np.where(up == 0, 1.0, 0.0)
            if hot.size:
                risk[hot] = eng.score_parts(x[hot], breach[hot], up[hot])[0]
            return risk
    return eng.score_parts(x, breach, up)[0]


_fit_lock = threading.Lock()


@contextmanager
def _memoised_fits(memo: dict):
    """While the block runs, the engine's ARIMA fits made on *this* thread are looked up in ``memo`` by
    their exact input (window bytes, start parameters) first; every other thread (the daemon's own
    engine) calls the real fit as before. ``fit_arima`` is a pure function of its input, so a hit is the
    number the fit would have given. (A hook in ``pfepo.predict.engine`` -- a ``fit`` callable the engine
    takes -- would replace this patch of its module global.)"""
    import pfepo.predict.engine as em

    me = threading.get_ident()
    with _fit_lock:
        orig = em.fit_arima

        def fit(window, start=None):
            if threading.get_ident() != me:
                return orig(window, start)
            key = (np.asarray(window, dtype=float).tobytes(),
                   None if start is None else tuple(float(v) for v in start))
            if key not in memo:
                memo[key] = orig(window, start)
            return memo[key]

        em.fit_arima = fit
        try:
            yield
        finally:
            em.fit_arima = orig


def _dense(frame, index: dict[str, int], metrics: list[str], prev_up: np.ndarray):
    """``pfepo.evaluate.replay.dense`` with a fixed endpoint order, health carried in from the previous
    piece (``prev_up``; 1 before an endpoint's first row, as there)."""
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
    up[0] = prev_up
    up[1 + step, eidx] = frame["up"].to_numpy()
    idx = np.where(np.isfinite(up), np.arange(t + 1)[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    filled = np.take_along_axis(up, idx, axis=0)
    filled[~np.isfinite(filled)] = 1.0
    return ts, values, present, filled[1:]
