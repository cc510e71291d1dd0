"""A second, independent reading of issue 13's hold-out description: a merge gate, never a tuning target.

``pfepo/traces/issue_shapes.py`` turned the issue's words into traces once; this module does it again
from the same words by another hand, with different choices wherever the text is silent, so that a
change to the predictor can be judged on data its author did not write or look at. It is scored at most
once per candidate change (before merging), and no constant of the predictor is set from it.

Choices here (the issue's words in quotes; everything else is this module's own):
- "Sampling is 5 s"; 4 endpoints per trace; "each endpoint has its own base level and noise": base
  latency 10-70 ms, utilisation 20-60 %, CPU 15-55 %, loss 0-0.3 %, errors 0-1 %; noise is AR(1)
  (phi 0.2-0.8) and multiplicative (3-15 % of the level, so it grows with the level); "a daily-style
  wave with a period of 30 to 120 minutes": a sine with a second harmonic, amplitude 5-25 %;
- failures ("four failure traces hold five failures"): a 15-minute exponential latency creep; a
  3-minute loss ramp plus an error-rate ramp; a 20-minute CPU climb to 99 % with latency following
  only in the last 5 minutes (two failing endpoints, a few minutes apart); a 10-minute utilisation
  climb to 100 % with loss joining late (last 1-3 minutes). Latency/loss/errors end 1.1-2.5x the
  default policy's thresholds; failure traces last 2.5-4 h with the failure after at least 1.5 h;
  a failed endpoint reports nothing (rows missing) for 3-12 minutes, then ``up`` = 0 rows resume
  briefly before recovery (the probe view);
- benign ("two benign traces hold 20 s latency spikes of 3.5x, a one-hour busy plateau (utilisation
  x1.6, CPU x1.5) and a 30 s metric dropout"): 3-10 spikes per endpoint at random times, the plateau
  with ramps of 1-10 minutes, the dropout as *missing rows* of every metric; benign traces last 8 h.

    python benchmarks/issue13_judge.py --out DIR --seeds 1 2 3 4 5
    pfepo evaluate DIR --per-trace --jobs 2 --json judge.json > judge.txt
    python benchmarks/issue13_judge.py --score judge.txt judge.json   # recall, lead, benign FA/endpoint-day
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

DT = 5.0
START = 1_790_000_000.0
ENDPOINTS = 4
FAILURES = ("creep", "lossrate", "cpu", "util")
BENIGN = ("quiet_a", "quiet_b")
METRICS = ("latency_ms", "loss_pct", "utilization_pct", "cpu_pct", "error_rate_pct")


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    e = rng.standard_normal(n) * np.sqrt(1 - phi * phi)
    out = np.empty(n)
    acc = rng.standard_normal()
    for i in range(n):
        acc = phi * acc + e[i]
        out[i] = acc
    return out


def _normal(rng: np.random.Generator, t: np.ndarray) -> dict[str, np.ndarray]:
    period = rng.uniform(30, 120) * 60
    ph = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(0.05, 0.25)
    x = 2 * np.pi * (t - t[0]) / period + ph
    wave = 1 + amp * (0.8 * np.sin(x) + 0.2 * np.sin(2 * x + rng.uniform(0, 6.3)))
    base = {"latency_ms": rng.uniform(10, 70), "loss_pct": rng.uniform(0.0, 0.3),
            "utilization_pct": rng.uniform(20, 60), "cpu_pct": rng.uniform(15, 55),
            "error_rate_pct": rng.uniform(0.0, 1.0)}
    out = {}
    for k, b in base.items():
        rel = rng.uniform(0.03, 0.15)
        out[k] = b * wave * (1 + rel * _ar1(rng, t.size, rng.uniform(0.2, 0.8)))
        if k in ("loss_pct", "error_rate_pct"):  # small rates: noise can touch zero
            out[k] = out[k] + rng.uniform(0.0, 0.05) * np.abs(rng.standard_normal(t.size))
    return out


def _lin(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return np.clip((t - t0) / (t1 - t0), 0.0, 1.0)


def _fail(kind: str, rng: np.random.Generator, t: np.ndarray, m: dict, f: float) -> None:
    before = t < f
    if kind == "creep":
        p = _lin(t, f - 900, f)
        k = rng.uniform(2.5, 6.0)
        s = np.expm1(k * p) / np.expm1(k)
        m["latency_ms"] = np.where(before, m["latency_ms"] + (150 * rng.uniform(1.1, 2.5) - m["latency_ms"]) * s,
                                   m["latency_ms"])
    elif kind == "lossrate":
        s = _lin(t, f - 180, f)
        m["loss_pct"] = np.where(before, m["loss_pct"] + 2 * rng.uniform(1.1, 2.5) * s, m["loss_pct"])
        m["error_rate_pct"] = np.where(before, m["error_rate_pct"] + 5 * rng.uniform(1.1, 2.5) * s,
                                       m["error_rate_pct"])
    elif kind == "cpu":
        s = _lin(t, f - 1200, f)
        m["cpu_pct"] = np.where(before, np.minimum(m["cpu_pct"] + (99 - m["cpu_pct"]) * s, 100), m["cpu_pct"])
        s2 = _lin(t, f - 300, f) ** rng.uniform(1.0, 2.0)
        m["latency_ms"] = np.where(before, m["latency_ms"] + (150 * rng.uniform(1.1, 2.5) - m["latency_ms"]) * s2,
                                   m["latency_ms"])
    elif kind == "util":
        s = _lin(t, f - 600, f)
        m["utilization_pct"] = np.where(before, np.minimum(m["utilization_pct"] + (100 - m["utilization_pct"]) * s, 100),
                                        m["utilization_pct"])
        late = rng.uniform(60, 180)
        m["loss_pct"] = np.where(before, m["loss_pct"] + 2 * rng.uniform(1.1, 2.5) * _lin(t, f - late, f), m["loss_pct"])
    else:
        raise ValueError(kind)


def _benign(rng: np.random.Generator, t: np.ndarray, m: dict) -> np.ndarray:
    """Spikes, a plateau and a dropout; returns the mask of rows kept (the dropout's rows are missing)."""
    for c in rng.uniform(t[0] + 300, t[-1] - 300, rng.integers(3, 11)):
        w = (t >= c) & (t < c + 20)
        m["latency_ms"][w] *= 3.5
    b0 = rng.uniform(t[0] + 3600, t[-1] - 2 * 3600)
    r = rng.uniform(60, 600)
    s = _lin(t, b0, b0 + r) * (1 - _lin(t, b0 + 3600, b0 + 3600 + r))
    m["utilization_pct"] *= 1 + 0.6 * s
    m["cpu_pct"] *= 1 + 0.5 * s
    c = rng.uniform(t[0] + 600, t[-1] - 600)
    return ~((t >= c) & (t < c + 30))


def trace(kind: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, (FAILURES + BENIGN).index(kind), 4242])
    hours = 8.0 if kind in BENIGN else rng.uniform(2.5, 4.0)
    t = START + seed * 100_000 + np.arange(0, hours * 3600, DT)
    failing = 2 if kind == "cpu" else (1 if kind in FAILURES else 0)
    f0 = t[0] + rng.uniform(1.5 * 3600, hours * 3600 - 1200)
    frames = []
    for e in range(ENDPOINTS):
        m = _normal(rng, t)
        up = np.ones(t.size)
        keep = np.ones(t.size, dtype=bool)
        if e < failing:
            f = float(t[np.searchsorted(t, f0 + e * rng.uniform(60, 400))])
            _fail(kind, rng, t, m, f)
            silent = rng.uniform(180, 720)
            keep &= ~((t >= f) & (t < f + silent))
            down = (t >= f + silent) & (t < f + silent + rng.uniform(60, 300))
            up[down] = 0
            for k in ("latency_ms", "cpu_pct", "error_rate_pct"):
                m[k][down] = np.nan
            m["loss_pct"][down] = 100.0
            m["utilization_pct"][down] = 0.0
            # the first row at the failure says so (the probe notices before going silent)
            i = int(np.searchsorted(t, f))
            keep[i] = True
            up[i] = 0
        elif kind in BENIGN:
            keep &= _benign(rng, t, m)
        frame = pd.DataFrame({"timestamp": t, "endpoint": f"j{kind}-s{seed}-e{e}"})
        for k in METRICS:
            frame[k] = np.round(np.clip(m[k], 0, None), 3)
        frame["up"] = up.astype(int)
        frames.append(frame[keep])
    return pd.concat(frames).sort_values(["timestamp", "endpoint"], kind="stable")


def write(out: Path, seeds: list[int]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        for kind in FAILURES + BENIGN:
            trace(kind, s).to_csv(out / f"{kind}-j{s}.csv", index=False, na_rep="")


def score(stdout: Path, summary: Path) -> dict:
    """Recall and leads from ``pfepo evaluate --json``; benign false-alarm episodes per endpoint-day from
    its ``--per-trace`` table (printed output), over the benign traces' endpoint-days."""
    d = json.loads(summary.read_text())
    fa = traces = 0
    for line in stdout.read_text().splitlines():
        cells = line.split()
        if cells and cells[0].startswith(BENIGN) and cells[0].endswith(".csv") and len(cells) >= 6:
            fa += int(cells[3])
            traces += 1
    days = traces * ENDPOINTS * 8.0 / 24.0
    p = d["predictive"]
    return {"recall": p["recall"], "median_lead_s": p["median_lead_s"], "p10_lead_s": p["p10_lead_s"],
            "reactive_median_lead_s": d["reactive"]["median_lead_s"], "benign_false_alarms": fa,
            "benign_endpoint_days": round(days, 2), "benign_fa_per_endpoint_day": round(fa / days, 2) if days else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--score", nargs=2, type=Path, metavar=("STDOUT", "JSON"),
                    help="summarise an evaluate run: its printed --per-trace output and its --json file")
    a = ap.parse_args(argv)
    if a.score:
        print(json.dumps(score(*a.score)))
    if a.out:
        write(a.out, a.seeds)
        print(f"wrote {len(a.seeds) * (len(FAILURES) + len(BENIGN))} traces to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
