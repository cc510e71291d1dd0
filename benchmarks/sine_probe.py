"""Alarms of `pfepo predict` on clean daily cycles, which should have none once the cycle is learnt.

Fifty series of 14 days at 5-minute sampling: a daily sine of amplitude 20 around 50 at a random phase, plus
Gaussian noise of sd 0.5, 1, 2, 4 or 8 (ten seeds each). Nothing anomalous happens, so every alarm onset
after the first 15 % of the rows (~2 days, the daily profile's learning) is a false alarm. Written in the
twenty-seventh session to measure the jump when the seasonal correction changes at a refresh (a clean
cycle switched on at its peak alarmed); usage::

    python benchmarks/sine_probe.py            # per noise level: onsets per series, first rows
"""

from __future__ import annotations

import argparse

import numpy as np

from pfepo.predict.univariate import alarm_onsets, score_series

ROWS = 14 * 288
DT = 300.0
SKIP = int(0.15 * ROWS)


def onsets(sd: float, seed: int) -> np.ndarray:
    """Alarm onsets after the first 15 % of one clean daily cycle with noise ``sd``."""
    t = np.arange(ROWS) * DT
    rng = np.random.default_rng(seed)
    y = 50 + 20 * np.sin(2 * np.pi * t / 86_400 + rng.random() * 2 * np.pi) + rng.normal(0, sd, ROWS)
    on = alarm_onsets(score_series(y, t))
    return on[on >= SKIP]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10, help="series per noise level (seeds 0..N-1)")
    args = ap.parse_args()
    total = 0
    for sd in (0.5, 1.0, 2.0, 4.0, 8.0):
        per = [onsets(sd, s) for s in range(args.seeds)]
        total += sum(len(o) for o in per)
        rows = sorted(int(r) for o in per for r in o)[:12]
        print(f"noise sd {sd}: onsets per series {[len(o) for o in per]}, first rows {rows}")
    print(f"total {total} false alarm onsets on {5 * args.seeds} clean daily cycles")


if __name__ == "__main__":
    main()
