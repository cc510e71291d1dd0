"""Why an alarm fired or failed, per event: ``python -m pfepo.evaluate.diagnose TRACE.csv|DIR ...``.

Replays each trace forecast-only (the cold-start detector, whose evidence the classifier can never veto
when clear) and reports, for every failure event, the lead (None = missed), when a metric first crossed
its threshold in the 600 s before the failure, the peak value / threshold per metric and the largest
confirmed forecast evidence per metric; and for every false alarm episode the metric that drove it and
how long it lasted. The summary groups the misses: never above a threshold, first above only in the last
``late_s`` seconds, or above earlier (a forecast or confirmation problem).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from pfepo.evaluate.harness import Settings, make_engine  # noqa: E402
from pfepo.evaluate.metrics import episodes, failure_starts, ignored  # noqa: E402
from pfepo.evaluate.replay import replay  # noqa: E402
from pfepo.predict.engine import SOURCES  # noqa: E402
from pfepo.traces.csv import read_trace  # noqa: E402
from pfepo.traces.families import family_of  # noqa: E402

WINDOW_S = 600.0


def _replay_with_sources(path: str, eng) -> tuple:
    """Replay ``path`` and record, per step, endpoint and metric, the rule behind the alarm (engine.alarm_src)."""
    trace = read_trace(path)
    idx = eng.ensure(trace.endpoints)  # once: ``trace.endpoints`` scans the whole frame (was ~90 % of the run)
    src: list[np.ndarray] = []
    r = replay(trace, eng, on_step=lambda k, snap: src.append(eng.alarm_src.reshape(-1, eng.m)[idx].copy()))
    return r, np.array(src)


def _events(path: str) -> list[dict]:
    """Annotated benign events of a look-alike trace (pfepo.traces.lookalikes), if it has them."""
    side = Path(path).with_suffix(".events.json")
    return json.loads(side.read_text()) if side.exists() else []


def _shape(events: list[dict], endpoint: str, a: float, b: float, after_s: float = 600.0) -> tuple[str, float | None]:
    """The annotated event an alarm episode [a, b] belongs to (it overlaps the event or starts within
    ``after_s`` of its end) and the alarm's onset relative to the event's start."""
    best = None
    for ev in events:
        if ev["endpoint"] == endpoint and a <= ev["end"] + after_s and b >= ev["start"] - 60:
            if best is None or abs(a - ev["start"]) < abs(a - best["start"]):
                best = ev
    return (best["kind"], float(a - best["start"])) if best else ("none", None)


def diagnose(path: str) -> dict:
    s = Settings()
    eng = make_engine(s, None)
    r, src = _replay_with_sources(path, eng)
    events = _events(path)
    thr = np.array([s.thresholds.get(m, np.nan) for m in r.metrics])
    dts = np.diff(r.ts)
    fam = family_of(path)
    out: dict = {"path": Path(path).name, "family": fam if fam != "unknown" else Path(path).stem.split("-")[0],
                 "sampling_s": float(np.median(dts)) if dts.size else None, "events": [], "false_alarms": []}
    for k in range(len(r.endpoints)):
        up, br = r.up[:, k], np.nan_to_num(r.breach[:, k, :])
        alarm = (br.max(axis=1) >= s.act) & ~ignored(r.ts, up, 300.0)
        starts = r.ts[failure_starts(r.ts, up)]
        for f in starts:
            w = (r.ts >= f - WINDOW_S) & (r.ts < f)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = r.values[w, k, :] / thr
                over = np.flatnonzero(w & (r.values[:, k, :] > thr).any(axis=1))
            hit = np.flatnonzero(alarm & (r.ts >= f - WINDOW_S) & (r.ts <= f))
            peak = {m: round(float(np.nanmax(ratio[:, j])), 2) for j, m in enumerate(r.metrics)
                    if np.isfinite(ratio[:, j]).any()}
            out["events"].append({
                "endpoint": r.endpoints[k], "lead_s": float(f - r.ts[hit[0]]) if hit.size else None,
                "first_above_s": float(f - r.ts[over[0]]) if over.size else None, "peak_over_threshold": peak,
                "max_evidence": {m: round(float(br[w, j].max()), 2) for j, m in enumerate(r.metrics) if w.any()}})
        seen = r.ts[r.present[:, k]]
        gap = max(60.0, 1.5 * float(np.median(np.diff(seen))) + 1e-9) if seen.size > 1 else 60.0  # as score_endpoint
        for a, b in episodes(r.ts, alarm, gap):
            if np.any((starts >= a) & (starts <= b + WINDOW_S)):
                continue
            i0 = int(np.flatnonzero(r.ts == a)[0])
            j = int(np.argmax(br[i0]))
            shape, onset = _shape(events, r.endpoints[k], a, b)
            out["false_alarms"].append({"endpoint": r.endpoints[k], "at_s": float(a - r.ts[0]), "duration_s": float(b - a),
                                        "metric": r.metrics[j], "source": SOURCES[int(src[i0, k, j])],
                                        "shape": shape, "onset_after_shape_start_s": onset})
    return out


def summary(results: list[dict], late_s: float = 60.0) -> dict:
    ev = [e for r in results for e in r["events"]]
    missed = [e for e in ev if e["lead_s"] is None]
    leads = [e["lead_s"] for e in ev if e["lead_s"] is not None]
    never = [e for e in missed if e["first_above_s"] is None]
    late = [e for e in missed if e["first_above_s"] is not None and e["first_above_s"] <= late_s]
    fa: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for r in results:
        for x in r["false_alarms"]:
            key = f"{r['family']}/{x['metric']}"
            fa[key] = fa.get(key, 0) + 1
            key = f"{x['shape']}/{x['metric']}/{x['source']}" if x["shape"] != "none" else f"{r['family']}/{x['metric']}/{x['source']}"
            by_source[key] = by_source.get(key, 0) + 1
    return {"events": len(ev), "detected": len(leads), "median_lead_s": float(np.median(leads)) if leads else None,
            "missed_never_above_threshold": len(never), f"missed_first_above_in_last_{late_s:g}_s": len(late),
            "missed_above_earlier": len(missed) - len(never) - len(late),
            "false_alarm_episodes": sum(fa.values()), "false_alarms_by_family_metric": fa,
            "false_alarms_by_shape_metric_source": dict(sorted(by_source.items()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pfepo.evaluate.diagnose", description=__doc__.split("\n")[0])
    ap.add_argument("traces", nargs="+", help="trace CSVs or folders of them")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", dest="json_out", help="write every event and false alarm here")
    args = ap.parse_args(argv)
    paths = sorted(str(q) for p in args.traces for q in (Path(p).glob("*.csv") if Path(p).is_dir() else [Path(p)]))
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        results = list(ex.map(diagnose, paths))
    summ = summary(results)
    print(json.dumps(summ, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summ, "traces": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
