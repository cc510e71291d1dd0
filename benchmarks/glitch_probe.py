"""Glitches of a few rows (a counter wrap, a value in the wrong unit) in an anomaly-free series: how often
does `pfepo predict` alarm for one?

One glitch should be one alarm. Before the twenty-first session a one-row glitch of 1e5 noise sds or more
alarmed a second time exactly when its refractory period ended (the references had followed the glitch);
before the twenty-second a two-row glitch still did. Per glitch length, sampling step and series shape
(white noise N(10, 1) with rows set to 1e6; log-normal around 1,000 with rows x1e4, scored in log space)
it prints the alarm onsets within 500 rows of the glitch, per seed (5,000 rows, the glitch at row 1,500).

    python benchmarks/glitch_probe.py [--seeds 6] [--rows 1 2 3]
"""

from __future__ import annotations

import argparse

import numpy as np

from pfepo.predict.univariate import alarm_onsets, score_series


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=6, help="seeds per case (default 6)")
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 2, 3], help="glitch lengths in rows")
    args = ap.parse_args()
    n, at = 5000, 1500
    for rows in args.rows:
        for dt, mult in ((300.0, False), (3600.0, False), (300.0, True)):
            counts = []
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                y = np.exp(rng.normal(np.log(1000.0), 0.1, n)) if mult else rng.normal(10.0, 1.0, n)
                y[at : at + rows] = y[at : at + rows] * 1e4 if mult else 1e6
                r = score_series(y, 1.7e9 + dt * np.arange(n))
                o = alarm_onsets(r)
                counts.append(int(((o >= at - 10) & (o < at + 500)).sum()))
            shape = "log-normal x1e4" if mult else "N(10, 1) at 1e6"
            print(f"glitch of {rows} row(s), {shape}, every {dt:.0f} s: alarms per seed {counts}")


if __name__ == "__main__":
    main()
