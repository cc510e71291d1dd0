"""A small sanity set written from the *text* of issue 13 only (not from pfepo.traces.families).

The issue describes hidden hold-out traces in words; this module turns those words into traces, nothing
more: it is a smoke check that the shapes the issue names are caught, never a tuning target (no constant
of the predictor is set from it; docs/prediction.md says so). What the issue says, and how it is read:

- sampling every 5 s; each endpoint has its own base level and noise, and a daily-style wave with a
  period of 30 to 120 minutes;
- four failure traces holding five failures with precursors: a 15-minute exponential latency creep; a
  3-minute loss ramp plus an error-rate ramp; a 20-minute CPU climb to 99 % with latency following only
  in the last 5 minutes (this trace has two failing endpoints: five failures in four traces); a
  10-minute utilisation climb to 100 % with loss joining late;
- two benign traces holding 20 s latency spikes of 3.5x, a one-hour busy plateau (utilisation x1.6, CPU
  x1.5) and a 30 s metric dropout.

Where the text is silent (how far a precursor goes past its threshold, trace lengths, base levels, how
long an endpoint stays down) the choice is written next to the code. Thresholds are the default policy's.

    python -m pfepo.traces.issue_shapes --out DIR --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from pfepo.traces.csv import METRICS

DT = 5.0  # "Sampling is 5 s."
START = 1_780_000_000.0
FAILURES = ("latency_creep15", "loss_error_ramp3", "cpu_climb20", "util_climb10")
BENIGN = ("benign_a", "benign_b")
# (ar10) Not in the default set (``--kinds`` adds it): a busy endpoint's utilisation (55-70 %) climbing to
# 100 % in 10 minutes, saturating (concave: fastest at first), loss joining late. With ``--ar`` and a larger
# ``--noise-scale`` this is the climb that a one-window noise bar on correlated noise missed (docs/prediction-log.md
# ar10): its 2-minute rises are inside the noise's wander, its 6-minute rise is not.
EXTRA = ("util_busy10",)
KINDS = FAILURES + BENIGN + EXTRA
ENDPOINTS = 3


def _endpoint(rng: np.random.Generator, t: np.ndarray, ar: float = 0.0, noise_scale: float = 1.0,
              clean: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Own base level and noise per endpoint and metric, times a wave of period 30-120 min (amplitude not
    given: 5-15 % here). ``ar`` > 0: the noise is AR(1) with that coefficient per sample (same marginal sd;
    real telemetry is correlated -- a robustness check of the engine's noise scales, docs/prediction-log.md ar9);
    0 draws exactly the white-noise set. ``noise_scale`` multiplies every relative noise sd (1: the set).
    ``clean`` (if given) receives each metric's noise-free level (base x wave); the draws are the same."""
    period = rng.uniform(30, 120) * 60
    wave = 1 + rng.uniform(0.05, 0.15) * np.sin(2 * np.pi * (t - t[0]) / period + rng.uniform(0, 2 * np.pi))
    base = {"latency_ms": rng.uniform(20, 60), "loss_pct": rng.uniform(0.02, 0.2), "utilization_pct": rng.uniform(30, 55),
            "cpu_pct": rng.uniform(25, 50), "error_rate_pct": rng.uniform(0.1, 0.6)}
    out = {}
    for k, b in base.items():
        noise = rng.uniform(0.03, 0.12) * noise_scale  # relative noise sd, its own per endpoint and metric
        z = rng.standard_normal(t.size)
        if ar > 0:
            z = lfilter([math.sqrt(1.0 - ar * ar)], [1.0, -ar], z, zi=[ar * rng.standard_normal()])[0]
        out[k] = b * wave * (1 + noise * z)
        if clean is not None:
            clean[k] = b * wave
    return out


def _ramp(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """0 before t0, 1 at t1, linear in between; 0 again from t1 on (after its recovery an endpoint is back
    at its own normal)."""
    return np.where(t < t1, np.clip((t - t0) / (t1 - t0), 0.0, 1.0), 0.0)


def _to(cur: np.ndarray, target: float, s: np.ndarray) -> np.ndarray:
    return cur + (target - cur) * s


def _precursor(kind: str, rng: np.random.Generator, t: np.ndarray, m: dict[str, np.ndarray], f: float,
               clean: dict[str, np.ndarray] | None = None) -> None:
    """Apply one precursor ending at the failure time ``f``. End values past the threshold are not in the
    issue: here each failing metric ends 1.2-2x its threshold (CPU and utilisation: the stated 99/100 %)."""
    if kind == "latency_creep15":  # "a 15-minute exponential latency creep"
        p = _ramp(t, f - 900, f)
        lam = rng.uniform(3, 5)
        s = np.expm1(lam * p) / np.expm1(lam)
        m["latency_ms"] = _to(m["latency_ms"], 150 * rng.uniform(1.2, 2.0), s)
    elif kind == "loss_error_ramp3":  # "a 3-minute loss ramp plus an error-rate ramp"
        s = _ramp(t, f - 180, f)
        m["loss_pct"] = _to(m["loss_pct"], 2 * rng.uniform(1.2, 2.0), s)
        m["error_rate_pct"] = _to(m["error_rate_pct"], 5 * rng.uniform(1.2, 2.0), s)
    elif kind == "cpu_climb20":  # "a 20-minute CPU climb to 99 % with latency following only in the last 5 minutes"
        m["cpu_pct"] = np.minimum(_to(m["cpu_pct"], 99.0, _ramp(t, f - 1200, f)), 100.0)
        m["latency_ms"] = _to(m["latency_ms"], 150 * rng.uniform(1.2, 2.0), _ramp(t, f - 300, f))
    elif kind == "util_climb10":  # "a 10-minute utilisation climb to 100 % with loss joining late"
        m["utilization_pct"] = np.minimum(_to(m["utilization_pct"], 100.0, _ramp(t, f - 600, f)), 100.0)
        m["loss_pct"] = _to(m["loss_pct"], 2 * rng.uniform(1.2, 2.0), _ramp(t, f - rng.uniform(90, 180), f))
    elif kind == "util_busy10":  # (ar10) a busy endpoint's saturating 10-minute utilisation climb, loss late
        assert clean is not None
        u, c = m["utilization_pct"], clean["utilization_pct"]
        g = rng.uniform(55, 70) / float(np.mean(c))  # a busy endpoint: its mean level 55-70 %
        lam = rng.uniform(0.0, 2.5)  # curvature: 0 linear, 2.5 about two thirds of the climb in its first half
        p = _ramp(t, f - 600, f)
        s = -np.expm1(-lam * p) / -math.expm1(-lam) if lam > 1e-6 else p
        # the noise-free level goes to 100 % at the failure; the noise stays multiplicative (clipped at 100)
        m["utilization_pct"] = np.minimum(u * g * (1 + (100.0 / (g * c) - 1) * s), 100.0)
        m["loss_pct"] = _to(m["loss_pct"], 2 * rng.uniform(1.2, 2.0), _ramp(t, f - rng.uniform(90, 180), f))
    else:
        raise ValueError(kind)


def _benign(rng: np.random.Generator, t: np.ndarray, m: dict[str, np.ndarray]) -> None:
    """20 s latency spikes of 3.5x, a one-hour busy plateau (utilisation x1.6, CPU x1.5) and a 30 s
    metric dropout. How many spikes is not given: 6-12 per trace here; the plateau's ramps: 2-5 minutes."""
    for c in rng.uniform(t[0] + 600, t[-1] - 600, rng.integers(6, 13)):
        w = (t >= c) & (t < c + 20)
        m["latency_ms"][w] *= 3.5
    b0 = rng.uniform(t[0] + 1.5 * 3600, t[-1] - 1.5 * 3600)
    r = rng.uniform(120, 300)
    s = np.clip((t - b0) / r, 0, 1) * np.clip((b0 + 3600 - t) / r, 0, 1)
    m["utilization_pct"] *= 1 + 0.6 * s
    m["cpu_pct"] *= 1 + 0.5 * s
    c = rng.uniform(t[0] + 600, t[-1] - 600)
    w = (t >= c) & (t < c + 30)
    for k in m:
        m[k][w] = np.nan


def issue_trace(kind: str, seed: int, ar: float = 0.0, noise_scale: float = 1.0) -> pd.DataFrame:
    """One trace (a frame in the trace CSV layout). Lengths are not in the issue: failure traces 3 h with
    the failure 2-2.7 h in (after the engine's one-hour warm-up and a full precursor), benign traces 6 h.
    A failed endpoint stays down 5-15 minutes (probe view: loss 100, utilisation 0, the rest missing)."""
    rng = np.random.default_rng([seed, KINDS.index(kind), 1313])
    hours = 6.0 if kind in BENIGN else 3.0
    t = START + seed * 86_400 + np.arange(0, hours * 3600, DT)
    failing = 2 if kind == "cpu_climb20" else (1 if kind in FAILURES + EXTRA else 0)
    frames = []
    for e in range(ENDPOINTS):
        clean: dict[str, np.ndarray] = {}
        m = _endpoint(rng, t, ar, noise_scale, clean)
        up = np.ones(t.size)
        if e < failing:
            f = float(t[np.searchsorted(t, t[0] + rng.uniform(2.0, 2.7) * 3600)])
            _precursor(kind, rng, t, m, f, clean)
            down = (t >= f) & (t < f + rng.uniform(300, 900))
            up[down] = 0
            for k in ("latency_ms", "cpu_pct", "error_rate_pct"):
                m[k][down] = np.nan
            m["loss_pct"][down], m["utilization_pct"][down] = 100.0, 0.0
        elif kind in BENIGN:
            _benign(rng, t, m)
        frame = pd.DataFrame({"timestamp": t, "endpoint": f"{kind.replace('_', '-')}-s{seed}-ep{e}"})
        for k in METRICS:
            frame[k] = np.round(np.clip(m[k], 0, None), 3)
        frame["up"] = up.astype(int)
        frames.append(frame)
    return pd.concat(frames).sort_values(["timestamp", "endpoint"], kind="stable")


def write_set(out_dir: str | Path, seeds: list[int], ar: float = 0.0, noise_scale: float = 1.0,
              kinds: tuple[str, ...] = FAILURES + BENIGN) -> list[Path]:
    """Write ``<kind>-i<seed>.csv`` for every kind and seed; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        for kind in kinds:
            path = out / f"{kind}-i{seed}.csv"
            issue_trace(kind, seed, ar, noise_scale).to_csv(path, index=False, na_rep="")
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pfepo.traces.issue_shapes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--ar", type=float, default=0.0, metavar="RHO",
                    help="AR(1) noise with this coefficient per 5 s sample (0: white, the default set)")
    ap.add_argument("--noise-scale", type=float, default=1.0, metavar="X",
                    help="multiply every relative noise sd (3-12 %%) by X (1: the default set)")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(FAILURES + BENIGN),
                    help="trace kinds to write (default: the issue's six; util_busy10 is extra, ar10)")
    a = ap.parse_args(argv)
    if not 0.0 <= a.ar < 1.0:
        ap.error("--ar must be in [0, 1)")
    if not a.noise_scale > 0:
        ap.error("--noise-scale must be > 0")
    for p in write_set(a.out, a.seeds, a.ar, a.noise_scale, tuple(a.kinds)):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
