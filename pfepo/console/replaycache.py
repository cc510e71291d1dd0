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
  features of rows near a threshold (``Recorder.snapshot``);
- an **entry** per criterion thresholds: for the recorder's own thresholds the recorder itself; for
  others a ``Judged`` entry: only ``_judge`` (the engine's own evidence rules) runs per recorded step,
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
import hashlib
import logging
import math
import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pfepo.console import fitahead
from pfepo.console.replaytape import NoTape, Recorder, judged

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
    entries: dict = field(default_factory=dict)  # thresholds key -> Judged or _Entry (full replay)
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
        self.prewarm = None  # console.prewarm.Prewarm filling this cache out of process, if any
        # long replays: refits (and the history reading) done ahead in a second process (console.fitahead).
        # Opt-in (PFEPO_WHATIF_FIT_AHEAD=1): idle, cold 24 h x 50 endpoints 25.8-26.3 s against 29.4-32.8 s in
        # one process, but on a loaded machine as often slower as faster (docs/console.md), so one process
        # is the default.
        self.fit_ahead = os.environ.get("PFEPO_WHATIF_FIT_AHEAD", "0") == "1"
        self.last_ahead: dict = {}  # the last such replay's counters (benchmark, tests)
        self._classifiers: dict = {}  # (model path, mtime) -> classifier, loaded once per process

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

    def save(self, path: Path) -> int:
        """Write the families (history arrays, fit memo, recorder engine and tape; not the entries of other
        thresholds) to ``path`` atomically (temp file, fsync, rename), readable only by this user, so
        another process (``console.prewarm``) or the next daemon can ``adopt`` them. Returns the bytes."""
        with self._lock:
            fams = [(k, f) for k, f in self._families.items() if f.recorder is not None]
            held = [(f, f.recorder.engine.fit, f.recorder.engine.classifier, f.entries) for _, f in fams]
            try:
                for f, *_ in held:  # the memo closure and the classifier are restored on adoption
                    f.recorder.engine.fit, f.recorder.engine.classifier, f.entries = None, None, {}
                bufs: list = []
                meta = pickle.dumps({"code": code_identity(), "families": fams}, protocol=5,
                                    buffer_callback=bufs.append)
                raws = [b.raw() for b in bufs]
            finally:
                for f, fit, clf, entries in held:
                    f.recorder.engine.fit, f.recorder.engine.classifier, f.entries = fit, clf, entries
            return _write_snapshot(path, meta, raws)

    def adopt(self, path: Path) -> int:
        """Take the families saved in ``path`` (``save``) unless this cache's family of the same key started
        at the same time and has at least as much history (a family of another start, e.g. of a short
        window run in this process, is replaced: the saved ones are what the pre-warm keeps serving the
        longest window); a file written by other code (``code_identity``)
        or unreadable is ignored. Returns the families taken. Exact: the saved engine objects carry on
        from where they were, so a family saved, adopted and extended gives the numbers of one that never
        left memory (tests/console/test_whatif_cache.py)."""
        try:
            data = _read_snapshot(path)  # our own state_dir file (0600), as desired.json is
        except FileNotFoundError:
            return 0
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign snapshot costs a replay, nothing else
            log.warning("what-if: snapshot %s not used (%s)", path, exc)
            return 0
        if not isinstance(data, dict) or data.get("code") != code_identity():
            log.info("what-if: snapshot %s was made by other code: not used", path)
            return 0
        taken = 0
        with self._lock:
            for key, fam in data["families"]:
                cur = self._families.get(key)
                if cur is not None and cur.recorder is not None and cur.anchor == fam.anchor and cur.done >= fam.done:
                    continue  # another start: the saved one (24 h back, or a newer start replacing an old one) wins
                eng = fam.recorder.engine
                eng.fit = _memo_fit(fam.fits)
                model = None if key[4] == "None" else Path(key[4])
                if model is not None:
                    ck = (key[4], key[5])
                    if ck not in self._classifiers:
                        eng.load_model(model)
                        self._classifiers[ck] = (eng.classifier, eng.model_error)
                    eng.classifier, eng.model_error = self._classifiers[ck]
                fam.entries, fam.used = {}, time.time()
                self._families[key] = fam
                taken += 1
            _trim(self._families, self.max_families)
        return taken

    def share_classifier(self, model: Path, classifier) -> None:
        """Use ``classifier`` (already loaded from ``model`` as it is now, e.g. by the daemon's live engine;
        read-only) for adopted families of that model instead of loading it again."""
        self._classifiers[(str(model), model.stat().st_mtime_ns)] = (classifier, None)

    def drop_older(self, anchor: float) -> None:
        """Forget families whose replay started before ``anchor`` (a refresh then starts a new one while the
        old one, in the daemon's memory, still serves)."""
        with self._lock:
            for k in [k for k, f in self._families.items() if f.anchor < anchor]:
                del self._families[k]

    def spans(self) -> list[tuple[float, float]]:
        """(start, history replayed up to) of each family (the page shows what the cache holds)."""
        return [(f.anchor, f.done) for f in self._families.values() if f.recorder is not None]

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
        if fam.recorder is None:
            eng = make_engine(settings, model, kw, _memo_fit(fam.fits))
            idx = eng.ensure(endpoints)
            eng.tap = Recorder(eng)
            fam.recorder = _Entry(eng, idx, key=ekey)
        rec = fam.recorder
        pos0 = rec.pos
        ahead = None  # a long replay of the recorder: its refits computed ahead in a second process
        if (self.fit_ahead and (boundary - fam.done) / step >= fitahead.MIN_STEPS and rec.pos == n0
                and getattr(rec.engine.fit, "memo", None) is fam.fits):
            spec = getattr(read, "spec", None)
            plan = {"bounds": _bounds(step, fam.done, boundary), "index": fam.index, "metrics": fam.metrics,
                    "prev_up": fam.prev_up, **spec()} if spec is not None and spec() is not None else None
            try:
                ahead = fitahead.FitAhead(rec.engine, rec.idx_all, plan)
            except (OSError, ValueError) as exc:  # no worker: the engine fits everything itself
                log.info("what-if: no fit-ahead worker (%s)", exc)
        try:
            if ahead is not None:
                rec.engine.fit.ahead = ahead
            feed_say = say if ahead is None else (
                lambda p, text: say(p, f"{text} (refits computed ahead in a second process: {ahead.received})"))
            if boundary > fam.done:
                say(0.0, "reading history")
                # With a worker, each piece is fed as it arrives: the engine runs while the worker reads the
                # next pieces and makes their refits (one process: read everything, then feed).
                fed = None if ahead is None else (lambda k, n: self._core(
                    fam, rec, ekey, settings, model, kw,
                    lambda p, text: feed_say((k + p) / n, f"history piece {k + 1} of {n}, {text}"), ahead))
                _read_into(fam, fam.steps, fam.done, boundary, read, keep=True, ahead=ahead, fed=fed)
            self._core(fam, rec, ekey, settings, model, kw, feed_say, ahead)
        finally:
            if ahead is not None:
                rec.engine.fit.ahead = None
                ahead.close()
                self.last_ahead = {"received": ahead.received, "used": ahead.used, "fitted_here": ahead.fitted_here,
                                   "pieces": ahead.pieces_done, "read_here": ahead.pieces, "read_error": ahead.read_error,
                                   "waited": ahead.waited}
        return self._rest(fam, rec, ekey, settings, model, kw, say, since, until, read, step, endpoints, n0, pos0)

    def _core(self, fam, rec, ekey, settings, model, kw, say, ahead) -> None:
        """Feed the recorder the family's new steps (the cold part of a replay)."""
        _feed(rec, fam.steps, fam.metrics, say, fam.tape)

    def _rest(self, fam, rec, ekey, settings, model, kw, say, since, until, read, step, endpoints, n0,
              pos0) -> Series:
        base = rec.key == ekey
        entry = None if base else fam.entries.pop(ekey, None)
        if entry is None and not base:
            entry = judged(make_engine(settings, None, kw), rec.engine, rec.idx_all) or _full(
                settings, model, kw, rec, fam)
        if entry is not None:
            fam.entries[ekey] = entry  # most recently used last
            _trim(fam.entries, self.max_engines, by_order=True)
        cached = pos0 if base else entry.pos
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
                except NoTape:
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
        except (NoTape, AttributeError, TypeError, IndexError) as exc:
            # AttributeError/TypeError: the engine's evidence step reads something the shell lacks (the
            # engine changed): correct numbers first, the speed-up is lost (the benchmark shows it)
            log.info("what-if: thresholds %s replayed in full (%s)", dict(ekey), exc)
            full = _full(settings, model, kw, fam.recorder, fam)
            fam.entries[ekey] = full
            _feed(full, fam.steps, fam.metrics, say)
            return full


_MAGIC = b"PFEPO-WHATIF-CACHE 1\n"
_ALIGN = 64


def _write_snapshot(path: Path, meta: bytes, raws: list) -> int:
    """magic, the pickle's length, the buffers' count and lengths, the pickle, then each array's bytes
    (pickle protocol 5, out of band) at a 64-byte boundary: ``_read_snapshot`` maps them instead of
    copying them. Atomic (temp file, fsync, rename), mode 0600."""
    from pfepo.controller.state import atomic_write

    head = _MAGIC + np.array([len(meta), len(raws), *(r.nbytes for r in raws)], dtype="<u8").tobytes()
    parts: list = [head, meta]
    pos = len(head) + len(meta)
    for raw in raws:
        pad = -pos % _ALIGN
        parts += [b"\0" * pad, raw]
        pos += pad + (raw.nbytes if isinstance(raw, memoryview) else len(raw))
    atomic_write(path, parts, mode=0o600)
    return pos


def _read_snapshot(path: Path):
    """The object ``_write_snapshot`` wrote, its arrays backed by one buffer the file is read into: the
    read releases the GIL, and unpickling then costs the object graph, not a copy of every array (it
    holds the GIL: ~10 ms for a 24 h x 50 endpoints family instead of ~0.8 s). Private memory, not a
    mapping: a file rewritten in place later cannot change or fault the arrays. Exact: the same bytes."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        raw = np.empty(size, dtype=np.uint8)  # not zero-filled
        view = memoryview(raw)
        got = 0
        while got < size:
            k = fh.readinto(view[got:])
            if not k:
                break
            got += k
    view = view[:got]
    n = len(_MAGIC)
    if bytes(view[:n]) != _MAGIC:
        raise ValueError("not a what-if cache snapshot")
    meta_len, count = (int(v) for v in np.frombuffer(view[n:n + 16], dtype="<u8"))
    lens = np.frombuffer(view[n + 16:n + 16 + 8 * count], dtype="<u8").astype(int)
    pos = n + 16 + 8 * count
    meta = view[pos:pos + meta_len]
    pos += meta_len
    bufs = []
    for ln in lens:
        pos += -pos % _ALIGN
        bufs.append(view[pos:pos + ln])
        pos += ln
    if pos > len(view):
        raise ValueError("truncated what-if cache snapshot")
    return pickle.loads(meta, buffers=bufs)


_CODE: list[str] = []


def code_identity() -> str:
    """What a saved replay's numbers depend on besides its input and the keys of its family: the code of
    the engine, the trace and the replay, and the numeric libraries' versions. A snapshot made by other
    code is replayed afresh rather than trusted."""
    if not _CODE:
        from importlib import metadata

        root = Path(__file__).resolve().parents[1]
        files = sorted((root / "predict").glob("*.py")) + [
            root / "console" / "replaycache.py", root / "console" / "replaytape.py", root / "console" / "whatif.py",
            root / "evaluate" / "replay.py", root / "evaluate" / "harness.py", root / "traces" / "csv.py"]
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        for dist in ("numpy", "scipy", "statsmodels", "pandas", "scikit-learn", "joblib"):
            try:
                h.update(f"{dist}={metadata.version(dist)}".encode())
            except metadata.PackageNotFoundError:
                pass
        _CODE.append(h.hexdigest())
    return _CODE[0]


def make_engine(settings, model: Path | None, engine_kw: dict | None = None, fit=None):
    """``pfepo evaluate``'s engine (harness settings: horizon, step, thresholds) with the daemon's other
    ``predict.*`` arguments (``engine_kw``) and, for replays, a memo of the ARIMA fits (``fit``)."""
    from pfepo.predict.engine import PredictiveEngine

    return PredictiveEngine(horizon_s=settings.horizon_s, thresholds=settings.thresholds, model_path=model,
                            step_s=settings.step_s, fit=fit, **(engine_kw or {}))


def _memo_fit(memo: dict):
    """``fit_arima`` looked up by its exact input (window bytes, start parameters) first: a fit is a pure
    function of them, so a hit is the number the fit would have given. Engines of one family share it.
    While ``fit.ahead`` is set (a ``fitahead.FitAhead``), a miss first takes the worker's results."""
    from pfepo.predict.forecast import fit_arima

    def fit(window, start=None):
        key = fitahead.fit_key(window, start)
        ahead = fit.ahead
        if ahead is not None:
            ahead.collect(memo)
            ahead.count(key, key in memo)
            if key not in memo and not ahead.claim(key, memo):
                memo[key] = fit_arima(window, start)
                ahead.made(key, memo[key])
        if key not in memo:
            memo[key] = fit_arima(window, start)
        return memo[key]

    fit.memo, fit.ahead = memo, None
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
        raise NoTape("the younger tail has a row with evidence and no recorded features")


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


def _bounds(step_s: float, start: float, end: float) -> list[tuple[float, float]]:
    """The pieces [t, b) a read of [start, end) is made of (ending on step boundaries)."""
    out, t = [], start
    while t < end:
        b = min(end, math.floor(t / step_s) * step_s + CHUNK_STEPS * step_s)
        out.append((t, b))
        t = b
    return out


def _read_into(fam: _Family, steps: _Steps, start: float, end: float, read: Reader, keep: bool,
               ahead=None, fed=None) -> None:
    """Read [start, end) in pieces ending on step boundaries (a step's samples are averaged in one piece).
    With a fit-ahead worker (``fitahead.FitAhead``): the pieces the worker read (the same ``read`` of the
    same bounds, in another process), or, if it reads none, each piece read here and handed to it.
    ``fed(k, n)`` is called after piece k of n (the caller feeds it to its engine)."""
    from pfepo.evaluate.replay import dense_frame

    pieces = _bounds(fam.step_s, start, end)
    for k, (t, b) in enumerate(pieces):
        got = ahead.take() if ahead is not None and ahead.reads else None
        if got is None:  # no worker reading (or it stopped): read here
            trace = read(t, b)
            if trace is None or trace.frame.empty:
                continue
            ts, values, present, up = dense_frame(trace.frame, fam.index, fam.metrics, fam.prev_up)
            if ahead is not None and not ahead.reads:
                ahead.piece(ts, values, present, up)
        elif not got:
            continue  # the worker found no rows in this piece
        else:
            ts, values, present, up = got
        fam.prev_up = up[-1].copy()
        steps.ts.append(ts)
        steps.values.append(values)
        steps.present.append(present)
        steps.up.append(up)
        if fed is not None:
            fed(k, len(pieces))
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


