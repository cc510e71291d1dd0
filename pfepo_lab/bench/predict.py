"""``pfepo bench predict``: series scored per second per core, vs a naive per-series statsmodels refit.

Setup: endpoints with 5 metric series each, one sample per series per second (1 s sampling, model step
1 s, horizon 300 s), synthetic noisy levels with drifts. Per tick the engine ingests every sample
(``observe_arrays``), advances the ARIMA bank and features, computes breach probabilities and scores.
Statsmodels refits run inside the measured ticks (2 per tick, the default), so their cost is
included; a second run per size with refits off shows the vectorised update alone. When a classifier
is available (the shipped model by default) the cost of scoring every endpoint's feature row with it
is timed too (the shipped model is trained for 10 s steps, so only its cost is meaningful here). The naive baseline refits SARIMAX(1,1,1) on the last 120 samples and forecasts for every new
sample of a series; it is timed on a small subset and extrapolated (stated in the output).

``pfepo predict`` throughput (``--rows``): a series of that many rows (5-minute sampling, daily cycle,
noise, a level shift) is written as a CSV with ISO timestamps and scored end to end (read, repair, score,
write; process start-up excluded) by the current code, and, in the same run, the scorer shipped before
the shared core (pfepo_lab.bench._legacy_univariate) on ``--legacy-rows`` rows of the same series.

BLAS/OpenMP threads are limited to 1 (threadpoolctl at run time, plus OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS for child libraries), so numbers are per core.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("predict", help="prediction throughput: series scored/s/core vs naive statsmodels refit",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("--json", metavar="OUT", dest="json_out", help="write results as JSON")
    p.add_argument("--series", type=int, nargs="+", default=[1000, 10000], help="series counts (default 1000 10000)")
    p.add_argument("--ticks", type=int, default=60, help="measured ticks (seconds of data) per size (default 60)")
    p.add_argument("--warmup", type=int, default=130, help="ticks before measuring (default 130: past first fits)")
    p.add_argument("--naive-series", type=int, default=10, help="series in the naive refit subset (default 10)")
    p.add_argument("--model", metavar="PATH", help="classifier to time scoring with (default: the shipped model)")
    p.add_argument("--rows", type=int, default=200_000, help="rows for the pfepo predict throughput (default 200000)")
    p.add_argument("--legacy-rows", type=int, default=3000, help="rows for the previous scorer (default 3000)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed passes of pfepo predict and of the previous scorer; the median is reported, every "
                        "pass is listed (default 3: a shared machine swings between passes)")
    p.set_defaults(func=run)


def run(args) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        try:
            res = _bench(args)
        except (OSError, ValueError) as exc:
            print(f"pfepo bench predict: {exc}", file=sys.stderr)
            return 2
    print(json.dumps(res, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


def _data(rng, e: int, m: int):

    base = rng.uniform(10, 100, (e, m))
    drift = rng.normal(0, 0.002, (e, m)) * base

    def tick(k: int):
        return base + drift * k + rng.normal(0, 1, (e, m)) * 0.05 * base

    return tick


def _bench(args) -> dict:
    import numpy as np

    from pfepo.evaluate.harness import DEFAULT_MODEL
    from pfepo.predict.classifier import FailureClassifier
    from pfepo.predict.engine import PredictiveEngine

    out: dict = {"sampling_s": 1.0, "model_step_s": 1.0, "horizon_s": 300.0, "metrics_per_endpoint": 5,
                 "threads": 1, "sizes": []}
    rng = np.random.default_rng(0)
    clf = None
    model_path = args.model or (DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None)
    if model_path:
        clf = FailureClassifier.load(model_path)
    for n, per_tick in [(n, f) for n in args.series for f in (2, 0)]:
        e = max(1, n // 5)
        eng = PredictiveEngine(horizon_s=300.0, step_s=1.0, fits_per_step=per_tick)
        idx = eng.ensure([f"ep{i}" for i in range(e)])
        tick = _data(rng, e, eng.m)
        t0 = 1_767_225_600.0
        for k in range(args.warmup):
            eng.observe_arrays(t0 + k, idx, tick(k))
            eng.snapshot(t0 + k)
        fits0 = eng.stats["fits"] + eng.stats["fit_skipped"]
        times, probs = [], None
        for k in range(args.warmup, args.warmup + args.ticks):
            vals = tick(k)
            s = time.perf_counter()
            eng.observe_arrays(t0 + k, idx, vals)
            snap = eng.snapshot(t0 + k)
            probs = eng.score(snap.x, snap.breach, snap.up)
            times.append(time.perf_counter() - s)
        fits = eng.stats["fits"] + eng.stats["fit_skipped"] - fits0
        tt = np.array(times)
        row = {
            "series": e * eng.m,
            "fits_per_tick": per_tick,
            "endpoints": e,
            "ticks": args.ticks,
            "mean_tick_ms": round(1000 * tt.mean(), 3),
            "p99_tick_ms": round(1000 * np.percentile(tt, 99), 3),
            "series_per_s_per_core": round(e * eng.m / tt.mean()),
            "refits_in_measured_ticks": int(fits),
            "memory_bytes_per_series": round(eng.memory_bytes() / (e * eng.m)),
            "scorer": "forecast-only",
            "max_probability": round(float(probs.max()), 4) if probs is not None else None,
        }
        if clf is not None and len(clf.info.feature_names) == snap.x.shape[1]:
            s = time.perf_counter()
            for _ in range(5):
                clf.predict_proba(snap.x)
            row["classifier_ms_per_tick"] = round(1000 * (time.perf_counter() - s) / 5, 3)
            row["series_per_s_per_core_with_classifier"] = round(
                e * eng.m / (tt.mean() + row["classifier_ms_per_tick"] / 1000)
            )
        # Full predict(): Prediction objects (and drivers) for every endpoint, as the daemon gets them.
        s = time.perf_counter()
        k = args.warmup + args.ticks
        eng.observe_arrays(t0 + k, idx, tick(k))
        preds = eng.predict(t0 + k)
        row["predict_call_ms"] = round(1000 * (time.perf_counter() - s), 3)
        row["predictions"] = len(preds)
        out["sizes"].append(row)
    out["naive"] = _naive(args.naive_series, rng)
    out["univariate"] = _univariate(args.rows, args.legacy_rows, max(1, args.repeats))
    with_fits = [r for r in out["sizes"] if r["fits_per_tick"] > 0]
    best = max(r["series_per_s_per_core"] for r in with_fits)
    out["speedup_vs_naive"] = {str(r["series"]): round(r["series_per_s_per_core"] / out["naive"]["series_per_s_per_core"])
                               for r in with_fits}
    out["target"] = {"series_per_s_per_core": 10000, "speedup": 100, "met": bool(
        all(r["series_per_s_per_core"] >= 10000 for r in with_fits)
        and all(v >= 100 for v in out["speedup_vs_naive"].values()))}
    out["best_series_per_s_per_core"] = best
    return out


def _naive(n: int, rng) -> dict:
    """Per new sample: refit SARIMAX(1,1,1) on the last 120 samples and forecast 300 steps."""
    import warnings

    import numpy as np
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = 50 + np.cumsum(rng.normal(0, 0.3, (n, 200)), axis=1) + rng.normal(0, 1, (n, 200))
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n):
            for k in range(3):
                w = y[i, 60 + k : 180 + k]
                s = time.perf_counter()
                res = SARIMAX(w, order=(1, 1, 1)).fit(disp=False)
                res.get_forecast(300).summary_frame()
                times.append(time.perf_counter() - s)
    per = float(np.mean(times))
    return {
        "method": "SARIMAX(1,1,1) refit on last 120 samples + 300-step forecast with intervals, per sample",
        "timed_series": n,
        "samples_per_series": 3,
        "mean_ms_per_sample": round(1000 * per, 3),
        "series_per_s_per_core": round(1 / per, 1),
        "note": f"timed on {n} series x 3 samples and extrapolated (1 sample/s per series)",
    }


def _univariate(rows: int, legacy_rows: int, repeats: int = 3) -> dict:
    """``pfepo predict`` rows/s end to end (current) vs the previous scorer, same series, same run: the median
    of ``repeats`` timed passes each (one pass is one draw of a machine whose speed swings between passes)."""
    import statistics
    import tempfile

    import numpy as np
    import pandas as pd

    from pfepo.cli import main
    from pfepo_lab.bench._legacy_univariate import score_series as legacy

    rng = np.random.default_rng(1)
    t = pd.date_range("2026-01-01", periods=rows, freq="5min")
    secs = np.arange(rows) * 300.0
    y = 50 + 10 * np.sin(2 * np.pi * secs / 86_400) + rng.normal(0, 2, rows)
    y[rows // 2 :] += 12
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = f"{tmp}/in.csv", f"{tmp}/out.csv"
        pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": np.round(y, 3)}).to_csv(src, index=False)
        main(["predict", "--input", src, "--output", dst])  # warm (imports), not timed
        cur = []
        for _ in range(repeats):
            s = time.perf_counter()
            rc = main(["predict", "--input", src, "--output", dst])
            cur.append(rows / (time.perf_counter() - s))
            if rc != 0:
                raise ValueError("pfepo predict failed in the benchmark")
    n_old = max(100, min(legacy_rows, rows))
    old = []
    for _ in range(repeats):
        s = time.perf_counter()
        legacy(y[:n_old])
        old.append(n_old / (time.perf_counter() - s))
    now, before = statistics.median(cur), statistics.median(old)
    return {
        "rows": rows,
        "rows_per_s": round(now),
        "rows_per_s_passes": [round(r) for r in cur],
        "legacy_rows": n_old,
        "legacy_rows_per_s": round(before),
        "legacy_rows_per_s_passes": [round(r) for r in old],
        "speedup": round(now / before, 1),
        "target_rows_per_s": 50_000,
        "met": bool(now >= 50_000),
        "note": f"current: read CSV (ISO times), repair, score, write CSV; legacy: scoring only, on the first "
                f"legacy_rows rows; each the median of {repeats} timed passes",
    }
