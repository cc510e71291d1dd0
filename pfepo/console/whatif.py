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

from pfepo.console.views import METRICS

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


def _per_step(rows: list[tuple[float, str, float]], step_s: float) -> pd.DataFrame:
    """(ts, metric, value) rows -> one row per step: each metric's mean in the step (the engine itself
    averages samples into steps, so a 3 s loss burst inside a 10 s step still shows), health's last value."""
    df = pd.DataFrame(rows, columns=["ts", "metric", "value"])
    df["ts"] = np.floor(df["ts"] / step_s) * step_s
    health = df["metric"] == "health_up"
    wide = df[~health].pivot_table(index="ts", columns="metric", values="value", aggfunc="mean")
    if health.any():
        wide = wide.join(df[health].pivot_table(index="ts", columns="metric", values="value", aggfunc="last"),
                         how="outer")
    return wide


def history_trace(rt, since: float, until: float, step_s: float):
    """The history store as a trace, one row per endpoint per ``step_s`` (see ``_per_step``): the
    endpoint's own signals, and its region uplink's network metrics where it has none, as the decision
    loop does."""
    from pfepo.traces.csv import Trace

    frames = []
    for r in rt.cfg.regions:
        link = [(s.ts, s.metric, s.value) for s in rt.store.range(subject=f"uplink:{r.name}", start=since, end=until)
                if s.metric in UPLINK]
        link_w = _per_step(link, step_s) if link else None
        for e in r.endpoints:
            own = [(s.ts, s.metric, s.value) for s in rt.store.range(subject=e.name, start=since, end=until)
                   if s.metric in METRICS]
            own_w = _per_step(own, step_s) if own else None
            if own_w is None and link_w is None:
                continue
            wide = own_w if link_w is None else link_w if own_w is None else own_w.combine_first(link_w)
            wide = wide.reset_index()
            wide.insert(1, "endpoint", e.name)
            frames.append(wide)
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True).sort_values(["ts", "endpoint"], kind="stable")
    frame["up"] = frame["health_up"].fillna(1.0) if "health_up" in frame else 1.0
    frame = frame.drop(columns=[c for c in ("health_up",) if c in frame]).reset_index(drop=True)
    metrics = [c for c in frame.columns if c not in ("ts", "endpoint", "up")]
    return Trace(path="history", frame=frame, metrics=metrics, has_up=True)


def _engine_replay(trace, policy_file: Path, cfg, on_step=None):
    """``pfepo evaluate``'s engine path on ``trace``: settings from the policy, the engine with the daemon's
    horizon, step and model, the causal replay. Returns (Replay, risk (T, E), settings).
    ``on_step(k)`` is called before the engine's k-th snapshot (progress)."""
    from pfepo.evaluate.harness import make_engine, settings_from_policy
    from pfepo.evaluate.replay import replay

    settings = settings_from_policy(policy_file)
    settings.horizon_s, settings.step_s = cfg.predict.horizon_s, cfg.predict.step_s
    from pfepo.predict.classifier import resolve_model_path

    model = resolve_model_path(cfg.predict.model_path) if cfg.predict.model_path else None
    model = model if model is not None and model.is_file() else None
    eng = make_engine(settings, model)
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
    """At most one replay at a time per daemon (they are CPU-bound); results kept for the last few."""

    def __init__(self, keep: int = 8):
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


def replay_policy(rt, policyset, policy_file: Path, hours: float, job: Job | None = None) -> dict:
    """Replay the last ``hours`` of history through the engine, the policies and the planner.

    Returns per service: the weights the planner would have set (steps), the weights the daemon set
    (history), and per endpoint the first step at which a policy would have acted.
    """
    from pfepo.planner import Planner
    from pfepo.policy.context import contexts_from_config
    from pfepo.policy.engine import evaluate
    from pfepo.predict.prediction import Prediction

    def stage(name: str, p: float) -> None:
        if job is not None:
            job.stage, job.progress = name, p

    cfg = rt.cfg
    until = time.time()
    since = until - hours * 3600
    stage("reading history", 0.02)
    trace = history_trace(rt, since, until, cfg.predict.step_s)
    if trace is None:
        return {"since": since, "until": until, "steps": 0, "services": {}, "acts": {}, "note": "no history"}
    n_steps = int(trace.frame["ts"].nunique())

    def engine_step(k: int) -> None:
        if k % 20 == 0:
            stage(f"predictor: step {k} of {n_steps}", 0.1 + 0.4 * k / max(n_steps, 1))

    r, prob, _settings = _engine_replay(trace, policy_file, cfg, engine_step)
    contexts = contexts_from_config(cfg)
    planner = Planner(cfg)
    services = {s.name: s for s in cfg.services}
    current = {s: dict(w) for s, w in rt.state.baseline_weights().items()}
    first = {s: dict(current[s]) for s in current}
    would: dict[str, dict[str, list[tuple[float, float]]]] = {
        s: {reg: [(since, float(w))] for reg, w in first[s].items()} for s in services}
    acts: dict[str, float] = {}
    changes: list[dict] = []
    last = np.full(r.values.shape[1:], np.nan)
    n = r.ts.size
    for k in range(n):
        if k % 200 == 0:
            stage(f"policies and planner: step {k} of {n}", 0.5 + 0.5 * k / max(n, 1))
        row = r.values[k]
        seen = np.isfinite(row)
        last = np.where(seen, row, last)
        now = float(r.ts[k])
        obs, preds = {}, {}
        for e, ep in enumerate(r.endpoints):
            obs[ep] = {m: float(last[e, j]) for j, m in enumerate(r.metrics) if math.isfinite(last[e, j])}
            obs[ep]["health_up"] = float(r.up[k, e])
            preds[ep] = Prediction(endpoint=ep, ts=now, probability=float(prob[k, e]), horizon_s=cfg.predict.horizon_s)
        shares = {s: {reg: v / max(1, sum(w.values())) for reg, v in w.items()} for s, w in current.items()}
        decisions = evaluate(now, contexts, obs, preds, policyset, shares, False)
        for d in decisions:
            if d.level == "act" and d.endpoint not in acts:
                acts[d.endpoint] = now
        health = {}
        for reg in cfg.regions:
            ups = [float(r.up[k, r.endpoints.index(e.name)]) for e in reg.endpoints if e.name in r.endpoints]
            health[reg.name] = not (ups and all(u < 0.5 for u in ups))
        plan = planner.step(now, decisions, health, current)
        for ch in plan.changes:
            changes.append({"ts": now, "service": ch["service"], "region": ch["region"], "from": ch["from"],
                            "to": ch["to"], "reason": ch.get("reason", "")})
            would[ch["service"]][ch["region"]].append((now, float(ch["to"])))
        current = {s: dict(w) for s, w in plan.weights.items()}
    actual: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for s in services:
        per: dict[str, list[tuple[float, float]]] = {}
        for smp in rt.store.range(subject=s, metric="weight", start=since, end=until):
            reg = dict(smp.tags).get("region")
            if reg is None:
                continue
            pts = per.setdefault(reg, [])
            if not pts or pts[-1][1] != smp.value:
                pts.append((smp.ts, smp.value))
        actual[s] = per
    stage("done", 1.0)
    return {"since": since, "until": until, "steps": int(n), "endpoints": list(r.endpoints),
            "would": would, "actual": actual, "changes": changes, "acts": acts, "final": current}


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
