"""How high the risk of `pfepo predict` rises at a sustained level shift (thirteenth session's reading).

20 hourly AR(0.5) series of 1,800 rows (unit innovations), each with one shift of 3-5 innovation sds at a
random row in 900-1500; per series: the rows from the shift to the first risk >= 0.5, the peak risk in the
100 rows after it, and flags >= 0.5 before it (after the first 15 %). Before lvl13 the level channel's
alarms read ~0.5-0.6 (8 alarms peaked below 0.6), since then >= 0.84 (5 below 0.6: the core's own weak
onsets, which fire first and hold the channel): under a best threshold of 0.6-0.7 those do not count.

    python benchmarks/level_shift_alarm_height.py
"""

from __future__ import annotations

import numpy as np

from pfepo.evaluate.streamscore import ar_path
from pfepo.predict.univariate import score_series


def main() -> None:
    hits, lat, fps, low = 0, [], 0, 0
    for seed in range(20):
        rng = np.random.default_rng(seed + 1000)
        n, dt = 1800, 3600.0
        y = ar_path(rng.normal(0, 1, n), 0.5) + 5
        s = int(rng.integers(900, 1500))
        mag = rng.uniform(3, 5) * rng.choice([-1, 1])
        y[s:] += mag
        r = score_series(y, 1.5e9 + np.arange(n) * dt)
        f = np.flatnonzero(r[s : s + 100] >= 0.5)
        pre = np.flatnonzero(r[270:s] >= 0.5)
        fps += pre.size
        peak = float(r[s : s + 100].max())
        if f.size:
            hits += 1
            lat.append(int(f[0]))
            low += peak < 0.6
        print(f"{seed:2d} shift {mag:+.2f} at {s}: first risk >= 0.5 after {f[0] if f.size else None} rows, "
              f"peak {peak:.3f}, flags before {pre.size}")
    print(f"alarms {hits}/20, median rows to alarm {np.median(lat) if lat else None}, max {max(lat) if lat else None}, "
          f"alarms peaking below 0.6: {low}, flags before the shifts {fps}")


if __name__ == "__main__":
    main()
