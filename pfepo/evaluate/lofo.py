"""Leave-one-family-out evaluation and training of the shipped model: ``python -m pfepo.evaluate.lofo``.

    python -m pfepo.evaluate.lofo --train-seeds 1-4 --test-seeds 101-102 --jobs 2 --cache lofo-cache \\
        --markdown lofo.md --ship pfepo/predict/models/pfepo-predict.joblib

1. Generates the pfepo.traces.families traces for the train and the test seeds (disjoint seeds).
2. Replays every trace once through a forecast-only engine (features do not depend on the classifier)
   and keeps one feature row per closed model step.
3. For each failure family F: trains a classifier on the training traces of every family except F and
   evaluates the combined risk on the *test* traces of F (recall, lead) and on all benign test traces
   (false alarms per endpoint-day), next to the forecast-only (cold start) and the reactive baseline.
4. ``--ship``: trains on all training families and saves the model with its families in the sidecar.
5. ``--sampling``: the sampling-rate table: the test seeds regenerated at 1, 5, 10 and 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from pfepo.evaluate.dataset import labels  # noqa: E402
from pfepo.evaluate.harness import Settings, make_engine, reactive_alarm  # noqa: E402
from pfepo.evaluate.metrics import Tally, score_endpoint  # noqa: E402
from pfepo.evaluate.replay import replay  # noqa: E402
from pfepo.evaluate.train import parse_seeds  # noqa: E402
from pfepo.predict.classifier import FailureClassifier  # noqa: E402
from pfepo.predict.core import combine  # noqa: E402
from pfepo.traces.csv import read_trace  # noqa: E402
from pfepo.traces.families import BENIGN_FAMILIES, FAILURE_FAMILIES, family_of, generate_families  # noqa: E402


@dataclass
class Replayed:
    """One trace replayed: feature rows at closed model steps, and what scoring needs at every row."""

    path: str
    family: str
    ts: np.ndarray  # (T,)
    up: np.ndarray  # (T, E)
    present: np.ndarray  # (T, E)
    reactive: np.ndarray  # (T, E) reactive alarm
    row: np.ndarray  # (T,) index of the feature row in effect at each t
    x: np.ndarray  # (R, E, F) float32
    breach: np.ndarray  # (R, E) forecast evidence (max over metrics)
    snap_up: np.ndarray  # (R, E)
    y: np.ndarray  # (R, E) label: a failure starts within the horizon
    keep: np.ndarray  # (R, E) usable training row


def replay_one(path: str) -> Replayed:
    settings = Settings()
    eng = make_engine(settings, None)
    tr = read_trace(path)
    r = replay(tr, eng)
    fresh = r.fresh.copy()
    fresh[0] = True
    rows = np.flatnonzero(fresh)
    row = np.cumsum(fresh) - 1
    thr = np.array([settings.thresholds.get(m, np.nan) for m in r.metrics])
    reac = np.stack([reactive_alarm(r.values[:, k], r.present[:, k], thr, settings.debounce)
                     for k in range(len(r.endpoints))], axis=1)
    y = labels(r.ts, r.up, eng.horizon_s)[rows]
    keep = (r.up[rows] == 1) & r.present[rows]
    return Replayed(path, family_of(path), r.ts, r.up, r.present, reac, row, r.x[rows].astype(np.float32),
                    np.nan_to_num(r.breach[rows].max(axis=2)), r.snap_up[rows], y, keep)


def _train(parts: list[Replayed], seed: int = 0) -> FailureClassifier:
    eng = make_engine(Settings(), None)
    x = np.concatenate([p.x[p.keep] for p in parts]).astype(float)
    y = np.concatenate([p.y[p.keep] for p in parts]).astype(int)
    g = np.concatenate([np.full(int(p.keep.sum()), i) for i, p in enumerate(parts)])
    window = {"families": sorted({p.family for p in parts}), "sources": [Path(p.path).name for p in parts]}
    clf = FailureClassifier.train(x, y, g, eng.names, eng.horizon_s, eng.step_s, window, seed=seed)
    clf.info.params["thresholds"] = Settings().thresholds
    return clf


def _risk(p: Replayed, clf: FailureClassifier | None) -> np.ndarray:
    r, e, f = p.x.shape
    c = clf.predict_proba(p.x.reshape(r * e, f).astype(float)).reshape(r, e) if clf is not None else None
    risk = combine(p.breach, c)
    risk = np.where(p.snap_up == 0, 1.0, risk)
    return risk[p.row]


def _score(parts: list[Replayed], clf: FailureClassifier | None, act: float, which: str) -> dict:
    tally = Tally()
    for p in parts:
        alarm = p.reactive if which == "reactive" else _risk(p, clf) >= act
        for k in range(p.up.shape[1]):
            tally.add(score_endpoint(p.ts, p.up[:, k], alarm[:, k], p.present[:, k]))
    s = tally.summary()
    s["events"] = tally.events
    s["endpoint_days"] = round(tally.endpoint_days, 2)
    return s


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) and abs(v) < 10 else f"{v:.0f}" if isinstance(v, float) else str(v)


def _replay_all(paths: list[Path], jobs: int) -> list[Replayed]:
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as ex:
        return list(ex.map(replay_one, [str(p) for p in paths]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pfepo.evaluate.lofo", description=__doc__.split("\n")[0])
    ap.add_argument("--train-seeds", default="1-4")
    ap.add_argument("--test-seeds", default="101-102")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", default="lofo-cache", help="folder for the generated traces")
    ap.add_argument("--markdown", help="write the tables here")
    ap.add_argument("--json", dest="json_out", help="write all figures here")
    ap.add_argument("--ship", help="train on all training families and save the model here")
    ap.add_argument("--sampling", action="store_true", help="also the 1/5/10/60 s table (test seeds regenerated)")
    ap.add_argument("--act", type=float, default=Settings().act)
    ap.add_argument("--reuse", action="store_true", help="reuse the replays saved in --cache by an earlier run")
    ap.add_argument("--skip-lofo", action="store_true", help="only the benign, shipped-model and sampling tables")
    ap.add_argument("--sampling-seeds", help="seeds for the sampling-rate table (default: the test seeds)")
    args = ap.parse_args(argv)
    t0 = time.time()
    cache = Path(args.cache)
    import joblib

    saved = cache / "replays.joblib"
    if args.reuse and saved.is_file():
        train, test = joblib.load(saved)
    else:
        train_p = [p for s in parse_seeds(args.train_seeds) for p in generate_families(cache / "train", s)]
        test_p = [p for s in parse_seeds(args.test_seeds) for p in generate_families(cache / "test", s)]
        train = _replay_all(train_p, args.jobs)
        test = _replay_all(test_p, args.jobs)
        joblib.dump((train, test), saved)
    print(f"replayed {len(train)} training and {len(test)} test traces in {time.time() - t0:.0f} s", flush=True)
    benign = [p for p in test if p.family in BENIGN_FAMILIES]
    out: dict = {"train_seeds": args.train_seeds, "test_seeds": args.test_seeds, "act": args.act, "lofo": {}}
    lines = ["| held-out family | events | recall (lofo model) | median lead s | p10 lead s | FA/endpoint-day, benign | "
             "recall forecast-only | median lead forecast-only | recall reactive | median lead reactive |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for fam in () if args.skip_lofo else FAILURE_FAMILIES:
        clf = _train([p for p in train if p.family != fam])
        held = [p for p in test if p.family == fam]
        a = _score(held, clf, args.act, "predictive")
        fa = _score(benign, clf, args.act, "predictive")
        fo = _score(held, None, args.act, "predictive")
        re = _score(held, None, args.act, "reactive")
        out["lofo"][fam] = {"predictive": a, "benign": fa, "forecast_only": fo, "reactive": re}
        lines.append(f"| {fam} | {a['events']} | {_fmt(a['recall'])} | {_fmt(a['median_lead_s'])} | {_fmt(a['p10_lead_s'])} | "
                     f"{_fmt(fa['false_alarms_per_day'])} | {_fmt(fo['recall'])} | {_fmt(fo['median_lead_s'])} | "
                     f"{_fmt(re['recall'])} | {_fmt(re['median_lead_s'])} |")
        print(lines[-1], flush=True)
    full = _train(train)
    fa_lines = ["| benign family (test seeds) | endpoint-days | FA/endpoint-day: combined (all-family model) | "
                "forecast-only (cold start) | reactive |", "|---|---|---|---|---|"]
    out["benign"] = {}
    for fam in (*BENIGN_FAMILIES, "all benign"):
        sel = benign if fam == "all benign" else [p for p in benign if p.family == fam]
        c, f, r = (_score(sel, full, args.act, "predictive"), _score(sel, None, args.act, "predictive"),
                   _score(sel, None, args.act, "reactive"))
        out["benign"][fam] = {"combined": c, "forecast_only": f, "reactive": r}
        fa_lines.append(f"| {fam} | {c['endpoint_days']} | {_fmt(c['false_alarms_per_day'])} | "
                        f"{_fmt(f['false_alarms_per_day'])} | {_fmt(r['false_alarms_per_day'])} |")
    failing = [p for p in test if p.family in FAILURE_FAMILIES]
    out["all_failure_families"] = {d: _score(failing, full if d == "combined" else None, args.act,
                                             "reactive" if d == "reactive" else "predictive")
                                   for d in ("combined", "forecast_only", "reactive")}
    all_lines = ["| all failure families | events | recall | precision | FA/endpoint-day (failure traces) | median lead s | "
                 "p10 lead s |", "|---|---|---|---|---|---|---|"]
    for d, v in out["all_failure_families"].items():
        all_lines.append(f"| {d} | {v['events']} | {_fmt(v['recall'])} | {_fmt(v['precision'])} | "
                         f"{_fmt(v['false_alarms_per_day'])} | {_fmt(v['median_lead_s'])} | {_fmt(v['p10_lead_s'])} |")
    text = "\n".join(["Leave-one-family-out (test seeds " + args.test_seeds + "):", "", *lines, "",
                      "All failure families (test seeds), all-family model:", "", *all_lines, "",
                      "False alarms on benign test traces:", "", *fa_lines])
    if args.sampling:
        rates = ["| sampling s | events | recall | median lead s | FA/endpoint-day (benign) | recall forecast-only | "
                 "FA/endpoint-day forecast-only | recall reactive | median lead reactive s |",
                 "|---|---|---|---|---|---|---|---|---|"]
        out["sampling"] = {}
        for dt in (1.0, 5.0, 10.0, 60.0):
            seeds = args.sampling_seeds or args.test_seeds
            saved_dt = cache / f"replays-dt{dt:g}-{seeds}.joblib"
            if args.reuse and saved_dt.is_file():
                parts = joblib.load(saved_dt)
            else:
                ps = [p for s in parse_seeds(seeds) for p in generate_families(cache / f"dt{dt:g}", s, dt=dt)]
                parts = _replay_all(ps, args.jobs)
                joblib.dump(parts, saved_dt)
            fail = [p for p in parts if p.family in FAILURE_FAMILIES]
            ben = [p for p in parts if p.family in BENIGN_FAMILIES]
            a, b, fo = (_score(fail, full, args.act, "predictive"), _score(ben, full, args.act, "predictive"),
                        _score(fail, None, args.act, "predictive"))
            fb, re = _score(ben, None, args.act, "predictive"), _score(fail, None, args.act, "reactive")
            out["sampling"][f"{dt:g}"] = {"failures": a, "benign": b, "forecast_only": fo, "forecast_only_benign": fb,
                                          "reactive": re}
            rates.append(f"| {dt:g} | {a['events']} | {_fmt(a['recall'])} | {_fmt(a['median_lead_s'])} | "
                         f"{_fmt(b['false_alarms_per_day'])} | {_fmt(fo['recall'])} | {_fmt(fb['false_alarms_per_day'])} | "
                         f"{_fmt(re['recall'])} | {_fmt(re['median_lead_s'])} |")
            print(rates[-1], flush=True)
        text += (f"\n\nSampling rate (seeds {args.sampling_seeds or args.test_seeds}, every trace regenerated at one "
                 "interval, the all-family model):\n\n" + "\n".join(rates))
    print(text)
    if args.ship:
        full.save(args.ship)
        print(f"saved {args.ship}: families {full.info.training_window['families']}; validation {full.info.validation}")
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
