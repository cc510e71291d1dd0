"""Benign look-alikes for diagnosis: shapes that resemble a precursor and must not alarm.

Written for predict6, separately from pfepo.traces.families (training) and pfepo.traces.issue_shapes (the
issue's words), with deliberately broader and different parameters than the issue's numbers, so that a
rule found here is a rule about a shape, not about one set of numbers. It is a *diagnostic* set (which
evidence fires on which shape, and when), never a training or tuning target.

Per trace: one sampling interval of 1, 5, 10 or 60 s; 3 endpoints, each with its own base levels,
heteroscedastic noise (sd grows with the level), a daily-style wave (period 20-180 min, amplitude 0-30 %),
and a sequence of annotated events at least 20 minutes apart:

- ``spike``: one spike of 2-5x lasting 5-60 s on one metric (latency mostly);
- ``spike_cluster``: 3-6 such spikes within 2-10 minutes;
- ``plateau``: a busy plateau of 20-120 min, utilisation x1.2-1.9 and CPU x1.2-1.9 (latency x1-1.3 with
  it), reached and left by ramps of 0-15 min (0 = a step);
- ``dropout_rows``: the endpoint sends no rows for 10-180 s; ``dropout_nan``: rows with empty values;
- ``level_shift``: one metric moves to x0.6-1.6 of its level and stays there.

Base levels are drawn so that a plateau's peak level (noise aside) stays under 0.9 of its threshold (a load
that crosses its threshold is a breach, not a look-alike; its noise may cross it for a sample or two); spikes may cross a threshold for their few seconds (as in the
issue's 20 s latency spikes of 3.5x). Each trace ``NAME.csv`` has ``NAME.events.json``: every event with
its endpoint, kind, metrics, start and end (epoch s) and parameters. All endpoints stay up.

    python -m pfepo.traces.lookalikes --out DIR --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pfepo.traces.csv import METRICS

START = 1_790_000_000.0
THRESHOLDS = {"latency_ms": 150.0, "loss_pct": 2.0, "utilization_pct": 95.0, "cpu_pct": 90.0, "error_rate_pct": 5.0}
SAMPLING_S = (1.0, 5.0, 10.0, 60.0)
KINDS = ("spike", "spike_cluster", "plateau", "dropout_rows", "dropout_nan", "level_shift")
ENDPOINTS = 3
GAP_S = 1200.0  # quiet time between two events of one endpoint
WARMUP_S = 3600.0  # no event in the first hour (the engine's warm-up)


def _hours(dt: float) -> float:
    """Trace length: 8 h, 3 h at 1 s sampling (rows), 24 h at 60 s (enough samples)."""
    return {1.0: 3.0, 60.0: 24.0}.get(dt, 8.0)


def _base(rng: np.random.Generator, peak: float) -> dict[str, float]:
    """Base levels; utilisation and CPU low enough that ``peak`` (largest load factor x wave) stays < 0.9 x threshold."""
    return {"latency_ms": rng.uniform(10, 80), "loss_pct": rng.uniform(0.01, 0.3),
            "utilization_pct": rng.uniform(15, min(60.0, 0.9 * 95 / peak)),
            "cpu_pct": rng.uniform(10, min(55.0, 0.9 * 90 / peak)), "error_rate_pct": rng.uniform(0.05, 0.8)}


def _events(rng: np.random.Generator, t0: float, t1: float) -> list[dict]:
    """A random sequence of events, GAP_S apart, after the warm-up."""
    out, t = [], t0 + WARMUP_S + rng.uniform(0, 600)
    while True:
        kind = str(rng.choice(KINDS))
        ev: dict = {"kind": kind}
        if kind == "spike":
            d = float(rng.uniform(5, 60))
            ev.update(start=t, end=t + d, spikes=[[t, d, float(rng.uniform(2, 5))]])
        elif kind == "spike_cluster":
            span = float(rng.uniform(120, 600))
            starts = np.sort(rng.uniform(t, t + span, int(rng.integers(3, 7))))
            sp = [[float(s), float(rng.uniform(5, 60)), float(rng.uniform(2, 5))] for s in starts]
            ev.update(start=t, end=float(max(s + d for s, d, _ in sp)), spikes=sp)
        elif kind == "plateau":
            ramp, hold = float(rng.choice([0.0, rng.uniform(30, 900)])), float(rng.uniform(20, 120) * 60)
            ev.update(start=t, end=t + 2 * ramp + hold, ramp_s=ramp, hold_s=hold,
                      util_x=float(rng.uniform(1.2, 1.9)), cpu_x=float(rng.uniform(1.2, 1.9)),
                      latency_x=float(rng.uniform(1.0, 1.3)))
        elif kind in ("dropout_rows", "dropout_nan"):
            d = float(rng.uniform(10, 180))
            ev.update(start=t, end=t + d)
        else:  # level_shift
            ev.update(start=t, end=t, factor=float(rng.choice([rng.uniform(0.6, 0.85), rng.uniform(1.15, 1.6)])))
        if kind in ("spike", "spike_cluster", "level_shift"):
            ev["metric"] = str(rng.choice(["latency_ms"] * 3 + ["cpu_pct", "error_rate_pct", "loss_pct"]))
        if ev["end"] > t1 - 600:
            return out
        out.append(ev)
        t = ev["end"] + GAP_S + rng.uniform(0, 1800)


def _endpoint(rng: np.random.Generator, t: np.ndarray, dt: float) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict]]:
    """Metric series, rows present, and events of one endpoint."""
    evs = _events(rng, float(t[0]), float(t[-1]))
    amp = float(rng.uniform(0, 0.3))
    period = float(rng.uniform(20, 180) * 60)
    wave = 1 + amp * np.sin(2 * np.pi * (t - t[0]) / period + rng.uniform(0, 2 * np.pi))
    peak = max([max(e.get("util_x", 1), e.get("cpu_x", 1)) for e in evs] + [1.0]) * (1 + amp)
    base = _base(rng, peak)
    load = {k: np.ones(t.size) for k in base}
    for e in evs:
        if e["kind"] == "plateau":
            r, s0, s1 = max(e["ramp_s"], dt), e["start"], e["end"]
            s = np.clip((t - s0) / r, 0, 1) * np.clip((s1 - t) / r, 0, 1)
            load["utilization_pct"] *= 1 + (e["util_x"] - 1) * s
            load["cpu_pct"] *= 1 + (e["cpu_x"] - 1) * s
            load["latency_ms"] *= 1 + (e["latency_x"] - 1) * s
        elif e["kind"] == "level_shift":
            load[e["metric"]] *= np.where(t >= e["start"], e["factor"], 1.0)
    m, levels = {}, {}
    for k, b in base.items():
        lvl = levels[k] = b * wave * load[k]
        rel = rng.uniform(0.02, 0.12)  # relative noise at the base level ...
        het = rng.uniform(0.0, 1.0)  # ... growing as level^het (heteroscedastic)
        m[k] = lvl + rel * b * (lvl / b) ** (1 + het) * rng.standard_normal(t.size)
    present = np.ones(t.size, dtype=bool)
    for e in evs:
        if e["kind"] in ("spike", "spike_cluster"):
            for s0, d, x in e["spikes"]:
                w = (t >= s0) & (t < s0 + d)
                m[e["metric"]][w] *= x
        elif e["kind"] == "dropout_rows":
            present &= ~((t >= e["start"]) & (t < e["end"]))
        elif e["kind"] == "dropout_nan":
            w = (t >= e["start"]) & (t < e["end"])
            for k in m:
                m[k][w] = np.nan
    for e in evs:
        pk = {k: float(np.nanmax(m[k][(t >= e["start"] - dt) & (t <= e["end"] + dt)] / THRESHOLDS[k], initial=0.0))
              for k in m}
        e["peak_over_threshold"] = {k: round(v, 2) for k, v in pk.items()}  # samples, noise and spikes included
        w = (t >= e["start"] - dt) & (t <= e["end"] + dt)
        e["level_peak_over_threshold"] = {k: round(float(levels[k][w].max(initial=0.0) / THRESHOLDS[k]), 2) for k in m}
    return m, present, evs


def lookalike_trace(seed: int, n: int) -> tuple[pd.DataFrame, list[dict]]:
    """Trace ``n`` of ``seed``: a frame in the trace CSV layout and its events."""
    rng = np.random.default_rng([seed, n, 6006])
    dt = float(rng.choice(SAMPLING_S))
    t = START + seed * 86_400 * 3 + np.arange(0, _hours(dt) * 3600, dt)
    frames, events = [], []
    for e in range(ENDPOINTS):
        name = f"lookalike-s{seed}-n{n}-ep{e}"
        m, present, evs = _endpoint(rng, t, dt)
        frame = pd.DataFrame({"timestamp": t, "endpoint": name})
        for k in METRICS:
            frame[k] = np.round(np.clip(m[k], 0, 100 if k.endswith("pct") else None), 3)
        frame["up"] = 1
        frames.append(frame[present])
        events += [{"endpoint": name, "sampling_s": dt, **ev} for ev in evs]
    return pd.concat(frames).sort_values(["timestamp", "endpoint"], kind="stable"), events


def write_set(out_dir: str | Path, seeds: list[int], per_seed: int = 4) -> list[Path]:
    """Write ``lookalike-<seed>-<n>.csv`` and its ``.events.json`` for each seed; returns the CSV paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        for n in range(per_seed):
            frame, events = lookalike_trace(seed, n)
            path = out / f"lookalike-{seed}-{n}.csv"
            frame.to_csv(path, index=False, na_rep="")
            path.with_suffix(".events.json").write_text(json.dumps(events, indent=1) + "\n")
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pfepo.traces.lookalikes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--per-seed", type=int, default=4)
    a = ap.parse_args(argv)
    for p in write_set(a.out, a.seeds, a.per_seed):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
