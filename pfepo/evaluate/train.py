"""Train the failure classifier on generated traces: ``python -m pfepo.evaluate.train``.

    python -m pfepo.evaluate.train --seeds 100-115 --out pfepo/predict/models/pfepo-predict.joblib

Seeds used for training must differ from the seeds quality is reported on (docs/prediction.md).
Traces are replayed in parallel worker processes (``--jobs``), each with BLAS pinned to one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from pfepo.evaluate.dataset import build_dataset  # noqa: E402
from pfepo.evaluate.harness import DEFAULT_MODEL, Settings, make_engine  # noqa: E402
from pfepo.predict.classifier import FailureClassifier  # noqa: E402
from pfepo.predict.engine import PredictiveEngine  # noqa: E402
from pfepo.traces.csv import read_trace  # noqa: E402
from pfepo.traces.generate import generate  # noqa: E402


def retrain(engine: PredictiveEngine, traces: list, out_path: str | Path, seed: int = 0) -> FailureClassifier:
    """Train a classifier on labelled history for ``engine`` and swap it in (on a schedule, and when
    ``engine.failures`` has grown since the last training).

    ``traces`` are ``pfepo.traces.csv.Trace`` objects or frames in the trace CSV format (the daemon can
    export its history store this way). Replays them through a fresh engine with ``engine.config()``, so
    it is safe to call from a worker thread while ``engine`` keeps serving; the swap is one assignment.
    """
    data = build_dataset(traces, engine.config())
    clf = FailureClassifier.train(
        data.x, data.y, data.groups, engine.names, engine.horizon_s, engine.step_s, window=data.window, seed=seed
    )
    clf.save(out_path)
    engine.classifier, engine.model_error = clf, None
    return clf


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def _one(args: tuple[str, dict]):
    path, cfg = args
    return build_dataset([read_trace(path)], cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pfepo.evaluate.train", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="100-115", help="generator seeds, e.g. 100-115 or 1,2,5")
    ap.add_argument("--traces", nargs="*", help="train on these trace CSVs instead of generating")
    ap.add_argument("--out", default=str(DEFAULT_MODEL))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", help="keep generated traces in this folder")
    args = ap.parse_args(argv)
    settings = Settings()
    cfg = make_engine(settings, None).config()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if args.traces:
            paths = [str(p) for p in args.traces]
        else:
            folder = Path(args.cache or tmp)
            paths = [str(p) for s in parse_seeds(args.seeds) for p in generate(folder, s)]
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            parts = list(ex.map(_one, [(p, cfg) for p in paths]))
    x = np.concatenate([d.x for d in parts])
    y = np.concatenate([d.y for d in parts])
    g = np.concatenate([np.full(len(d.y), i) for i, d in enumerate(parts)])
    window = {
        "start": min(d.window["start"] for d in parts),
        "end": max(d.window["end"] for d in parts),
        "sources": [Path(p).name for p in paths],
        "seeds": args.seeds if not args.traces else None,
    }
    clf = FailureClassifier.train(x, y, g, make_engine(settings, None).names, settings.horizon_s, settings.step_s, window)
    clf.info.params["thresholds"] = settings.thresholds
    clf.save(args.out)
    print(f"trained on {len(y)} rows ({int(y.sum())} positive) from {len(paths)} traces in {time.time() - t0:.0f} s")
    print(f"validation: {clf.info.validation}")
    print(f"saved {args.out} (+ {Path(args.out).with_suffix('.json').name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
