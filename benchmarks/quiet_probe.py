"""Normal series of shapes real telemetry has and our corpora lack: how often does `pfepo predict` alarm?

None of these series holds an anomaly, so every alarm onset (risk crossing 0.5 upwards) is a false one.
Per shape, sampling step and seed it prints the onsets in all and per day after the first two days (the
profile's learning days). A probe for the shapes behind a change, not a score to tune: each shape is a
plain textbook model, written before any change it was used to check.

    python benchmarks/quiet_probe.py [--seeds 1 2] [--rows 8000] [--steps 60 300] [--json OUT]

Shapes: white noise; a 5-minute job every hour and a 10-minute job every 90 minutes (8 sds); a random
walk; an AR(0.99) wander; sparse Poisson counts (0.3 / 0.8 per row by half-day); Poisson counts on a
daily cycle; quantised CPU (gamma, rounded); Student-t (3 dof) noise; a disk filling and emptied at random
once full; noise whose sd triples for half of each day; lognormal bursts. Same method as `pfepo predict`
(``univariate.score_series``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
from phase_probe import DAY, finish, probe_parser  # benchmarks/: the script's own directory

from pfepo.evaluate.streamscore import ar_path
from pfepo.predict.univariate import alarm_onsets, score_series


def shapes(rng: np.random.Generator, n: int, dt: float) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    t = 1.7e9 - 1.7e9 % DAY + np.arange(n) * dt
    ph = t % DAY
    half = np.sin(2 * np.pi * ph / DAY) > 0
    yield "white", t, 50 + rng.normal(0, 1, n)
    yield "hourly_job", t, 50 + rng.normal(0, 1, n) + 8 * ((t % 3600) < 300)
    yield "job_90min", t, 50 + rng.normal(0, 1, n) + 8 * ((t % 5400) < 600)
    yield "randwalk", t, 100 + np.cumsum(rng.normal(0, 1, n))
    yield "ar_0.99", t, 100 + ar_path(rng.normal(0, 1, n), 0.99)
    yield "sparse_pois", t, rng.poisson(0.3 + 0.5 * half, n).astype(float)
    yield "pois_daily", t, rng.poisson(50 * (1.2 + np.sin(2 * np.pi * ph / DAY)), n).astype(float)
    yield "quant_cpu", t, np.round(np.clip(3 + rng.gamma(1.0, 1.0, n), 0, 100))
    yield "heavy_t3", t, 50 + rng.standard_t(3, n)
    fill = np.zeros(n)
    lvl = 0.0
    for i in range(n):
        lvl += abs(rng.normal(0.02, 0.01))
        if lvl > 10 and rng.random() < 0.01:
            lvl = 0.0
        fill[i] = lvl
    yield "disk_fill", t, 40 + fill + rng.normal(0, 0.05, n)
    yield "var_daily", t, 50 + rng.normal(0, 1, n) * (1 + 2 * half)
    yield "bursty_lognorm", t, np.exp(rng.normal(3, 0.5, n))


def main(argv: list[str] | None = None) -> int:
    a = probe_parser(__doc__, 8000, "rows per series (8,000 = 5.6 days at 1 min)", steps=True).parse_args(argv)
    t0 = time.perf_counter()
    out = []
    print(f"{'shape':15} {'dt':>5} {'seed':>4} {'onsets':>6} {'/day>2':>7}")
    for dt in a.steps:
        for seed in a.seeds:
            for name, t, y in shapes(np.random.default_rng(seed), a.rows, dt):
                on = alarm_onsets(score_series(y, t))
                day = (t[on] - t[0]) / DAY
                span = (t[-1] - t[0]) / DAY - 2
                late = float((day >= 2).sum() / span) if span > 0 else float("nan")
                out.append({"shape": name, "dt": dt, "seed": seed, "rows": a.rows, "onsets": int(on.size),
                            "per_day_after_day2": round(late, 2)})
                print(f"{name:15} {dt:5.0f} {seed:4d} {on.size:6d} {late:7.2f}")
    return finish(out, t0, a.json, f", {sum(r['onsets'] for r in out)} onsets in all,")


if __name__ == "__main__":
    raise SystemExit(main())
