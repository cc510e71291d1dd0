"""After a failure: which signals moved first, on which endpoints, how long before it (pure).

``root_cause(frame, endpoint, failure_ts)`` takes history in the trace CSV layout (``ts`` or
``timestamp``, ``endpoint``, metric columns; e.g. exported from the history store) and, for every
endpoint and metric, compares the ``lookback_s`` before the failure with the ``baseline_s`` before that:
a signal *moved* at the first of ``persist`` consecutive samples more than ``z`` robust scales
(1.4826 MAD, floored like the engine's baseline) away from the baseline median. Signals are listed
earliest first, the failing endpoint's before the others at equal time.

``propose_adjustment`` turns a report plus the risk the predictor gave before the failure into a
bounded proposal for the policy's ``act`` threshold; applying it (only where a policy allows, and
recorded in the audit log) is the daemon's job.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pfepo.predict.features import SD_FLOOR
from pfepo.traces.csv import METRICS


def root_cause(
    frame: pd.DataFrame,
    endpoint: str,
    failure_ts: float,
    lookback_s: float = 1800.0,
    baseline_s: float = 3600.0,
    z: float = 3.0,
    persist: int = 3,
) -> dict:
    ts_col = "ts" if "ts" in frame.columns else "timestamp"
    f = float(failure_ts)
    ts_all = pd.to_numeric(frame[ts_col], errors="coerce").to_numpy(float)
    signals = []
    for ep, g in frame.assign(_ts=ts_all).groupby("endpoint", sort=False):
        t = g["_ts"].to_numpy()
        base = (t >= f - lookback_s - baseline_s) & (t < f - lookback_s)
        win = (t >= f - lookback_s) & (t < f)
        for m in [c for c in frame.columns if c in METRICS or c not in ("ts", "timestamp", "endpoint", "up", "_ts")]:
            x = pd.to_numeric(g[m], errors="coerce").to_numpy(float)
            xb = x[base][np.isfinite(x[base])]
            if xb.size < 10 or not win.any():
                continue
            med = float(np.median(xb))
            scale = max(1.4826 * float(np.median(np.abs(xb - med))), SD_FLOOR.get(m, 1e-3), 0.02 * abs(med))
            xw, tw = x[win], t[win]
            zz = (xw - med) / scale
            hit = np.isfinite(zz) & (np.abs(zz) > z)
            run = np.convolve(hit.astype(int), np.ones(persist, dtype=int), mode="full")[: hit.size]
            idx = np.flatnonzero(run >= persist)
            if idx.size == 0:
                continue
            k = int(idx[0]) - persist + 1
            peak = int(np.nanargmax(np.abs(np.where(np.isfinite(zz), zz, 0.0))))
            signals.append({
                "endpoint": str(ep),
                "metric": m,
                "onset_ts": float(tw[k]),
                "lead_s": round(f - float(tw[k]), 1),
                "direction": "up" if zz[k] > 0 else "down",
                "baseline": round(med, 4),
                "scale": round(scale, 4),
                "peak_z": round(float(zz[peak]), 2),
                "last_value": _last(xw),
            })
    signals.sort(key=lambda s: (s["onset_ts"], s["endpoint"] != endpoint, s["metric"]))
    own = [s for s in signals if s["endpoint"] == endpoint]
    return {
        "endpoint": endpoint,
        "failure_ts": f,
        "window_s": lookback_s,
        "first_signal": own[0] if own else None,
        "precursor": bool(own),
        "lead_s": own[0]["lead_s"] if own else 0.0,
        "signals": signals,
        "other_endpoints": sorted({s["endpoint"] for s in signals if s["endpoint"] != endpoint}),
    }


def _last(x: np.ndarray) -> float | None:
    fin = x[np.isfinite(x)]
    return round(float(fin[-1]), 4) if fin.size else None


def propose_adjustment(
    report: dict,
    risk_ts: np.ndarray,
    risk: np.ndarray,
    act: float,
    min_lead_s: float = 60.0,
    floor_ratio: float = 0.5,
) -> dict | None:
    """A proposal to act earlier when the signals moved in time but the risk stayed below ``act``.

    Proposes ``act`` = 90 % of the highest risk seen between the first signal and the failure, never
    below ``floor_ratio * act``; None when there was no usable precursor or the alarm already fired
    ``min_lead_s`` before the failure.
    """
    if not report.get("precursor") or report["lead_s"] < min_lead_s:
        return None
    f = report["failure_ts"]
    onset = report["first_signal"]["onset_ts"]
    w = (risk_ts >= onset) & (risk_ts < f)
    if not w.any():
        return None
    fired = risk_ts[w][risk[w] >= act]
    if fired.size and f - fired[0] >= min_lead_s:
        return None
    peak = float(np.nanmax(risk[w]))
    target = max(round(0.9 * peak, 3), floor_ratio * act)
    if not math.isfinite(target) or target >= act:
        return None
    return {
        "kind": "lower_act",
        "endpoint": report["endpoint"],
        "from": act,
        "to": target,
        "bounds": [floor_ratio * act, act],
        "reason": (
            f"{report['first_signal']['metric']} moved {report['lead_s']:.0f} s before the failure but the "
            f"risk peaked at {peak:.3f} < act {act:g}"
        ),
    }
