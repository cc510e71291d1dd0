"""Broad synthetic trace families for training and for leave-one-family-out evaluation.

Independent of pfepo.traces.generate (the original eight scenarios): every trace draws its own sampling
interval (1-60 s), and every endpoint its own levels, noise (heteroscedastic: it grows with load),
seasonal wave (period 30 min to 24 h), benign level shifts, quantisation, missing cells and dropouts,
short spikes and busy plateaus. Failure families differ in which metric carries the precursor and how:

- ``latency_creep``  latency rises (linear, power, exponential or logistic) over 1-30 min
- ``loss_ramp``      packet loss ramps over 1-10 min, errors often with it
- ``cpu_climb``      CPU climbs to 93-100 % over 5-30 min; latency joins late (last 10-40 %) or never
- ``util_climb``     utilisation climbs to 97-100 % over 3-20 min; loss/latency join late or never
- ``error_ramp``     the error rate alone ramps over 1-15 min
- ``multi_degrade``  two or three metrics degrade together over 2-20 min

Benign families (must stay quiet): ``benign_spiky`` (many 5-40 s spikes, some above thresholds),
``benign_busy`` (busy plateaus of 20-120 min: utilisation x1.2-1.7, CPU x1.2-1.6), ``benign_wave``
(strong seasonal waves and level shifts), ``benign_gappy`` (dropouts, missing cells, coarse values).

A failing endpoint's ``up`` goes to 0 when its precursor ends and stays down 2-20 minutes; while down,
latency/CPU/errors are missing, loss is 100 and utilisation 0 (as in pfepo.traces.generate).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pfepo.traces.csv import METRICS

FAILURE_FAMILIES = ("latency_creep", "loss_ramp", "cpu_climb", "util_climb", "error_ramp", "multi_degrade")
BENIGN_FAMILIES = ("benign_spiky", "benign_busy", "benign_wave", "benign_gappy")
FAMILIES = FAILURE_FAMILIES + BENIGN_FAMILIES
SAMPLING_S = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
THRESHOLDS = {"latency_ms": 150.0, "loss_pct": 2.0, "utilization_pct": 95.0, "cpu_pct": 90.0, "error_rate_pct": 5.0}


def _shape(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """A monotone 0..1 precursor shape: linear, power, exponential or logistic."""
    kind = rng.integers(0, 4)
    if kind == 0:
        return p
    if kind == 1:
        return p ** rng.uniform(1.5, 3.0)
    if kind == 2:
        lam = rng.uniform(2.0, 5.0)
        return np.expm1(lam * p) / np.expm1(lam)
    k = rng.uniform(6, 12)
    lo, hi = 1 / (1 + np.exp(k * 0.5)), 1 / (1 + np.exp(-k * 0.5))
    return (1 / (1 + np.exp(-k * (p - 0.5))) - lo) / (hi - lo)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _base(rng: np.random.Generator, t: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    n = t.size
    period = _loguniform(rng, 1800, 86_400)
    amp = rng.uniform(0.03, 0.15) * (2.5 if kind == "benign_wave" else 1.0)
    load = 1 + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    if rng.random() < (0.9 if kind == "benign_wave" else 0.3):  # benign level shifts
        for _ in range(rng.integers(1, 4)):
            c = rng.uniform(t[0], t[-1])
            load = load * np.where(t >= c, rng.uniform(0.85, 1.2), 1.0)
    if kind == "benign_busy" or rng.random() < 0.2:  # busy plateaus with ramps
        for _ in range(rng.integers(1, 3 if kind != "benign_busy" else 4)):
            c, w, ramp = rng.uniform(t[0], t[-1]), rng.uniform(1200, 7200), rng.uniform(60, 600)
            f = rng.uniform(1.2, 1.7)
            up = np.clip((t - c) / ramp, 0, 1) * np.clip((c + w - t) / ramp, 0, 1)
            load = load * (1 + (f - 1) * up)
    util_b, cpu_b = rng.uniform(15, 55), rng.uniform(10, 50)
    het = rng.uniform(0.5, 1.5)  # noise grows with load (heteroscedastic)
    util = np.clip(util_b * load * (1 + rng.normal(0, rng.uniform(0.01, 0.06), n) * load**het), 0, 92)
    cpu = np.clip(cpu_b * load * (1 + rng.normal(0, rng.uniform(0.01, 0.08), n) * load**het), 0, 88)
    lat_b = _loguniform(rng, 5, 60)
    lat = lat_b * load**rng.uniform(0.3, 1.2) * rng.lognormal(0, rng.uniform(0.02, 0.2), n) * load**het
    loss = np.abs(rng.normal(0, rng.uniform(0.01, 0.15), n)) * load
    err = np.abs(rng.normal(0, rng.uniform(0.02, 0.4), n)) * load
    return {"latency_ms": lat, "loss_pct": loss, "utilization_pct": util, "cpu_pct": cpu, "error_rate_pct": err}


def _spikes(rng: np.random.Generator, t: np.ndarray, m: dict[str, np.ndarray], per_day: float) -> None:
    for _ in range(rng.poisson(per_day * (t[-1] - t[0]) / 86_400)):
        c, dur = rng.uniform(t[0], t[-1]), rng.uniform(5, 40)
        w = (t >= c) & (t < c + dur)
        k = rng.integers(0, 5)
        if k == 0:
            m["latency_ms"][w] *= rng.uniform(2, 5)
        elif k == 1:
            m["loss_pct"][w] += rng.uniform(0.5, 6)
        elif k == 2:
            m["cpu_pct"][w] = np.minimum(m["cpu_pct"][w] + rng.uniform(20, 50), 100)
        elif k == 3:
            m["utilization_pct"][w] = np.minimum(m["utilization_pct"][w] + rng.uniform(15, 45), 100)
        else:
            m["error_rate_pct"][w] += rng.uniform(1, 8)


def _toward(cur: np.ndarray, target: float, s: np.ndarray) -> np.ndarray:
    return cur + (target - cur) * s


def _precursor(fam: str, rng: np.random.Generator, t: np.ndarray, m: dict[str, np.ndarray], f: float, rec: float) -> None:
    """Degrade ``m`` before the failure at ``f``; repaired (back to normal) at recovery ``rec``."""
    lo, hi = {"latency_creep": (60, 1800), "loss_ramp": (60, 600), "cpu_climb": (300, 1800),
              "util_climb": (180, 1200), "error_ramp": (60, 900), "multi_degrade": (120, 1200)}[fam]
    dur = _loguniform(rng, lo, hi)
    p = np.where(t < rec, np.clip((t - (f - dur)) / dur, 0, 1), 0.0)
    s = _shape(rng, p)
    late = rng.uniform(0.6, 0.9) if rng.random() < 0.6 else None  # a follower joins late, or never
    sl = _shape(rng, np.clip((p - late) / (1 - late), 0, 1)) if late is not None else np.zeros_like(p)
    noise = lambda sd: rng.normal(1, sd, t.size)  # noqa: E731
    if fam == "latency_creep":
        m["latency_ms"] = m["latency_ms"] * (1 + rng.uniform(2, 12) * s * noise(0.05)) + THRESHOLDS["latency_ms"] * 0.3 * s
        m["error_rate_pct"] += rng.uniform(2, 10) * sl
    elif fam == "loss_ramp":
        m["loss_pct"] += rng.uniform(3, 20) * s * np.abs(noise(0.2))
        if rng.random() < 0.7:
            m["error_rate_pct"] += rng.uniform(3, 15) * s * np.abs(noise(0.2))
    elif fam == "cpu_climb":
        m["cpu_pct"] = np.minimum(_toward(m["cpu_pct"], rng.uniform(93, 100), s) + rng.normal(0, 1, t.size) * s, 100)
        m["latency_ms"] *= 1 + rng.uniform(1, 4) * sl
    elif fam == "util_climb":
        m["utilization_pct"] = np.minimum(_toward(m["utilization_pct"], rng.uniform(97, 100.5), s), 100)
        m["loss_pct"] += rng.uniform(2, 10) * sl
        m["latency_ms"] *= 1 + rng.uniform(0.5, 3) * sl
    elif fam == "error_ramp":
        m["error_rate_pct"] += rng.uniform(6, 30) * s * np.abs(noise(0.15))
    else:  # multi_degrade
        for k in rng.choice(["latency_ms", "loss_pct", "cpu_pct", "error_rate_pct", "utilization_pct"], 3, replace=False):
            if k == "latency_ms":
                m[k] = m[k] * (1 + rng.uniform(2, 8) * s) + 50 * s
            elif k in ("cpu_pct", "utilization_pct"):
                m[k] = np.minimum(_toward(m[k], rng.uniform(92, 100), s), 100)
            else:
                m[k] += rng.uniform(3, 15) * s


def _down(m: dict[str, np.ndarray], up: np.ndarray, w: np.ndarray) -> None:
    up[w] = 0
    for k in ("latency_ms", "cpu_pct", "error_rate_pct"):
        m[k][w] = np.nan
    m["loss_pct"][w] = 100.0
    m["utilization_pct"][w] = 0.0


def _gaps(rng: np.random.Generator, t: np.ndarray, m: dict[str, np.ndarray], heavy: bool) -> None:
    for k in m:
        miss = rng.random(t.size) < (rng.uniform(0.01, 0.08) if heavy else rng.uniform(0, 0.02))
        m[k][miss] = np.nan
    for _ in range(rng.poisson((6 if heavy else 1) * (t[-1] - t[0]) / 86_400 * 24 / 6)):
        c = rng.uniform(t[0], t[-1])
        w = (t >= c) & (t < c + rng.uniform(10, 180))
        for k in m:
            m[k][w] = np.nan


def family_trace(fam: str, seed: int, endpoints: int = 4, failing: int = 2, dt: float | None = None,
                 hours: float | None = None) -> pd.DataFrame:
    """One trace of family ``fam`` (a frame in the trace CSV layout); the seed fixes everything."""
    if fam not in FAMILIES:
        raise ValueError(f"unknown family {fam!r}; known: {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, FAMILIES.index(fam), 7919])
    dt = float(dt if dt is not None else rng.choice(SAMPLING_S))
    benign = fam in BENIGN_FAMILIES
    if hours is None:
        hours = rng.uniform(6, 12) if benign else rng.uniform(2, 4)
        hours = min(hours, 6000 * dt / 3600)  # bound rows per endpoint (replay cost)
    t = START + np.arange(0, hours * 3600, dt)
    frames = []
    for e in range(endpoints):
        m = _base(rng, t, fam)
        _spikes(rng, t, m, per_day=rng.uniform(20, 60) if fam == "benign_spiky" else rng.uniform(0, 12))
        up = np.ones(t.size)
        if not benign and e < failing:
            f = float(t[np.searchsorted(t, rng.uniform(t[0] + 0.5 * (t[-1] - t[0]), t[0] + 0.85 * (t[-1] - t[0])))])
            rec = f + rng.uniform(120, 1200)
            _precursor(fam, rng, t, m, f, rec)
            _down(m, up, (t >= f) & (t < rec))
        _gaps(rng, t, m, heavy=fam == "benign_gappy")
        q = 1.0 if fam == "benign_gappy" or rng.random() < 0.3 else 0.001
        frame = pd.DataFrame({"timestamp": np.round(t, 3), "endpoint": f"{fam.replace('_', '-')}-ep{e}"})
        for k in METRICS:
            v = np.clip(m[k], 0, None)
            frame[k] = np.round(v / q) * q if k != "loss_pct" and k != "error_rate_pct" else np.round(v, 3)
        frame["up"] = up.astype(int)
        frames.append(frame)
    return pd.concat(frames).sort_values(["timestamp", "endpoint"], kind="stable")


def generate_families(out_dir: str | Path, seed: int, families: tuple[str, ...] = FAMILIES, dt: float | None = None,
                      progress: Callable[[Path], None] | None = None) -> list[Path]:
    """Write ``<family>-f<seed>.csv`` per family into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fam in families:
        suffix = f"-dt{dt:g}" if dt is not None else ""
        path = out / f"{fam}-f{seed}{suffix}.csv"
        family_trace(fam, seed, dt=dt).to_csv(path, index=False, na_rep="")
        paths.append(path)
        if progress:
            progress(path)
    return paths


def family_of(path: str | Path) -> str:
    """The family a generated file belongs to (from its name)."""
    name = Path(path).name
    for fam in sorted(FAMILIES, key=len, reverse=True):
        if name.startswith(fam + "-"):
            return fam
    return "unknown"
