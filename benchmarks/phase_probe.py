"""Normal series that repeat something at one phase of every day: how often does `pfepo predict` alarm?

None of these series holds an anomaly, so every alarm onset (risk crossing 0.5 upwards) is a false one.
They are the shapes behind the fifteenth session's phase routine (docs/prediction-log.md): a daily job too
small for the daily profile to switch on, a business-hours plateau whose edges fall inside one of the
profile's 15-minute bins, a counter reset at midnight (a sawtooth). Before that routine each alarmed on
most days, forever; a routine thing should alarm on its first days at most. Per case it prints the days
with an onset (as day numbers from the start), the onsets per 10,000 rows and the last onset's day.

    python benchmarks/phase_probe.py [--seeds 1 2] [--rows 6000] [--json OUT]

Same method as `pfepo predict` (``univariate.score_series``); white noise of sd 1, UTC-aligned times.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from pfepo.predict.univariate import alarm_onsets, score_series

DAY = 86_400.0


def _times(n: int, dt: float, offset_s: float = 0.0) -> np.ndarray:
    return 1.7e9 - 1.7e9 % DAY + offset_s + np.arange(n) * dt


def job(height: float) -> Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray]]:
    """A 10-minute job of ``height`` noise sds at 02:00 every day (a backup, a cron batch)."""
    def make(rng: np.random.Generator, n: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
        t = _times(n, dt)
        ph = t % DAY
        return t, 100 + rng.normal(0, 1, n) + height * ((ph >= 7200) & (ph < 7800))
    return make


def mid_bin_edge(rng: np.random.Generator, n: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """A business-hours plateau of 10 sds whose edges fall 7.5 minutes into a 15-minute bin."""
    t = _times(n, dt, 450.0)
    ph = (t % DAY) / DAY
    return t, 100 + 10 * ((ph > 0.3) & (ph < 0.75)) + rng.normal(0, 1, n)


def sawtooth(rng: np.random.Generator, n: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """A counter that climbs 20 sds over the day and resets at midnight."""
    t = _times(n, dt)
    return t, 100 + 20 * (t % DAY) / DAY + rng.normal(0, 1, n)


CASES: dict[str, Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray]]] = {
    "job8": job(8.0), "job15": job(15.0), "edge": mid_bin_edge, "sawtooth": sawtooth}
STEPS = (60.0, 300.0, 600.0)


def probe_parser(doc: str, rows: int, rows_help: str, steps: bool = False) -> argparse.ArgumentParser:
    """The probes' shared options: seeds, rows per series, sampling steps (where the probe takes them), JSON."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rows", type=int, default=rows, help=rows_help)
    if steps:
        ap.add_argument("--steps", type=float, nargs="+", default=[60.0, 300.0], help="sampling steps in seconds")
    ap.add_argument("--json", help="write the rows here too")
    return ap


def finish(out: list[dict], t0: float, path: str | None, summary: str = "") -> int:
    """The closing line, and the rows as JSON where asked."""
    print(f"{len(out)} series{summary} in {time.perf_counter() - t0:.1f} s")
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
    return 0


def probe(case: str, dt: float, seed: int, rows: int) -> dict:
    t, y = CASES[case](np.random.default_rng(seed), rows, dt)
    onsets = alarm_onsets(score_series(y, t))
    day = ((t[onsets] - t[0]) // DAY).astype(int)
    return {"case": case, "dt": dt, "seed": seed, "rows": rows, "days": round((t[-1] - t[0]) / DAY, 1),
            "alarm_days": sorted(set(day.tolist())), "onsets": int(onsets.size),
            "per_10k_rows": round(onsets.size * 10_000 / rows, 1),
            "last_onset_day": round(float((t[onsets[-1]] - t[0]) / DAY), 2) if onsets.size else None}


def main(argv: list[str] | None = None) -> int:
    a = probe_parser(__doc__, 6000, "rows per series (6,000 = 4.2 days at 1 min)").parse_args(argv)
    t0 = time.perf_counter()
    out = []
    print(f"{'case':9} {'dt':>5} {'seed':>4} {'days':>5} {'onsets':>6} {'/10k':>5} {'last':>6}  alarm days")
    for case in CASES:
        for dt in STEPS:
            for seed in a.seeds:
                row = probe(case, dt, seed, a.rows)
                out.append(row)
                last = "-" if row["last_onset_day"] is None else f"{row['last_onset_day']:.2f}"
                print(f"{case:9} {dt:5.0f} {seed:4d} {row['days']:5.1f} {row['onsets']:6d} "
                      f"{row['per_10k_rows']:5.1f} {last:>6}  {row['alarm_days']}")
    return finish(out, t0, a.json)


if __name__ == "__main__":
    raise SystemExit(main())
