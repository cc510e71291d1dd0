"""Alarms of `pfepo predict` on integer series that follow a daily schedule, which should have none.

Scheduled capacity and batch jobs make exact, integer daily patterns: 4 instances by night and 10 by day;
the same with 7 over lunch; a job running (1) one hour a night; the first with one instance more on 5 % of
the rows. Eight series of each (random start phase), 14 days at 5-minute sampling; every alarm onset after
the first 15 % of the rows (~2 days, the daily profile's learning) is false. Written in the twenty-eighth
session: the value quantum was measured on the season-corrected rows, whose profile steps are not integer;
usage::

    python benchmarks/schedule_probe.py
"""

from __future__ import annotations

import argparse

import numpy as np

from pfepo.predict.univariate import alarm_onsets, score_series

ROWS = 14 * 288
DT = 300.0
SKIP = int(0.15 * ROWS)


def series(shape: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of one scheduled series."""
    t = 1.4e9 + int(rng.integers(0, 288)) * DT + np.arange(ROWS) * DT
    hour = (t % 86_400) / 3600
    day = (hour >= 8) & (hour < 20)
    if shape == "4/10":
        y = np.where(day, 10.0, 4.0)
    elif shape == "4/10/7 lunch":
        y = np.where(day, np.where((hour >= 12) & (hour < 13), 7.0, 10.0), 4.0)
    elif shape == "0/1 nightly job":
        y = np.where((hour >= 2) & (hour < 3), 1.0, 0.0)
    else:  # "4/10 +1 on 5 %"
        y = np.where(day, 10.0, 4.0) + (rng.random(ROWS) < 0.05)
    return t, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8, help="series per shape (seeds 0..N-1)")
    args = ap.parse_args()
    total = 0
    for shape in ("4/10", "4/10/7 lunch", "0/1 nightly job", "4/10 +1 on 5 %"):
        per = []
        for seed in range(args.seeds):
            t, y = series(shape, np.random.default_rng(seed))
            on = alarm_onsets(score_series(y, t))
            per.append(int((on >= SKIP).sum()))
        total += sum(per)
        print(f"{shape:16s} false onsets per series {per}")
    print(f"total {total} false alarm onsets on {4 * args.seeds} scheduled series")


if __name__ == "__main__":
    main()
