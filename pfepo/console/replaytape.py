"""Threshold edits in the what-if: the engine's evidence step alone, over a tape of what the rest of the
engine computed (see ``pfepo.console.replaycache`` for where it is used, and docs/console.md).

``Recorder`` is the ``tap`` (and ``on_step``) of the family's full engine: per model step and series it
records the threshold-free state ``PredictiveEngine._judge`` reads -- the forecast bank (level,
differences, drift, innovation variance; the parameters as refits set them), the anomaly core's
deviation and frozen noise scales, what the forecasts were fed -- and per replay step the features of
rows near a threshold. ``Judged`` replays other thresholds from it: ``_judge`` (the engine's own evidence
code) on a shell engine whose bank and core are the recorded ones, the breach probabilities of a whole
piece computed at once with ``ForecastBank``'s maths, the threshold-dependent feature state
(``persist``) beside it, and the rows with evidence scored with their recorded features (the
threshold-dependent ones recomputed). Every number equals a fresh engine's with those thresholds
(tests/console/test_whatif_cache.py); where the tape cannot give one, ``NoTape`` is raised and the
caller replays in full.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

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


class NoTape(Exception):
    """The tape cannot serve these thresholds; the caller replays them in full."""


@dataclass
class Chunk:
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
    noise: list  # (c, (2, N) ref_noise and ref_spread): the core's frozen scales, when they changed at step c
    closes: np.ndarray  # (S,) model steps of this chunk closed before each replay step's snapshot
    up: np.ndarray  # (S, E) health as the snapshots saw it
    rows: dict  # s -> (endpoints (k,), x (k, F), fast (k, M)): features of rows near a threshold


    def nbytes(self) -> int:
        arrays = [getattr(self, k) for k in _CLOSE if getattr(self, k) is not None]
        arrays += [a for r in self.rows.values() for a in r] + [a for r in self.refits for a in r[1:]]
        arrays += [r[1] for r in self.noise] + [self.closes, self.up]
        return sum(a.nbytes for a in arrays)


_CLOSE = ("b", "level", "dc", "e", "drift", "s2", "dev", "fed", "mean", "down", "sampled", "held", "risk")


class Recorder:
    """The family engine's ``tap`` and ``on_step``: records a ``Chunk`` per piece it is fed."""

    def __init__(self, eng):
        from pfepo.predict.engine import LEVEL_S

        bank, core = eng.bank, eng.core
        self.init = (bank.phi.copy(), bank.theta.copy(), bank.g.copy(), bank.v.copy(), _scales(core))
        self.dev, self.noise = core.dev.copy(), _scales(core)
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
        scales = _scales(core)
        if not np.array_equal(scales, self.noise, equal_nan=True):
            self.noise = scales
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

    def end(self, up: np.ndarray) -> Chunk:
        cur, n = self.cur, self.eng.m * len(self.eng.endpoints)
        self.cur = None

        def stack(k: str, dtype=float) -> _Packed:
            return _Packed.of(np.array(cur[k], dtype=dtype).reshape(len(cur["b"]), n))

        return Chunk(np.array(cur["b"], dtype=np.int64), *(stack(k) for k in _CLOSE[1:9]),
                      *(stack(k, bool) for k in ("down", "sampled", "held")),
                      stack("risk") if self.need_risk else None, cur["refits"], cur["noise"],
                      np.array(cur["closes"], dtype=np.int64), up.reshape(len(cur["closes"]), -1), cur["rows"])


class _Unpacked:
    """A ``Chunk`` with its packed arrays unpacked (for one pass over it)."""

    def __init__(self, ch: Chunk):
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


def _scales(core) -> np.ndarray:
    """The core's frozen scales ``_judge`` reads (noise sd, level spread), stacked (2, N)."""
    return np.stack([core.ref_noise, core.ref_spread])


class _CoreAt:
    """The anomaly core as ``PredictiveEngine._judge`` reads it (``n``, ``ref_noise``, ``ref_spread``,
    ``dev``)."""

    def __init__(self, n: int, scales: np.ndarray):
        self.n, self.ref_noise, self.ref_spread, self.dev = n, scales[0], scales[1], np.zeros(n)


def judged(shell, rec_engine, idx_all: np.ndarray) -> Judged | None:
    """A ``Judged`` entry for ``shell`` (a fresh engine with the edited thresholds, no model loaded), or
    None when the tape of ``rec_engine`` cannot serve them: a series gains or loses its threshold (its
    evidence would come from the anomaly core), or the classifier's combination is not zero at zero
    evidence (every row would need its features)."""
    reng = rec_engine
    if not isinstance(reng.tap, Recorder):
        return None
    if shell.metrics != reng.metrics or not np.array_equal(np.isfinite(shell.thr), np.isfinite(reng.thr)):
        return None
    idx = shell.ensure(list(reng.endpoints))
    if not np.array_equal(idx, idx_all):
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
    return Judged(shell, idx_all, reng)


class Judged:
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

    def copy(self) -> Judged:
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

    def _chunk(self, ch: Chunk) -> np.ndarray:
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
                        raise NoTape(f"no recorded features at step {s} of a piece for a row with evidence")
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
                self.core.ref_noise, self.core.ref_spread = nxt_n[1][0], nxt_n[1][1]
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
