"""Synthetic telemetry traces: failures with and without precursors, and benign load that must stay quiet.

Each scenario is one CSV in the trace format of docs/prediction.md with a few endpoints; some endpoints fail, the others carry
ordinary load, so every trace also measures false alarms. Randomness comes only from the seed, so a
seed fully determines a set. Scenario parameters (precursor length, shape, peak, noise, baselines) are
drawn per endpoint, so models cannot memorise one shape.

While an endpoint is down its probes fail: ``latency_ms``, ``cpu_pct`` and ``error_rate_pct`` are empty
(missing), ``loss_pct`` is 100 and ``utilization_pct`` drops to 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pfepo.traces.csv import METRICS
from pfepo.traces.scenarios import BENIGN, PRECURSOR, SCENARIOS


@dataclass(frozen=True)
class Sizes:
    """Default sizes keep evaluation of one seed's set to well under a minute."""

    endpoints: int = 4
    failing: int = 2
    failure_hours: float = 3.0
    failure_step_s: float = 5.0
    benign_hours: float = 24.0
    benign_step_s: float = 10.0
    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _base(rng: np.random.Generator, t: np.ndarray, busy: bool) -> dict[str, np.ndarray]:
    """Ordinary behaviour for one endpoint: daily load cycle, optional busy hours, noise."""
    n = t.size
    phase = rng.uniform(0, 86_400)
    load = 0.45 + rng.uniform(0.15, 0.3) * np.sin(2 * np.pi * (t - phase) / 86_400)
    if busy:
        for _ in range(rng.integers(2, 5)):
            c = rng.uniform(t[0], t[-1])
            w = rng.uniform(1200, 5400)
            load = load + rng.uniform(0.15, 0.3) * np.exp(-0.5 * ((t - c) / (w / 2)) ** 2)
    load = np.clip(load + rng.normal(0, 0.02, n), 0.02, 0.97)
    util = np.clip(100 * load + rng.normal(0, 2.0, n), 0, 100)
    cpu = np.clip(10 + rng.uniform(40, 70) * load + rng.normal(0, 3.0, n), 0, 100)
    lat_base = rng.uniform(15, 60)
    queue = np.maximum(util - 85, 0) / 15
    latency = lat_base * (1 + 0.4 * load + 1.5 * queue**2) * rng.lognormal(0, rng.uniform(0.05, 0.15), n)
    loss = np.abs(rng.normal(0.05, 0.05, n)) + 2.0 * np.maximum(util - 97, 0) / 3
    err = np.abs(rng.normal(0.2, 0.1, n)) + 3.0 * np.maximum(cpu - 92, 0) / 8
    return {
        "latency_ms": latency,
        "loss_pct": loss,
        "utilization_pct": util,
        "cpu_pct": cpu,
        "error_rate_pct": err,
    }


def _spikes(rng: np.random.Generator, t: np.ndarray, m: dict[str, np.ndarray], per_day: float) -> None:
    """Short benign spikes (a GC pause, a burst, a probe hiccup): large but brief, then gone."""
    n_spikes = rng.poisson(per_day * (t[-1] - t[0]) / 86_400)
    for _ in range(n_spikes):
        c = rng.uniform(t[0], t[-1])
        dur = rng.uniform(10, 60)
        w = (t >= c) & (t < c + dur)
        kind = rng.integers(0, 4)
        if kind == 0:
            m["latency_ms"][w] *= rng.uniform(3, 8)
        elif kind == 1:
            m["loss_pct"][w] += rng.uniform(2, 10)
        elif kind == 2:
            m["cpu_pct"][w] = np.clip(m["cpu_pct"][w] + rng.uniform(30, 50), 0, 100)
            m["error_rate_pct"][w] += rng.uniform(1, 6)
        else:
            m["utilization_pct"][w] = np.clip(m["utilization_pct"][w] + rng.uniform(20, 45), 0, 100)


def _ramp(t: np.ndarray, f: float, dur: float, shape: float) -> np.ndarray:
    """0 before ``f - dur``, rising to 1 at ``f`` as p**shape (degradation accelerates)."""
    p = np.clip((t - (f - dur)) / dur, 0, 1)
    return p**shape


def _precursor(kind: str, rng: np.random.Generator, t: np.ndarray, m: dict[str, np.ndarray], f: float) -> None:
    dur = rng.uniform(240, 1200)
    p = _ramp(t, f, dur, rng.uniform(1.3, 3.0))
    n = t.size
    if kind == "latency_creep":
        peak = rng.uniform(250, 500)
        m["latency_ms"] += peak * p * rng.lognormal(0, 0.1, n)
        m["error_rate_pct"] += rng.uniform(0, 3) * p
    elif kind == "loss_ramp":
        m["loss_pct"] += rng.uniform(6, 25) * p * np.abs(rng.normal(1, 0.25, n))
        m["latency_ms"] *= 1 + rng.uniform(0.1, 0.6) * p
    elif kind == "link_saturation":
        m["utilization_pct"] = np.clip(m["utilization_pct"] + (101 - m["utilization_pct"]) * p, 0, 100)
        q = np.maximum(m["utilization_pct"] - 85, 0) / 15
        m["latency_ms"] *= 1 + rng.uniform(2, 5) * q**2 * p
        m["loss_pct"] += rng.uniform(3, 12) * p**2
    elif kind == "cpu_exhaustion":
        m["cpu_pct"] = np.clip(m["cpu_pct"] + (100 - m["cpu_pct"]) * p + rng.normal(0, 1.5, n) * p, 0, 100)
        m["error_rate_pct"] += rng.uniform(4, 15) * p**2
        m["latency_ms"] *= 1 + rng.uniform(0.3, 1.5) * p


def _down(m: dict[str, np.ndarray], up: np.ndarray, w: np.ndarray) -> None:
    up[w] = 0
    m["latency_ms"][w] = np.nan
    m["cpu_pct"][w] = np.nan
    m["error_rate_pct"][w] = np.nan
    m["loss_pct"][w] = 100.0
    m["utilization_pct"][w] = 0.0


def _trace(scenario: str, rng: np.random.Generator, sizes: Sizes) -> pd.DataFrame:
    benign = scenario in BENIGN
    hours = sizes.benign_hours if benign else sizes.failure_hours
    step = sizes.benign_step_s if benign else sizes.failure_step_s
    t = sizes.start + np.arange(0, hours * 3600, step)
    frames = []
    for e in range(sizes.endpoints):
        name = f"{scenario.replace('_', '-')}-ep{e}"
        m = _base(rng, t, busy=scenario == "benign_spikes" or rng.random() < 0.3)
        _spikes(rng, t, m, per_day=24.0 if scenario == "benign_spikes" else 4.0)
        up = np.ones(t.size)
        if not benign and e < sizes.failing:
            lo, hi = t[0] + 0.45 * (t[-1] - t[0]), t[0] + 0.8 * (t[-1] - t[0])
            f = float(t[np.searchsorted(t, rng.uniform(lo, hi))])
            if scenario in PRECURSOR:
                _precursor(scenario, rng, t, m, f)
                _down(m, up, (t >= f) & (t < f + rng.uniform(300, 1200)))
            elif scenario == "sudden_failure":
                _down(m, up, (t >= f) & (t < f + rng.uniform(300, 1200)))
            else:  # flapping: short outages in a burst, each preceded by nothing but the last one
                c = f
                for _ in range(rng.integers(3, 7)):
                    _down(m, up, (t >= c) & (t < c + rng.uniform(15, 90)))
                    c += rng.uniform(120, 600)
        frame = pd.DataFrame({"timestamp": t, "endpoint": name})
        for k in METRICS:
            frame[k] = np.round(m[k], 3)
        frame["up"] = up.astype(int)
        frames.append(frame)
    out = pd.concat(frames).sort_values(["timestamp", "endpoint"], kind="stable")
    out["timestamp"] = out["timestamp"].map(lambda x: f"{x:.0f}")
    return out


def generate(
    out_dir: str | Path,
    seed: int,
    scenarios: tuple[str, ...] = SCENARIOS,
    sizes: Sizes = Sizes(),
    progress: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write one CSV per scenario into ``out_dir`` (``<scenario>-s<seed>.csv``); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, sc in enumerate(scenarios):
        if sc not in SCENARIOS:
            raise ValueError(f"unknown scenario {sc!r}; known: {', '.join(SCENARIOS)}")
        rng = np.random.default_rng([seed, SCENARIOS.index(sc), i])
        path = out / f"{sc}-s{seed}.csv"
        _trace(sc, rng, sizes).to_csv(path, index=False, na_rep="")
        paths.append(path)
        if progress:
            progress(path)
    return paths
