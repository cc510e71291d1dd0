"""The evaluation harness behind ``pfepo evaluate``: replay traces, alarm, score predictive vs reactive.

Both detectors see the same replay in the same run:

- predictive: the PredictiveEngine's P(failure within horizon) at every step; risk = probability x
  impact x sla_weight with impact = sla_weight = 1 (trace endpoints carry no context); alarm when the
  risk reaches the policy's ``act`` threshold.
- reactive: the classic threshold alarm -- an observed value of some metric above its policy criterion
  threshold for ``debounce`` consecutive samples of that endpoint.

The policy (``--policy FILE``) supplies ``act``, the criterion thresholds (numeric ``>``/``>=``
criteria) and the shift ramp (``shift_traffic`` step percent, interval, maximum) used for the shifted
share. The policy used is the highest-priority one with empty selectors (a catch-all), else the
highest-priority one. Without a file: the defaults below, which mirror policies/default.yaml.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pfepo.evaluate.metrics import KEYS, ShiftModel, Tally, score_endpoint
from pfepo.evaluate.replay import Replay, replay
from pfepo.predict.classifier import shipped_model_path
from pfepo.predict.engine import DEFAULT_THRESHOLDS, PredictiveEngine
from pfepo.traces.csv import Trace

DEFAULT_MODEL = shipped_model_path()


@dataclass
class Settings:
    act: float = 0.4
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    shift: ShiftModel = ShiftModel(step_pct=10, interval_s=30, max_pct=90)
    debounce: int = 3
    horizon_s: float = 300.0
    step_s: float = 10.0
    policy_name: str = "built-in defaults (policies/default.yaml)"
    policy_doc: dict | None = None  # the policy as a dict, for the planner; None = built from the above
    use_planner: bool = True
    shift_source: str = ""  # filled by the run: "planner" or the ramp model's description

    def planner_doc(self) -> dict:
        from pfepo.evaluate.planner_shift import default_policy_doc

        if self.policy_doc is not None:
            return self.policy_doc
        return default_policy_doc(self.act, self.shift.step_pct, self.shift.interval_s, self.shift.max_pct)


def settings_from_policy(path: str | Path) -> Settings:
    """Read act threshold, criterion thresholds and shift ramp from a policy file (ConfigError if bad)."""
    from pfepo.policy.loader import load_policies

    ps = load_policies([path])
    pols = ps.ordered
    if not pols:
        raise ValueError(f"{path}: no enabled policy")
    catch_all = [p for p in pols if not any(p.match.field_values().values())]
    pol = (catch_all or pols)[0]
    thr: dict[str, float] = {}
    for c in pol.criteria:
        if c.op in (">", ">=") and isinstance(c.threshold, int | float) and not isinstance(c.threshold, bool):
            thr[c.metric] = min(float(c.threshold), thr.get(c.metric, math.inf))
    s = Settings(act=float(pol.risk.thresholds.act), policy_name=f"{pol.name} ({path})",
                 policy_doc=pol.model_dump(mode="json"))
    if thr:
        s.thresholds = {**{k: v for k, v in DEFAULT_THRESHOLDS.items() if k not in thr}, **thr}
    st = pol.actions.shift_traffic
    if st is not None:
        s.shift = ShiftModel(step_pct=st.step_percent, interval_s=st.step_interval_s, max_pct=st.max_percent)
    return s


def reactive_alarm(values: np.ndarray, present: np.ndarray, thr: np.ndarray, debounce: int) -> np.ndarray:
    """(T,) alarm for one endpoint: some metric above its threshold for ``debounce`` consecutive rows."""
    with np.errstate(invalid="ignore"):
        over = (values > thr[None, :]) & np.isfinite(thr)[None, :]
    out = np.zeros(values.shape[0], dtype=bool)
    run = np.zeros(values.shape[1], dtype=int)
    rows = np.flatnonzero(present)
    for k in rows:
        run = np.where(over[k], run + 1, 0)
        out[k] = bool((run >= debounce).any())
    # carry the state across steps without a row for this endpoint
    idx = np.where(present, np.arange(out.size), 0)
    np.maximum.accumulate(idx, out=idx)
    return out[idx] & (idx >= rows[0] if rows.size else False)


@dataclass
class TraceResult:
    path: str
    endpoints: int
    events: int
    predictive: Tally
    reactive: Tally
    probabilities: np.ndarray | None = None
    shift_source: str = ""
    by_forecast: int = 0  # alarm onsets driven by the forecast evidence (a breach forecast, not yet observed)
    by_observed: int = 0  # ... by a breach already under way (observed above the threshold for LEVEL_S)
    by_classifier: int = 0  # ... by the classifier (it raised risk above the forecast's)


def make_engine(settings: Settings, model_path: str | Path | None) -> PredictiveEngine:
    return PredictiveEngine(
        horizon_s=settings.horizon_s, thresholds=settings.thresholds, model_path=model_path, step_s=settings.step_s
    )


def _planner(settings: Settings):
    """The real planner if it imports and runs; else None (the documented ramp model is used)."""
    if not settings.use_planner:
        return None
    try:
        from pfepo.evaluate.planner_shift import PlannerShift

        ps = PlannerShift(settings.planner_doc())
        ps.shifted(np.array([0.0, 10.0]), np.array([1.0, 1.0]), np.array([0.0, 1.0]))
        return ps
    except Exception as exc:  # noqa: BLE001 - any planner problem falls back to the documented ramp
        settings.shift_source = f"ramp model (planner unavailable: {type(exc).__name__}: {exc})"
        return None


def evaluate_trace(trace: Trace, settings: Settings, model_path: str | Path | None, keep_probs: bool = False) -> TraceResult:
    eng = make_engine(settings, model_path)
    r: Replay = replay(trace, eng)
    prob, fcast, clf = r.parts(eng)
    thr = np.array([settings.thresholds.get(m, math.nan) for m in r.metrics])
    pred, reac = Tally(), Tally()
    n_by_f = n_by_o = n_by_c = 0
    planner = _planner(settings)
    if planner is not None:
        settings.shift_source = "planner (pfepo.planner.Planner, one service per failing endpoint + a spare region)"
    elif not settings.shift_source:
        s = settings.shift
        settings.shift_source = f"ramp model ({s.step_pct:g}% per {s.interval_s:g} s up to {s.max_pct:g}%)"
    for k in range(len(r.endpoints)):
        up = r.up[:, k]
        pres = r.present[:, k]
        ra = reactive_alarm(r.values[:, k], pres, thr, settings.debounce)
        has_event = bool(np.any((up[:-1] == 1) & (up[1:] == 0)))
        sp = sr = None
        if planner is not None and has_event:
            sp = planner.shifted(r.ts, up, prob[:, k])
            sr = planner.shifted(r.ts, up, ra.astype(float))
        alarm = prob[:, k] >= settings.act
        pred.add(score_endpoint(r.ts, up, alarm, pres, shift=settings.shift, shifted=sp))
        onset = np.flatnonzero(alarm & ~np.r_[False, alarm[:-1]] & (up == 1))
        raised = prob[onset, k] > fcast[onset, k] + 1e-12 if clf is not None else np.zeros(onset.size, dtype=bool)
        seen = ~raised & r.observed[onset, k] if r.observed is not None else np.zeros(onset.size, dtype=bool)
        n_by_c += int(raised.sum())
        n_by_o += int(seen.sum())
        n_by_f += int(onset.size - raised.sum() - seen.sum())
        reac.add(score_endpoint(r.ts, up, ra, pres, shift=settings.shift, shifted=sr))
    return TraceResult(
        trace.path, len(r.endpoints), pred.events, pred, reac, prob if keep_probs else None, settings.shift_source,
        by_forecast=n_by_f, by_observed=n_by_o, by_classifier=n_by_c,
    )


def _job(args: tuple) -> TraceResult:
    path, settings, model_path = args
    from pfepo.traces.csv import read_trace

    return evaluate_trace(read_trace(path), settings, model_path)


def evaluate_paths(paths: list, settings: Settings, model_path: str | Path | None, jobs: int = 1) -> list[TraceResult]:
    """Evaluate validated trace files, in ``jobs`` worker processes when > 1 (results in input order)."""
    if jobs <= 1 or len(paths) <= 1:
        return [_job((str(p), settings, model_path)) for p in paths]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs) as ex:
        return list(ex.map(_job, [(str(p), settings, model_path) for p in paths]))


def summarise(results: list[TraceResult]) -> dict:
    pred, reac = Tally(), Tally()
    for r in results:
        pred.add(r.predictive)
        reac.add(r.reactive)
    out = {"events": pred.events, "predictive": pred.summary(), "reactive": reac.summary(),
           "alarm_onsets_by": {"forecast": sum(r.by_forecast for r in results),
                               "observed": sum(r.by_observed for r in results),
                               "classifier": sum(r.by_classifier for r in results)}}
    assert tuple(out["predictive"]) == KEYS
    return out


def table(summary: dict, results: list[TraceResult] | None = None) -> str:
    """A human-readable comparison table."""
    lines = [f"failure events: {summary['events']}", ""]
    head = f"{'metric':<26}{'predictive':>12}{'reactive':>12}"
    lines += [head, "-" * len(head)]
    for k in KEYS:
        a, b = summary["predictive"][k], summary["reactive"][k]
        lines.append(f"{k:<26}{_fmt(a):>12}{_fmt(b):>12}")
    if results:
        lines += ["", f"{'trace':<40}{'events':>7}{'pred det':>9}{'pred FA':>8}{'reac det':>9}{'reac FA':>8}"
                      f"{'onsets by forecast/observed/classifier':>40}"]
        for r in results:
            pf = r.predictive.episodes - r.predictive.true_episodes
            rf = r.reactive.episodes - r.reactive.true_episodes
            lines.append(
                f"{Path(r.path).name[:39]:<40}{r.events:>7}{r.predictive.detected:>9}{pf:>8}{r.reactive.detected:>9}{rf:>8}"
                f"{f'{r.by_forecast}/{r.by_observed}/{r.by_classifier}':>40}"
            )
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
