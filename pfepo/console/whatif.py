"""What-if: validate an edited policy file, replay it over the daemon's history, and apply it.

Validation loads the whole policy set with the edited file in place of the original (in a temporary
folder, same file names), against the daemon's config, so problems read ``name.yaml:LINE:COL: message``
exactly as a hot reload would report them.

The replay uses ``pfepo evaluate``'s engine path (``_engine_replay`` below is the ONE call site of the
offline-evaluation code: harness settings, engine and causal replay), then runs the daemon's own
decision maths at every replayed step -- ``policy.engine.evaluate`` over the config's contexts and the
real ``planner.Planner`` -- so the shares shown are the ones the planner would have set.

Applying writes the file atomically (temp file, fsync, rename) and asks the daemon's ``PolicyReloader``
to reload, the normal validated hot-reload path; if the reload refuses the set, the old file is put
back. The caller audits the outcome.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pfepo.console.replaycache import PredictorCache, Series
from pfepo.console.views import METRICS

log = logging.getLogger("pfepo.console")
UPLINK = ("latency_ms", "loss_pct", "utilization_pct", "jitter_ms")


def policy_files(cfg) -> list[Path]:
    from pfepo.policy.loader import expand_paths

    return expand_paths(cfg.policy.paths)[0]


def validate(cfg, target: Path, text: str) -> tuple[object | None, list, Path | None]:
    """(PolicySet, [], folder) or (None, problems, None); the caller removes ``folder`` when done."""
    from pfepo.policy.loader import load_policies
    from pfepo.yamlconf import ConfigError, Problem

    tmp = Path(tempfile.mkdtemp(prefix="pfepo-whatif-"))
    try:
        for f in policy_files(cfg):
            if f.resolve() != target.resolve():
                shutil.copyfile(f, tmp / f.name)
        (tmp / target.name).write_text(text, encoding="utf-8")
        try:
            ps = load_policies([tmp], cfg)
        except ConfigError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            probs = [Problem(Path(p.file).name, p.line, p.col, p.message) for p in exc.problems]
            return None, probs, None
        return ps, [], tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def history_trace(rt, since: float, until: float, step_s: float):
    """The history store as a trace, one row per endpoint per ``step_s``: each metric's mean in the step
    (the engine itself averages samples into steps, so a 3 s loss burst inside a 10 s step still shows),
    ``health_up``'s last value as ``up`` (1 where the step has none); the endpoint's own signals, and its
    region uplink's network metrics where it has none, as the decision loop does.

    All subjects are aggregated in one pandas groupby (per group the same summation as one call per
    subject: the earlier per-endpoint ``pivot_table`` + ``combine_first`` gave these very numbers,
    ``test_history_trace_equals_the_per_endpoint_pivot``) and the endpoint rows are assembled with numpy."""
    from pfepo.traces.csv import Trace

    subjects: list[str] = []  # region uplinks, then endpoints
    link_of: list[int] = []  # per endpoint: its uplink's subject index
    ts, code, met, val = [], [], [], []
    rows_of = getattr(rt.store, "range_rows", None)  # raw (ts, metric, value) rows where the store has them
    up_keep, ep_keep = frozenset(UPLINK), frozenset(METRICS)

    def read(subject: str, code_: int, keep: frozenset[str]) -> None:
        if rows_of is not None:
            rows = [r for r in rows_of(subject, start=since, end=until) if r[1] in keep]
        else:
            rows = [(s.ts, s.metric, s.value) for s in rt.store.range(subject=subject, start=since, end=until)
                    if s.metric in keep]
        if rows:
            t_, m_, v_ = zip(*rows, strict=True)
            ts.extend(t_), met.extend(m_), val.extend(v_)
            code.extend([code_] * len(rows))

    for r in rt.cfg.regions:
        li = len(subjects)
        subjects.append(f"uplink:{r.name}")
        read(f"uplink:{r.name}", li, up_keep)
        for e in r.endpoints:
            ei = len(subjects)
            subjects.append(e.name)
            link_of.append(li)
            read(e.name, ei, ep_keep)
    if not ts:
        return None
    df = pd.DataFrame({"s": np.array(code), "ts": np.floor(np.array(ts, dtype=float) / step_s) * step_s,
                       "metric": met, "value": np.array(val, dtype=float)})
    df = df[df["value"].notna()]  # as pivot_table: a group of NaN only is no row
    health = (df["metric"] == "health_up").to_numpy()
    means = df[~health].groupby(["s", "ts", "metric"], sort=True)["value"].mean()
    last = df[health].groupby(["s", "ts"], sort=True)["value"].last()
    grid = np.unique(df["ts"].to_numpy())
    names = sorted(set(means.index.get_level_values("metric")))
    cols = names + (["health_up"] if health.any() else [])
    w = np.full((len(subjects), grid.size, len(cols)), np.nan)
    if len(means):
        w[means.index.get_level_values("s").to_numpy(), np.searchsorted(grid, means.index.get_level_values("ts")),
          np.searchsorted(names, means.index.get_level_values("metric"))] = means.to_numpy()
    if len(last):
        w[last.index.get_level_values("s").to_numpy(), np.searchsorted(grid, last.index.get_level_values("ts")),
          len(names)] = last.to_numpy()
    has = np.isfinite(w).any(axis=2)  # (S, T) the subject has a row in the step
    eps = [i for i, n in enumerate(subjects) if not n.startswith("uplink:")]
    eps = [eps[k] for k in np.argsort([subjects[i] for i in eps], kind="stable")]  # rows sorted by endpoint
    link = {ei: link_of[k] for k, ei in enumerate(i for i, n in enumerate(subjects) if not n.startswith("uplink:"))}
    e_arr = np.array(eps)
    l_arr = np.array([link[i] for i in eps])
    own, via = w[e_arr], w[l_arr]  # (E, T, C)
    vals = np.where(np.isnan(own), via, own)  # combine_first: own values, the uplink's where own has none
    rows = (has[e_arr] | has[l_arr]).T  # (T, E)
    t_idx, k_idx = np.nonzero(rows)  # row-major: by time, then endpoint name
    out = {"ts": grid[t_idx], "endpoint": np.array([subjects[i] for i in eps], dtype=object)[k_idx]}
    v = vals.transpose(1, 0, 2)[t_idx, k_idx]  # (rows, C)
    for j, c in enumerate(names):
        out[c] = v[:, j]
    out["up"] = np.where(np.isnan(v[:, len(names)]), 1.0, v[:, len(names)]) if health.any() else 1.0
    frame = pd.DataFrame(out)
    return Trace(path="history", frame=frame, metrics=names, has_up=True)


class HistoryReader:
    """``history_trace`` over the daemon's store, as the predictor cache's reader. ``spec()`` says how a
    second process opens the same store (``console.fitahead`` reads the pieces there), or None where it
    cannot (DuckDB: one process per file)."""

    def __init__(self, rt):
        self.rt, self.step_s = rt, rt.cfg.predict.step_s

    def __call__(self, since: float, until: float):
        return history_trace(self.rt, since, until, self.step_s)

    def spec(self) -> dict | None:
        cfg = self.rt.cfg
        if cfg.history.backend == "duckdb":
            return None
        return {"cfg": cfg.model_dump_json(), "step_s": self.step_s}


def _engine_replay(trace, policy_file: Path, cfg, on_step=None):
    """``pfepo evaluate``'s engine path on ``trace``: settings from the policy, the engine with the daemon's
    horizon, step and model, the causal replay. Returns (Replay, risk (T, E), settings).
    ``on_step(k)`` is called before the engine's k-th snapshot (progress)."""
    from pfepo.console.replaycache import make_engine
    from pfepo.evaluate.replay import replay

    settings, model = _settings(policy_file, cfg)
    eng = make_engine(settings, model, engine_kw(cfg))
    if on_step is not None:  # the replay takes one snapshot per step: count them (instance attribute only)
        snapshot, calls = eng.snapshot, [0]

        def counted(now):
            on_step(calls[0])
            calls[0] += 1
            return snapshot(now)

        eng.snapshot = counted
    r = replay(trace, eng)
    return r, r.probabilities(eng), settings


@dataclass
class Job:
    id: str
    started: float = field(default_factory=time.time)
    stage: str = "queued"
    progress: float = 0.0
    done: bool = False
    error: str | None = None
    result: dict | None = None
    file: str = ""  # the policy file replayed, and its text: what "apply" writes
    text: str = ""


class Jobs:
    """At most one replay at a time per daemon (they are CPU-bound); results kept for the last few; the
    predictor replays cached for the next run (``replaycache``)."""

    def __init__(self, keep: int = 8):
        self.cache = PredictorCache()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.keep = keep

    def get(self, jid: str) -> Job | None:
        with self._lock:
            return self._jobs.get(jid)

    def busy(self) -> bool:
        with self._lock:
            return any(not j.done for j in self._jobs.values())

    def start(self, fn) -> Job:
        job = Job(uuid.uuid4().hex[:12])
        with self._lock:
            finished = sorted((j for j in self._jobs.values() if j.done), key=lambda j: j.started)
            for old in finished[: max(0, len(self._jobs) + 1 - self.keep)]:  # oldest finished ones go first
                del self._jobs[old.id]
            self._jobs[job.id] = job

        def run():
            try:
                job.result = fn(job)
            except Exception as exc:  # noqa: BLE001 - shown to the operator; the daemon goes on
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.done = True
                job.progress = 1.0

        threading.Thread(target=run, name=f"whatif-{job.id}", daemon=True).start()
        return job


SHORT_H = 1.0  # a window this short is replayed at once (a few s) rather than after the pre-warm's 24 h
WARM_HOURS = 24.0  # the longest window the page offers: a family that long serves every shorter one
_warming = threading.Lock()
_warmed: dict[int, float] = {}  # id(cache) -> when a warm-up last started


def warm_settings(cfg) -> list[tuple[object, Path | None]]:
    """(engine settings, model) of each distinct criterion-threshold set of the policy files as they are:
    what a warm-up replays (a family's recorder per set; other edits reuse it)."""
    out, seen = [], set()
    for f in policy_files(cfg):
        settings, model = _settings(f, cfg)
        key = tuple(sorted(settings.thresholds.items()))
        if key not in seen:
            seen.add(key)
            out.append((settings, model))
    return out


def warm_cache(rt, cache: PredictorCache, hours: float = WARM_HOURS, until: float | None = None,
               progress=None) -> None:
    """Replay (or extend) ``cache`` for the policy files as they are over the ``hours`` before ``until``."""
    endpoints = [e.name for r in rt.cfg.regions for e in r.endpoints]
    for settings, model in warm_settings(rt.cfg):
        t = time.time() if until is None else until
        cache.series(settings, model, endpoints, t - hours * 3600, t,
                     HistoryReader(rt), progress,
                     engine_kw=engine_kw(rt.cfg))


def warm(rt, cache: PredictorCache, hours: float = WARM_HOURS, every_s: float = 60.0) -> threading.Thread | None:
    """Fill ``cache`` for the policy files as they are (their criterion thresholds) over the last ``hours``,
    on a background thread, at most once per ``every_s``: the page calls this when it opens, so the
    operator's first run while editing finds the predictor replay done (or waits for the rest of it).
    While the daemon's pre-warm (``console.prewarm``, out of process) has not delivered its first
    replay, nothing is done here: that replay is the one to wait for."""
    pre = cache.prewarm
    if pre is not None and pre.pending():
        return None
    now = time.time()
    with _warming:
        if now - _warmed.get(id(cache), 0.0) < every_s:
            return None
        _warmed[id(cache)] = now

    def run() -> None:
        try:
            if pre is not None:
                pre.catch_up()
            warm_cache(rt, cache, hours)
        except Exception:  # noqa: BLE001 - a warm-up is an optimisation: the run itself reports problems
            log.debug("what-if warm-up failed", exc_info=True)

    th = threading.Thread(target=run, name="whatif-warm", daemon=True)
    th.start()
    return th


def replay_policy(rt, policyset, policy_file: Path, hours: float, job: Job | None = None,
                  cache: PredictorCache | None = None, fast: bool = True, until: float | None = None) -> dict:
    """Replay the last ``hours`` of history through the engine, the policies and the planner.

    Returns per service: the weights the planner would have set (steps), the weights the daemon set
    (history), and per endpoint the first step at which a policy would have acted.

    ``fast`` (the console): the predictor replay comes from ``cache`` (reused and extended, see
    ``replaycache``) and the decision loop skips quiet steps (``quiet_steps``). ``fast=False`` is the
    plain path, kept as the reference the benchmark and the tests compare against: the window's trace
    replayed from scratch (``_engine_replay``), every step through the policies and the planner.
    ``until``: the window's end (default now; the benchmark fixes it to compare runs).
    """

    def stage(name: str, p: float) -> None:
        if job is not None:  # progress never goes back (the newest, uncached steps restart a count)
            job.stage, job.progress = name, max(p, job.progress if name != "reading history" else 0.0)

    cfg = rt.cfg
    until = time.time() if until is None else until
    since = until - hours * 3600
    stage("reading history", 0.02)
    pre = cache.prewarm if cache is not None else None
    if fast and pre is not None and pre.pending() and hours > SHORT_H:  # its replay is under way: wait for it
        while pre.pending():
            stage(f"waiting for the pre-warm ({pre.describe()})", 0.02 + 0.03 * pre.progress)
            pre.wait(0.5)
    if fast and pre is not None:
        pre.catch_up()  # a newer snapshot of the background replay, if the cache is behind it
    if fast:
        settings, model = _settings(policy_file, cfg)
        endpoints = [e.name for r in cfg.regions for e in r.endpoints]
        s = (cache or PredictorCache()).series(
            settings, model, endpoints, since, until, HistoryReader(rt),
            lambda p, text: stage(text, 0.05 + 0.6 * p), use_cache=cache is not None, engine_kw=engine_kw(cfg))
        if s.ts.size == 0:
            return {"since": since, "until": until, "steps": 0, "services": {}, "acts": {}, "note": "no history"}
    else:
        trace = history_trace(rt, since, until, cfg.predict.step_s)
        if trace is None:
            return {"since": since, "until": until, "steps": 0, "services": {}, "acts": {}, "note": "no history"}
        n_steps = int(trace.frame["ts"].nunique())

        def engine_step(k: int) -> None:
            if k % 20 == 0:
                stage(f"predictor: step {k} of {n_steps}", 0.1 + 0.4 * k / max(n_steps, 1))

        r, prob, _ = _engine_replay(trace, policy_file, cfg, engine_step)
        s = Series(r.ts, list(r.endpoints), list(r.metrics), r.values, r.up, prob, r.predicted)
    out = decide(cfg, rt.state.baseline_weights(), policyset, since, s, skip_quiet=fast,
                 stage=lambda k, n: stage(f"policies and planner: step {k} of {n}", 0.65 + 0.35 * k / max(n, 1)))
    actual: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for svc in cfg.services:
        per: dict[str, list[tuple[float, float]]] = {}
        for smp in rt.store.range(subject=svc.name, metric="weight", start=since, end=until):
            reg = dict(smp.tags).get("region")
            if reg is None:
                continue
            pts = per.setdefault(reg, [])
            if not pts or pts[-1][1] != smp.value:
                pts.append((smp.ts, smp.value))
        actual[svc.name] = per
    stage("done", 1.0)
    return {"since": since, "until": until, "steps": int(s.ts.size), "endpoints": list(s.endpoints),
            "actual": actual, **out, "cached_steps": s.cached_steps}


def engine_kw(cfg) -> dict:
    """The daemon's engine arguments beyond the harness settings (``daemon.start_predictor``): the what-if
    replays with the engine the daemon runs, not with the engine's defaults."""
    return {"trend_tau_s": cfg.predict.trend_tau_s, "drift": cfg.predict.drift}


def _settings(policy_file: Path, cfg):
    """The engine settings ``_engine_replay`` uses, and the model path (None: forecast only)."""
    from pfepo.evaluate.harness import settings_from_policy
    from pfepo.predict.classifier import resolve_model_path

    settings = settings_from_policy(policy_file)
    settings.horizon_s, settings.step_s = cfg.predict.horizon_s, cfg.predict.step_s
    model = resolve_model_path(cfg.predict.model_path) if cfg.predict.model_path else None
    return settings, (model if model is not None and model.is_file() else None)


def decide(cfg, baseline: dict, policyset, since: float, s: Series, skip_quiet: bool = True, stage=None) -> dict:
    """The daemon's decision maths at every replayed step: ``policy.engine.evaluate`` over the config's
    contexts with the replayed risk, forecasts and observations, then the real ``planner.Planner``.
    With ``skip_quiet``, the steps ``quiet_steps`` proves change nothing are not computed."""
    from pfepo.planner import Planner
    from pfepo.policy.context import contexts_from_config
    from pfepo.policy.engine import evaluate
    from pfepo.predict.prediction import Prediction

    contexts = contexts_from_config(cfg)
    planner = Planner(cfg)
    services = {svc.name for svc in cfg.services}
    current = {name: dict(w) for name, w in baseline.items()}
    would: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {reg: [(since, float(w))] for reg, w in current[name].items()} for name in services}
    acts: dict[str, float] = {}
    changes: list[dict] = []
    n = s.ts.size
    last = _carried(s.values)
    pred_r = np.round(s.predicted, 4)  # as PredictiveEngine.predict reports them
    regions = {reg.name: [s.endpoints.index(e.name) for e in reg.endpoints if e.name in s.endpoints]
               for reg in cfg.regions}
    region_up = {name: ~((s.up[:, idx] < 0.5).all(axis=1)) if idx else np.ones(n, dtype=bool)
                 for name, idx in regions.items()}
    quiet = quiet_steps(contexts, policyset, s, last, pred_r, region_up) if skip_quiet else np.zeros(n, dtype=bool)
    idle, skipped = False, 0
    for k in range(n):
        if stage is not None and k % 200 == 0:
            stage(k, n)
        if idle and quiet[k]:
            skipped += 1
            continue
        now = float(s.ts[k])
        obs, preds = {}, {}
        for e, ep in enumerate(s.endpoints):
            obs[ep] = {m: float(last[k, e, j]) for j, m in enumerate(s.metrics) if math.isfinite(last[k, e, j])}
            obs[ep]["health_up"] = float(s.up[k, e])
            preds[ep] = Prediction(endpoint=ep, ts=now, probability=float(s.prob[k, e]), horizon_s=cfg.predict.horizon_s,
                                   predicted={m: float(pred_r[k, e, j]) for j, m in enumerate(s.metrics)
                                              if math.isfinite(pred_r[k, e, j])})
        shares = {name: {reg: v / max(1, sum(w.values())) for reg, v in w.items()} for name, w in current.items()}
        decisions = evaluate(now, contexts, obs, preds, policyset, shares, False)
        for d in decisions:
            if d.level == "act" and d.endpoint not in acts:
                acts[d.endpoint] = now
        plan = planner.step(now, decisions, {name: bool(up[k]) for name, up in region_up.items()}, current)
        for ch in plan.changes:
            changes.append({"ts": now, "service": ch["service"], "region": ch["region"], "from": ch["from"],
                            "to": ch["to"], "reason": ch.get("reason", "")})
            would[ch["service"]][ch["region"]].append((now, float(ch["to"])))
        current = {name: dict(w) for name, w in plan.weights.items()}
        idle = skip_quiet and _planner_idle(planner, services)
    return {"would": would, "changes": changes, "acts": acts, "final": current, "skipped_steps": skipped}


def _carried(values: np.ndarray) -> np.ndarray:
    """(T, E, M) each metric's last finite value so far (NaN before the first): what the loop observes."""
    t = values.shape[0]
    idx = np.where(np.isfinite(values), np.arange(t)[:, None, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = np.take_along_axis(values, idx, axis=0)
    return out


def quiet_steps(contexts, policyset, s: Series, last: np.ndarray, predicted: np.ndarray,
                region_up: dict[str, np.ndarray]) -> np.ndarray:
    """(T,) steps at which no policy decision can reach ``act`` and every region is up.

    Why skipping them is exact: at such a step an idle planner (every region of every service in the
    normal phase at its baseline weight, nothing evicted, no drain hook open, no pending event:
    ``_planner_idle``) changes no weight and emits nothing. The one thing it updates is ``calm_since``
    of normal regions, which only a draining region reads, and a region starts draining only at a step
    where its risk reaches act, which clears ``calm_since`` in that same step. Steps with a possible act
    or a region down are computed, and so is every step after one that left the planner busy.

    "Can reach act" is an upper bound of ``policy.engine.evaluate_one``'s risk, vectorised over time: a
    criterion counts as fired when it fires on the value or lies within 1e-6 of its threshold, and the
    risk is compared with act less 1e-9; a wrong bound only costs a computed step, never a skipped one.
    """
    import operator

    from pfepo.policy.engine import _criterion
    from pfepo.policy.model import CONTEXT_ATTRS
    from pfepo.policy.policyset import PolicySet

    ops = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
           "!=": operator.ne}
    pset = policyset if isinstance(policyset, PolicySet) else PolicySet.of(policyset)
    n = s.ts.size
    eidx = {ep: i for i, ep in enumerate(s.endpoints)}
    midx = {m: j for j, m in enumerate(s.metrics)}
    possible = np.zeros(n, dtype=bool)
    nan = np.full(n, np.nan)
    for ctx in contexts:
        pol, _ = pset.select(ctx)
        if pol is None:
            continue
        e = eidx.get(ctx.endpoint)
        score = np.zeros(n)
        for c in pol.criteria:
            if c.metric in CONTEXT_ATTRS:
                fired = np.full(n, _criterion(c, ctx, {}, {}).fired)
            elif isinstance(c.threshold, str):
                continue
            else:
                fired = np.zeros(n, dtype=bool)
                j = midx.get(c.metric)
                if e is None:
                    obs = pred = nan
                else:
                    obs = s.up[:, e] if c.metric == "health_up" else last[:, e, j] if j is not None else nan
                    pred = predicted[:, e, j] if j is not None else nan
                for v, used in ((obs, c.apply_to in ("observed", "both")), (pred, c.apply_to in ("predicted", "both"))):
                    if used:
                        ok = np.isfinite(v)
                        with np.errstate(invalid="ignore"):
                            fired |= ok & (ops[c.op](v, c.threshold) | (np.abs(v - c.threshold) < 1e-6))
            score += c.weight * fired
        total = sum(c.weight for c in pol.criteria)
        score = score / total if total > 0 else np.zeros(n)
        p_pred = np.clip(np.nan_to_num(s.prob[:, e]), 0.0, 1.0) if e is not None else None
        mode = pol.risk.probability
        if mode == "criteria" or (mode == "auto" and p_pred is None):
            prob = score
        elif mode in ("prediction", "auto"):
            prob = p_pred if p_pred is not None else np.zeros(n)
        else:
            prob = score if p_pred is None else np.maximum(p_pred, score)
        imp = pol.risk.impact
        impact = getattr(imp.priority, ctx.priority, imp.priority.medium) * (
            min(1.0, ctx.nominal_share * ctx.region_count) if imp.by_share else 1.0)
        possible |= prob * impact * ctx.sla_weight >= pol.risk.thresholds.act - 1e-9
    all_up = np.ones(n, dtype=bool)
    for up in region_up.values():
        all_up &= up
    return ~possible & all_up


def _planner_idle(planner, services: set[str]) -> bool:
    """Every region of every service normal, at baseline, not evicted, no drain hook; nothing pending.
    (Reads the planner's own state: ``Planner`` has no public "idle" query.)"""
    from pfepo.planner.planner import NORMAL

    if planner._pending or set(planner._svc) != services:
        return False
    return all(ss.weights == ss.baseline and all(st.phase == NORMAL and not st.evicted and not st.hooked
                                                 for st in ss.states.values())
               for ss in planner._svc.values())


def apply_file(reloader, target: Path, text: str) -> tuple[bool, list[str]]:
    """Write ``text`` to ``target`` atomically and reload; on refusal restore the old file and reload."""
    old = target.read_bytes() if target.exists() else None

    def write(data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    write(text.encode("utf-8"))
    if reloader.reload():
        return True, []
    problems = list(reloader.last_error)
    if old is not None:
        write(old)
    else:
        target.unlink(missing_ok=True)
    reloader.reload()
    return False, problems
