"""``pfepo evaluate TRACE.csv... [--policy FILE] --json OUT``: predictive vs reactive alarm quality.

Replays each trace causally through the PredictiveEngine (the daemon's code, simulated clock) and
scores, in the same run, the predictive alarms and a reactive threshold baseline; see
pfepo.evaluate.harness and pfepo.evaluate.metrics for the exact definitions.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="replay trace CSVs and compare predictive alarms with a reactive threshold baseline",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("traces", nargs="+", metavar="TRACE.csv", help="trace CSV files (format: docs/prediction.md) or folders of them")
    p.add_argument("--policy", metavar="FILE", help="policy YAML giving act threshold, criteria thresholds and shift ramp")
    p.add_argument("--json", metavar="OUT", dest="json_out", help="write the summary JSON here")
    p.add_argument(
        "--model",
        metavar="PATH",
        help="classifier (.joblib with .json sidecar); default: the model shipped with the package (also: shipped)",
    )
    p.add_argument("--forecast-only", action="store_true", help="ignore any classifier (cold-start behaviour)")
    p.add_argument("--per-trace", action="store_true", help="also print a row per trace")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (traces are replayed in parallel)")
    p.add_argument("--ramp", action="store_true", help="shifted share from the simple ramp model instead of the planner")
    p.set_defaults(func=run)


def _expand(items: list[str]) -> list[Path]:
    out: list[Path] = []
    for it in items:
        p = Path(it)
        out += sorted(p.glob("*.csv")) if p.is_dir() else [p]
    return out


def run(args) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from pfepo.evaluate.harness import (
        DEFAULT_MODEL,
        Settings,
        evaluate_paths,
        make_engine,
        settings_from_policy,
        summarise,
        table,
    )
    from pfepo.predict.classifier import resolve_model_path
    from pfepo.traces.csv import TraceError, read_trace
    from pfepo.yamlconf import ConfigError

    try:
        settings = settings_from_policy(args.policy) if args.policy else Settings()
    except ConfigError as exc:
        print(f"pfepo evaluate: invalid policy:\n{exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"pfepo evaluate: {exc}", file=sys.stderr)
        return 2
    settings.use_planner = not args.ramp
    model = None
    if not args.forecast_only:
        model = resolve_model_path(args.model) if args.model else (DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None)
        if args.model and not model.is_file():
            print(f"pfepo evaluate: {model}: no such model file", file=sys.stderr)
            return 2
    if args.json_out and not Path(args.json_out).resolve().parent.is_dir():
        print(f"pfepo evaluate: cannot write {args.json_out}: no such folder", file=sys.stderr)
        return 2
    paths = _expand(args.traces)
    if not paths:
        print("pfepo evaluate: no trace files given", file=sys.stderr)
        return 2
    for p in paths:  # validate everything first: a bad file fails fast, before minutes of replay
        try:
            tr = read_trace(p)
        except TraceError as exc:
            print(f"pfepo evaluate: {exc}", file=sys.stderr)
            return 2
        for note in tr.notes:
            print(f"pfepo evaluate: warning: {note}", file=sys.stderr)
    t0 = time.time()
    results = evaluate_paths(paths, settings, model, jobs=max(1, args.jobs))
    summary = summarise(results)
    settings.shift_source = results[0].shift_source
    eng = make_engine(settings, model)
    mode = f"classifier {model}" if eng.classifier else f"forecast-only ({eng.model_error or 'no model'})"
    print(f"policy: {settings.policy_name}; act >= {settings.act}; predictor: {mode}")
    print(f"shifted share from: {settings.shift_source}")
    print(f"{len(paths)} trace(s) replayed in {time.time() - t0:.1f} s\n")
    print(table(summary, results if args.per_trace else None))
    if args.json_out:
        try:
            Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            print(f"pfepo evaluate: cannot write {args.json_out}: {exc}", file=sys.stderr)
            return 2
    return 0
