"""Alarms of `pfepo predict` on clean daily cycles, which should have none once the cycle is learnt.

Fifty series of 14 days at 5-minute sampling: a daily sine of amplitude 20 around 50 at a random phase, plus
Gaussian noise of sd 0.5, 1, 2, 4 or 8 (ten seeds each). Nothing anomalous happens, so every alarm onset
after the first 15 % of the rows (~2 days, the daily profile's learning) is a false alarm. Written in the
twenty-seventh session to measure the jump when the seasonal correction changes at a refresh (a clean
cycle switched on at its peak alarmed). ``--sharp`` (twenty-ninth session): six daily shapes between 20 and 80 --
sine, trapezoid (a clipped sine), square, sawtooth, triangle, a pulse (10 % of the day high) -- with noise sd 0
and 0.1, six phases each, the same count. Usage::

    python benchmarks/sine_probe.py            # per noise level: onsets per series, first rows
    python benchmarks/sine_probe.py --sharp    # per shape and noise level
"""

from __future__ import annotations

import argparse

import numpy as np

from pfepo.predict.univariate import alarm_onsets, score_series

ROWS = 14 * 288
DT = 300.0
SKIP = int(0.15 * ROWS)


def sharp(kind: str, t: np.ndarray, ph: float) -> np.ndarray:
    """A daily shape at phase ``ph`` (radians): the sine of the default run, or one of ``--sharp``'s."""
    x = 2 * np.pi * t / 86_400 + ph
    frac = (t / 86_400 + ph / (2 * np.pi)) % 1.0
    return {"sine": 50 + 20 * np.sin(x), "trapezoid": np.clip(50 + 60 * np.sin(x), 20, 80),
            "square": np.where(np.sin(x) > 0, 80.0, 20.0), "sawtooth": 20 + 60 * frac,
            "triangle": 20 + 60 * np.abs(2 * frac - 1), "pulse": np.where(frac < 0.1, 80.0, 20.0)}[kind]


def onsets(sd: float, seed: int, kind: str = "sine") -> np.ndarray:
    """Alarm onsets after the first 15 % of one clean daily cycle (``sharp``'s ``kind``) with noise ``sd``."""
    t = np.arange(ROWS) * DT
    rng = np.random.default_rng(seed)
    y = sharp(kind, t, rng.random() * 2 * np.pi) + rng.normal(0, sd, ROWS)
    on = alarm_onsets(score_series(y, t))
    return on[on >= SKIP]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, help="series per noise level (seeds 0..N-1; default 10, with --sharp 6)")
    ap.add_argument("--sharp", action="store_true", help="six sharp daily shapes at noise sd 0 and 0.1")
    args = ap.parse_args()
    seeds = args.seeds or (6 if args.sharp else 10)
    total = 0
    if args.sharp:
        n = 0
        for kind in ("sine", "trapezoid", "square", "sawtooth", "triangle", "pulse"):
            for sd in (0.0, 0.1):
                per = [onsets(sd, s, kind) for s in range(seeds)]
                total += sum(len(o) for o in per)
                n += len(per)
                print(f"{kind} noise sd {sd}: onsets per series {[o.tolist() for o in per]}")
        print(f"total {total} false alarm onsets on {n} sharp daily cycles")
        return
    for sd in (0.5, 1.0, 2.0, 4.0, 8.0):
        per = [onsets(sd, s) for s in range(seeds)]
        total += sum(len(o) for o in per)
        rows = sorted(int(r) for o in per for r in o)[:12]
        print(f"noise sd {sd}: onsets per series {[len(o) for o in per]}, first rows {rows}")
    print(f"total {total} false alarm onsets on {5 * seeds} clean daily cycles")


if __name__ == "__main__":
    main()
