"""The what-if's predictor replay, cached and extended incrementally.

A cold 24 h what-if spends ~90 % of its time on the predictor: reading the history (~15 %) and
replaying the engine over it (~75 %, most of it in the periodic ARIMA refits). Two levels of cache:

- a **family** (step, endpoints, engine metrics, horizon, model, the daemon's other engine settings,
  start of the replay): what does not depend on the policy -- the history as per-step arrays, read once
  and then only the newly written steps; the ARIMA fits, memoised by their exact input (the series window
  and the start parameters: a fit is a pure function of those) and given to every engine of the family
  as ``PredictiveEngine(fit=...)``; and the **recorder**: the engine with the thresholds of the family's
  first run, fed every step, whose ``tap`` records a **tape** of the threshold-free state that the
  engine's evidence step (``PredictiveEngine._judge``) reads -- per model step and series the forecast
  bank (level, differences, drift, innovation variance; parameters as the refits set them), the anomaly
  core's deviation and frozen noise scales, what the forecasts were fed -- plus, per replay step, the
  features of rows near a threshold (``_Recorder.snapshot``);
- an **entry** per criterion thresholds: for the recorder's own thresholds the recorder itself; for
  others a ``_Judged`` entry: only ``_judge`` (the engine's own evidence rules) runs per recorded step,
  on a shell engine whose bank and core are the recorded ones, with the breach probabilities of a whole
  piece computed at once (``ForecastBank``'s maths over flattened arrays), the one threshold-dependent
  feature state (``persist``) beside it; rows with evidence are scored by the classifier with their
  recorded features, the threshold-dependent ones (``rel_thr``, ``persist``, ``breach``, ``max_breach``)
  recomputed. Rows without evidence score 0 (1 when down) with no classifier call, as ``_score`` proves.
  When the tape cannot serve the thresholds -- a row with evidence whose features were not kept (far
  below the recorded thresholds), a series gaining or losing its threshold, or an engine whose evidence
  step reads something else -- the entry is a full engine replayed over the family's arrays (with the
  fit memo), as before. An edited policy with the same thresholds (actions, risk weights, selectors...)
  reuses its entry as is.

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
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("pfepo.console")
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
    recorder: _Entry | None = None  # the full engine (thresholds of the first run) that records the tape
    tape: list = field(default_factory=list)  # _Chunk per piece the recorder was fed
    entries: dict = field(default_factory=dict)  # thresholds key -> _Judged or _Entry (full replay)
    used: float = field(default_factory=time.time)


@dataclass
class _Entry:
    """A full engine fed the family's steps, its risk and forecasts per step."""

    engine: object
    idx_all: np.ndarray
    pos: int = 0  # family steps fed to the engine
    prob: list = field(default_factory=list)
    predicted: list = field(default_factory=list)
    full: bool = True
    key: tuple = ()  # the thresholds (the recorder's)


Reader = Callable[[float, float], object]  # (start, end) -> Trace or None: the history as the what-if sees it


class PredictorCache:
    """Per-daemon cache of predictor replays: a few families, a few threshold sets in each (least
    recently used dropped)."""

    def __init__(self, families: int = 2, engines: int = 4):
        self.max_families, self.max_engines = families, engines
        self._families: dict[tuple, _Family] = {}
        self._lock = threading.Lock()
        self.busy = ""  # what the holder of the lock is doing (shown to a run that waits)
        self.last_path = ""  # how the last series was made: "recorded", "judged", "full" (benchmark, tests)

    def series(self, settings, model: Path | None, endpoints: list[str], since: float, until: float,
               read: Reader, progress: Callable[[float, str], None] | None = None, use_cache: bool = True,
               engine_kw: dict | None = None) -> Series:
        """The engine replayed over [since, until) (see the module docstring for what is reused).
        ``engine_kw``: further ``PredictiveEngine`` arguments (the daemon's ``predict.*`` settings)."""
        kw = dict(engine_kw or {})
        step = settings.step_s
        metrics = make_engine(settings, None, kw).metrics  # no model load: only the metric list
        fkey = (step, tuple(endpoints), tuple(metrics), settings.horizon_s, str(model),
                model.stat().st_mtime_ns if model is not None and model.exists() else 0, tuple(sorted(kw.items())))
        ekey = tuple(sorted(settings.thresholds.items()))
        outer = progress or (lambda p, text: None)

        def say(p: float, text: str) -> None:
            self.busy = text
            outer(p, text)

        while not self._lock.acquire(timeout=0.5):  # a warm-up (or another run) holds the cache
            outer(0.0, f"waiting for the cache ({self.busy or 'busy'})")
        try:
            return self._series(settings, model, endpoints, since, until, read, say, use_cache, step, metrics, fkey,
                                ekey, kw)
        finally:
            self.busy = ""
            self._lock.release()

    def tape_bytes(self) -> int:
        """Memory held by the families' tapes (the threshold-free state of every recorded step)."""
        return sum(c.nbytes() for f in self._families.values() for c in f.tape)

    def _series(self, settings, model, endpoints, since, until, read, say, use_cache, step, metrics, fkey,
                ekey, kw) -> Series:
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
        if fam.recorder is None:
            eng = make_engine(settings, model, kw, _memo_fit(fam.fits))
            idx = eng.ensure(endpoints)
            eng.tap = _Recorder(eng)
            fam.recorder = _Entry(eng, idx, key=ekey)
        rec = fam.recorder
        base = rec.key == ekey
        entry = None if base else fam.entries.pop(ekey, None)
        if entry is None and not base:
            entry = _judged(settings, model, kw, rec, fam) or _full(settings, model, kw, rec, fam)
        if entry is not None:
            fam.entries[ekey] = entry  # most recently used last
            _trim(fam.entries, self.max_engines, by_order=True)
        cached = (rec if base else entry).pos
        _feed(rec, fam.steps, fam.metrics, say, fam.tape)
        if entry is not None:
            entry = self._follow(fam, ekey, entry, settings, model, kw, say)
        self.last_path = "recorded"
        # the younger tail: read now, replayed on copies (classifiers are read-only: shared), dropped after
        tail_steps = _Steps()
        if until > fam.done:
            tail_fam = _Family(fam.anchor, step, fam.index, fam.metrics, fam.done, fam.prev_up.copy())
            _read_into(tail_fam, tail_steps, fam.done, until, read, keep=False)
        rec_t = _copy_entry(rec)
        tail_tape: list = []
        _feed(rec_t, tail_steps, fam.metrics, say, tail_tape)
        own, own_t = rec, rec_t
        if entry is not None:
            own, own_t = entry, _copy_entry(entry)
            if entry.full:
                _feed(own_t, tail_steps, fam.metrics, say)
            else:
                try:
                    own_t.follow(tail_tape, say)
                except _NoTape:
                    fam.entries.pop(ekey, None)
                    own = self._follow(fam, ekey, _NoTapeEntry(), settings, model, kw, say)
                    own_t = _copy_entry(own)
                    _feed(own_t, tail_steps, fam.metrics, say)
            self.last_path = "full" if own.full else "judged"
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
                      window(cat("prob", own, own_t)), window(cat("predicted", rec, rec_t)), fam.anchor,
                      max(0, cached - first), fam.steps.n() - n0 + tail_steps.n())

    def _follow(self, fam: _Family, ekey, entry, settings, model, kw, say):
        """Bring ``entry`` up to the family's steps: a full engine is fed them; a judged one follows the
        tape, and becomes a full replay if the tape cannot serve it (a row it would score has no recorded
        features, or the engine's evidence step reads something the tape does not hold)."""
        if entry.full:
            _feed(entry, fam.steps, fam.metrics, say)
            return entry
        try:
            entry.follow(fam.tape, say)
            return entry
        except (_NoTape, AttributeError, TypeError, IndexError) as exc:
            # AttributeError/TypeError: the engine's evidence step reads something the shell lacks (the
            # engine changed): correct numbers first, the speed-up is lost (the benchmark shows it)
            log.info("what-if: thresholds %s replayed in full (%s)", dict(ekey), exc)
            full = _full(settings, model, kw, fam.recorder, fam)
            fam.entries[ekey] = full
            _feed(full, fam.steps, fam.metrics, say)
            return full


def make_engine(settings, model: Path | None, engine_kw: dict | None = None, fit=None):
    """``pfepo evaluate``'s engine (harness settings: horizon, step, thresholds) with the daemon's other
    ``predict.*`` arguments (``engine_kw``) and, for replays, a memo of the ARIMA fits (``fit``)."""
    from pfepo.predict.engine import PredictiveEngine

    return PredictiveEngine(horizon_s=settings.horizon_s, thresholds=settings.thresholds, model_path=model,
                            step_s=settings.step_s, fit=fit, **(engine_kw or {}))


def _memo_fit(memo: dict):
    """``fit_arima`` looked up by its exact input (window bytes, start parameters) first: a fit is a pure
    function of them, so a hit is the number the fit would have given. Engines of one family share it."""
    from pfepo.predict.forecast import fit_arima

    def fit(window, start=None):
        key = (np.asarray(window, dtype=float).tobytes(), None if start is None else tuple(float(v) for v in start))
        if key not in memo:
            memo[key] = fit_arima(window, start)
        return memo[key]

    return fit


def _copy_entry(entry):
    """A copy to run the younger tail on, with no steps (the classifier, read-only, is shared)."""
    if not entry.full:
        return entry.copy()
    eng = entry.engine
    eng = copy.deepcopy(eng, {id(eng.classifier): eng.classifier} if eng.classifier is not None else {})
    return _Entry(eng, entry.idx_all, key=entry.key)


class _NoTapeEntry:
    """Stands for a judged entry the tape could not serve (``_follow`` replays it in full)."""

    full = False

    def follow(self, tape, say) -> None:
        raise _NoTape("the younger tail has a row with evidence and no recorded features")


def _full(settings, model, kw, rec: _Entry, fam: _Family) -> _Entry:
    eng = make_engine(settings, None, kw, _memo_fit(fam.fits))
    if rec.engine.classifier is not None:  # loaded once per family
        eng.classifier, eng.model_error = rec.engine.classifier, None
    elif model is not None:
        eng.load_model(model)
    return _Entry(eng, eng.ensure(list(fam.index)))


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


def _feed(entry: _Entry, steps: _Steps, metrics: list[str], say, tape: list | None = None) -> None:
    """Feed the steps the engine has not seen, in pieces; record its risk and forecasts (and, for the
    family's recorder, one tape ``_Chunk`` per piece into ``tape``)."""
    from pfepo.evaluate.replay import step_through

    n = steps.n()
    if entry.pos >= n:
        return
    ts, values, present, up = (steps.cat(k) for k in ("ts", "values", "present", "up"))
    eng = entry.engine
    e = entry.idx_all.size
    rec = eng.tap if tape is not None else None
    for a in range(entry.pos, n, CHUNK_STEPS):
        b = min(n, a + CHUNK_STEPS)
        say((a - entry.pos) / max(1, n - entry.pos), f"predictor: step {a - entry.pos} of {n - entry.pos}")
        if rec is not None:
            rec.begin(entry.idx_all)
        xs, br, pr, su, _fr, _ob = step_through(eng, entry.idx_all, ts[a:b], values[a:b], present[a:b], up[a:b],
                                                rec.snapshot if rec is not None else None)
        k = b - a
        prob = _score(eng, np.array(xs).reshape(k * e, -1), np.array(br).reshape(k * e, -1),
                      np.array(su).reshape(k * e)).reshape(k, e)
        entry.prob.append(prob)
        entry.predicted.append(np.array(pr))
        if rec is not None:
            tape.append(rec.end(np.array(su)))
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


# --- threshold edits: the evidence step alone, over the recorder's tape ---------------------------------
WARM = 0.5  # features are kept for rows whose level or forecast came within this share of a threshold


@dataclass
class _Packed:
    """A (C, N) array of one piece kept as its first row plus the columns that change in it: a series
    never sampled, or flags that hold, cost one value per piece. Compared bit for bit (NaN, -0.0)."""

    first: np.ndarray  # (N,)
    cols: np.ndarray  # (k,) the columns that change
    data: np.ndarray  # (C, k)

    @classmethod
    def of(cls, a: np.ndarray) -> _Packed:
        if a.shape[0] == 0:
            return cls(np.zeros(a.shape[1], a.dtype), np.zeros(0, dtype=np.int64), a[:, :0])
        bits = a.view(np.uint64) if a.dtype == np.float64 else a
        cols = np.flatnonzero(~(bits == bits[0]).all(axis=0))
        return cls(a[0].copy(), cols, a[:, cols].copy())

    def unpack(self) -> np.ndarray:
        out = np.repeat(self.first[None], self.data.shape[0], axis=0)
        out[:, self.cols] = self.data
        return out

    @property
    def nbytes(self) -> int:
        return self.first.nbytes + self.cols.nbytes + self.data.nbytes


class _NoTape(Exception):
    """The tape cannot serve these thresholds; the caller replays them in full."""


@dataclass
class _Chunk:
    """What the recorder engine saw during one piece: per model step (C) and series (N, endpoint-major) the
    threshold-free state the evidence step reads, and per replay step (S) what scoring needs."""

    b: np.ndarray  # (C,) model steps closed
    # (C, N) arrays, packed (``_Packed``):
    level: _Packed  # forecast bank after the step (a step's refits change none of these)
    dc: _Packed
    e: _Packed
    drift: _Packed
    s2: _Packed
    dev: _Packed  # the anomaly core's deviation before the step's core update
    fed: _Packed  # what the forecasts were fed
    mean: _Packed  # the step's mean (NaN: no sample)
    down: _Packed  # bool
    sampled: _Packed
    held: _Packed
    risk: _Packed | None  # core risk after the step, kept only when some series has no threshold
    refits: list  # (c, idx, phi, theta, g, v): bank parameters set by the refits of step c (after its evidence)
    noise: list  # (c, ref_noise): the core's frozen noise scales, when they changed at step c
    closes: np.ndarray  # (S,) model steps of this chunk closed before each replay step's snapshot
    up: np.ndarray  # (S, E) health as the snapshots saw it
    rows: dict  # s -> (endpoints (k,), x (k, F), fast (k, M)): features of rows near a threshold


    def nbytes(self) -> int:
        arrays = [getattr(self, k) for k in _CLOSE if getattr(self, k) is not None]
        arrays += [a for r in self.rows.values() for a in r] + [a for r in self.refits for a in r[1:]]
        arrays += [r[1] for r in self.noise] + [self.closes, self.up]
        return sum(a.nbytes for a in arrays)


_CLOSE = ("b", "level", "dc", "e", "drift", "s2", "dev", "fed", "mean", "down", "sampled", "held", "risk")


class _Recorder:
    """The family engine's ``tap`` and ``on_step``: records a ``_Chunk`` per piece it is fed."""

    def __init__(self, eng):
        from pfepo.predict.engine import LEVEL_S

        bank, core = eng.bank, eng.core
        self.init = (bank.phi.copy(), bank.theta.copy(), bank.g.copy(), bank.v.copy(), core.ref_noise.copy())
        self.dev, self.noise = core.dev.copy(), core.ref_noise.copy()
        self.need_risk = bool((~np.isfinite(eng.thr)).any())
        self.window = eng.hold_s + LEVEL_S + eng.confirm_s + eng.trend_tau_s
        self.last_warm: np.ndarray | None = None
        self.eng = eng
        self.cur: dict | None = None

    def begin(self, idx_all: np.ndarray) -> None:
        self.idx_all = idx_all
        if self.last_warm is None:
            self.last_warm = np.full(idx_all.size, -np.inf)
        self.cur = {k: [] for k in _CLOSE} | {"refits": [], "noise": [], "closes": [], "rows": {}}

    def __call__(self, eng, b, fed, mean, down, sampled, held) -> None:
        if self.cur is None:  # fed outside ``_feed`` (not recorded)
            return
        cur, bank, core = self.cur, eng.bank, eng.core
        c = len(cur["b"])
        for k, v in (("b", b), ("level", bank.level.copy()), ("dc", bank.dc.copy()), ("e", bank.e.copy()),
                     ("drift", bank.drift()), ("s2", bank.s2.copy()), ("dev", self.dev), ("fed", fed),
                     ("mean", mean), ("down", down), ("sampled", sampled), ("held", held)):
            cur[k].append(v)
        self.dev = core.dev.copy()
        if self.need_risk:
            cur["risk"].append(core.risk.copy())
        idx = np.flatnonzero(eng.last_fit == b)
        if idx.size:
            cur["refits"].append((c, idx, bank.phi[idx].copy(), bank.theta[idx].copy(), bank.g[idx].copy(),
                                  bank.v[idx].copy()))
        if not np.array_equal(core.ref_noise, self.noise, equal_nan=True):
            self.noise = core.ref_noise.copy()
            cur["noise"].append((c, self.noise))

    def snapshot(self, k: int, snap) -> None:
        """Keep the features of the rows that are, or were lately, near a threshold (``WARM``): those a
        threshold edit is likely to score. A row it scores and that was not kept means a full replay."""
        cur, eng, idx = self.cur, self.eng, self.idx_all
        cur["closes"].append(len(cur["b"]))
        m = eng.m
        fast = eng.feat.fast.reshape(-1, m)[idx]
        hi = np.fmax(np.fmax(fast, eng.feat.last.reshape(-1, m)[idx]), snap.predicted[idx])
        thr = eng.thr[None, :]
        with np.errstate(invalid="ignore"):
            warm = (hi >= WARM * thr).any(axis=1) | (snap.breach[idx] > 0).any(axis=1)
        self.last_warm[warm] = snap.now
        rows = np.flatnonzero((snap.now - self.last_warm <= self.window) & (snap.up[idx] != 0))
        if rows.size:
            cur["rows"][k] = (rows, snap.x[idx[rows]].copy(), fast[rows].copy())

    def end(self, up: np.ndarray) -> _Chunk:
        cur, n = self.cur, self.eng.m * len(self.eng.endpoints)
        self.cur = None

        def stack(k: str, dtype=float) -> _Packed:
            return _Packed.of(np.array(cur[k], dtype=dtype).reshape(len(cur["b"]), n))

        return _Chunk(np.array(cur["b"], dtype=np.int64), *(stack(k) for k in _CLOSE[1:9]),
                      *(stack(k, bool) for k in ("down", "sampled", "held")),
                      stack("risk") if self.need_risk else None, cur["refits"], cur["noise"],
                      np.array(cur["closes"], dtype=np.int64), up.reshape(len(cur["closes"]), -1), cur["rows"])


class _Unpacked:
    """A ``_Chunk`` with its packed arrays unpacked (for one pass over it)."""

    def __init__(self, ch: _Chunk):
        for k in ("b", "refits", "noise", "closes", "up", "rows"):
            setattr(self, k, getattr(ch, k))
        for k in _CLOSE[1:]:
            a = getattr(ch, k)
            setattr(self, k, None if a is None else a.unpack())


class _Flat:
    """Forecast bank arrays of many (step, series) pairs laid flat, run through ``ForecastBank``'s own
    forecast maths (elementwise: the same numbers as the engine's bank, step by step)."""

    from pfepo.predict.forecast import ForecastBank as _FB

    forecast = _FB.forecast
    breach_probability = _FB.breach_probability

    def __init__(self, bank, level, dc, e, phi, theta, g, v, s2, drift):
        self.steps, self.drift_sd, self.sd_floor_rel = bank.steps, bank.drift_sd, bank.sd_floor_rel
        self.level, self.dc, self.e, self.phi, self.theta = level, dc, e, phi, theta
        self.g, self.v, self.s2, self._drift = g, v, s2, drift

    def drift(self) -> np.ndarray:
        return self._drift


class _BankAt:
    """The bank as ``PredictiveEngine._judge`` reads it at one recorded step."""

    def __init__(self, drift, p_trend, p_level):
        self._d, self._pt, self._pl, self.c = drift, p_trend, p_level, 0

    def drift(self) -> np.ndarray:
        return self._d[self.c]

    def breach_probability(self, thresholds, drift: bool = True):
        return (self._pt if drift else self._pl)[self.c], None, None


class _CoreAt:
    """The anomaly core as ``PredictiveEngine._judge`` reads it (``n``, ``ref_noise``, ``dev``)."""

    def __init__(self, n: int, ref_noise: np.ndarray):
        self.n, self.ref_noise, self.dev = n, ref_noise, np.zeros(n)


def _judged(settings, model, kw, rec: _Entry, fam: _Family):
    """A ``_Judged`` entry for these thresholds, or None when the tape cannot serve them: a series gains
    or loses its threshold (its evidence would come from the anomaly core), or the classifier's
    combination is not zero at zero evidence (every row would need its features)."""
    reng = rec.engine
    if not isinstance(reng.tap, _Recorder):
        return None
    shell = make_engine(settings, None, kw)
    if shell.metrics != reng.metrics or not np.array_equal(np.isfinite(shell.thr), np.isfinite(reng.thr)):
        return None
    idx = shell.ensure(list(fam.index))
    if not np.array_equal(idx, rec.idx_all):
        return None
    shell.classifier, shell.model_error = reng.classifier, reng.model_error
    if shell.classifier is not None:
        from pfepo.predict.core import combine

        try:
            ends = combine(np.zeros(2), np.array([0.0, 1.0]), clear=shell.clear, raise_min=shell.raise_min)
        except (TypeError, ValueError, AttributeError):
            return None
        if not bool(np.all(ends == 0.0)):
            return None
    return _Judged(shell, rec.idx_all, reng)


class _Judged:
    """A threshold set served from the tape: per recorded model step only ``PredictiveEngine._judge``
    (the evidence rules, the engine's own code) runs, on a shell engine whose bank and core are the
    recorded ones, with the breach probabilities of a whole chunk computed at once; the one
    threshold-dependent feature state (``persist``) is advanced beside it; rows with evidence are scored
    with their recorded features, the threshold-dependent ones recomputed."""

    full = False

    def __init__(self, shell, idx_all: np.ndarray, reng):
        self.engine, self.idx_all = shell, idx_all
        self.bank0 = reng.bank  # steps, drift_sd, sd_floor_rel (constants)
        phi, theta, g, v, noise = reng.tap.init
        self.phi, self.theta, self.g, self.v = phi.copy(), theta.copy(), g.copy(), v.copy()
        n = shell.m * len(shell.endpoints)
        self.core = _CoreAt(reng.core.n, noise.copy())
        shell.core = self.core
        shell._thr_t = np.tile(shell.thr, len(shell.endpoints))
        self.over, self.last_t = np.zeros(n), np.full(n, np.nan)
        self.state = None  # (level, dc, e, s2, drift) rows of the last recorded step
        self.risk = np.zeros(n)
        self.pos, self.chunks = 0, 0
        self.prob: list = []
        self.predicted: list = []  # the recorder's (threshold-free)

    def copy(self) -> _Judged:
        memo = {id(self.engine.classifier): self.engine.classifier} if self.engine.classifier is not None else {}
        memo[id(self.bank0)] = self.bank0
        new = copy.copy(self)
        new.engine = copy.deepcopy(self.engine, memo)
        new.core = new.engine.core
        for k in ("phi", "theta", "g", "v", "over", "last_t"):
            setattr(new, k, getattr(self, k).copy())
        new.prob, new.predicted, new.chunks, new.pos = [], [], 0, 0
        return new

    def follow(self, tape: list, say) -> None:
        for i in range(self.chunks, len(tape)):
            say(i / max(1, len(tape)), f"evidence with the edited thresholds: piece {i + 1} of {len(tape)}")
            self.prob.append(self._chunk(tape[i]))
            self.chunks, self.pos = i + 1, self.pos + tape[i].closes.size

    def _chunk(self, ch: _Chunk) -> np.ndarray:
        from pfepo.predict.features import PER_METRIC, assemble

        eng, thr_t = self.engine, self.engine._thr_t
        c_n, n = ch.b.size, thr_t.size
        ch = _Unpacked(ch)
        m, e = eng.m, self.idx_all.size
        # the breach probabilities of every step at once, with the parameters before each step's refits
        phi, theta = np.repeat(self.phi[None], c_n, 0), np.repeat(self.theta[None], c_n, 0)
        g, v = np.repeat(self.g[None], c_n, 0), np.repeat(self.v[None], c_n, 0)
        for c, idx, ph, th, gg, vv in ch.refits:
            phi[c + 1:, idx], theta[c + 1:, idx], g[c + 1:, idx], v[c + 1:, idx] = ph, th, gg, vv
        kk = g.shape[-1]
        flat = _Flat(self.bank0, ch.level.ravel(), ch.dc.ravel(), ch.e.ravel(), phi.ravel(), theta.ravel(),
                     g.reshape(-1, kk), v.reshape(-1, kk), ch.s2.ravel(), ch.drift.ravel())
        thr_all = np.tile(thr_t, c_n)
        p_trend = flat.breach_probability(thr_all)[0].reshape(c_n, n)
        p_level = flat.breach_probability(thr_all, drift=False)[0].reshape(c_n, n)
        bank = _BankAt(ch.drift, p_trend, p_level)
        eng.bank = bank
        refits, noise = iter(ch.refits), iter(ch.noise)
        nxt_r, nxt_n = next(refits, None), next(noise, None)
        S = ch.closes.size
        breach = np.zeros((S, e, m))
        hot_x, hot_at = [], []
        rt, ps, br = (PER_METRIC.index(k) for k in ("rel_thr", "persist", "breach"))
        p_n = len(PER_METRIC)
        s = 0

        def emit(done: int) -> None:
            nonlocal s
            while s < S and ch.closes[s] <= done:
                ev = np.where(np.isfinite(thr_t), eng.evid, self.risk).reshape(-1, m)[self.idx_all]
                breach[s] = ev
                with np.errstate(invalid="ignore"):
                    hot = np.flatnonzero((np.nan_to_num(np.where(ev > 0, ev, 0.0)).max(axis=1, initial=0.0) > 0)
                                         & (ch.up[s] != 0))
                if hot.size and eng.classifier is not None:
                    kept = ch.rows.get(s)
                    pos = {int(r): i for i, r in enumerate(kept[0])} if kept is not None else {}
                    if any(int(r) not in pos for r in hot):
                        raise _NoTape(f"no recorded features at step {s} of a piece for a row with evidence")
                    sel = np.array([pos[int(r)] for r in hot])
                    x, fast = kept[1][sel], kept[2][sel]
                    sidx = (self.idx_all[hot][:, None] * m + np.arange(m)[None, :]).ravel()
                    lv, dc, ee, s2, dr = (a[sidx] for a in self.state)
                    pf = _Flat(self.bank0, lv, dc, ee, self.phi[sidx], self.theta[sidx], self.g[sidx], self.v[sidx],
                               s2, dr)
                    thr = thr_t[sidx]
                    per = x[:, : m * p_n].reshape(hot.size, m, p_n).copy()
                    with np.errstate(invalid="ignore", divide="ignore"):
                        per[:, :, rt] = fast / thr.reshape(hot.size, m)
                    per[:, :, ps] = np.where(np.isfinite(thr), self.over[sidx], np.nan).reshape(hot.size, m)
                    per[:, :, br] = pf.breach_probability(thr)[0].reshape(hot.size, m)
                    hot_x.append(assemble(per.reshape(hot.size, m * p_n), x[:, -3:], m))
                    hot_at.append(s * e + hot)
                s += 1

        emit(0)
        step = eng.step_s
        for c in range(c_n):
            bank.c = c
            self.core.dev = ch.dev[c]
            b = int(ch.b[c])
            eng._judge(b, ch.fed[c], ch.sampled[c], ch.held[c], ch.down[c])
            # features.FeatureState.update's "persist" (the one threshold-dependent feature state)
            now, mean = b * step, ch.mean[c]
            obs = np.isfinite(mean)
            dt = np.clip(np.where(np.isfinite(self.last_t), now - self.last_t, step), 1e-3, 3600.0)
            self.last_t = np.where(obs, now, self.last_t)
            with np.errstate(invalid="ignore"):
                above = obs & (mean > thr_t)
            a_over = 1.0 - np.exp(-dt / 120.0)
            self.over = np.where(obs, self.over + a_over * (above - self.over), self.over)
            while nxt_r is not None and nxt_r[0] == c:
                _, idx, ph, th, gg, vv = nxt_r
                self.phi[idx], self.theta[idx], self.g[idx], self.v[idx] = ph, th, gg, vv
                nxt_r = next(refits, None)
            while nxt_n is not None and nxt_n[0] == c:
                self.core.ref_noise = nxt_n[1]
                nxt_n = next(noise, None)
            if ch.risk is not None:
                self.risk = ch.risk[c]
            self.state = (ch.level[c], ch.dc[c], ch.e[c], ch.s2[c], ch.drift[c])
            emit(c + 1)
        emit(c_n)
        up = ch.up.reshape(S * e)
        flat_br = breach.reshape(S * e, m)
        if eng.classifier is None:
            return eng.score_parts(np.zeros((S * e, 0)), flat_br, up)[0].reshape(S, e)
        risk = np.where(up == 0, 1.0, 0.0)
        if hot_at:
            at = np.concatenate(hot_at)
            risk[at] = eng.score_parts(np.concatenate(hot_x), flat_br[at], up[at])[0]
        return risk.reshape(S, e)
