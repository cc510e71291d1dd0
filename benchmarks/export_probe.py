"""Anomaly-free series as real exports deliver them: how often does `pfepo predict` alarm?

None of these series holds an anomaly, so every alarm onset (risk crossing 0.5 upwards) is a false one.
Five textbook bases (white noise; a daily sine of 5 sds; AR(0.9); Poisson counts 3 +- 2 on a daily cycle;
Student-t noise of 3 degrees of freedom), each delivered as: clean; times jittered by up to 30 % of a step;
20 % of rows dropped at random; two days of rows missing; three hours missing; rounded to integers; 2 % of
values empty (NaN); every value repeated twice (a poller faster than its source). Per base and delivery it
prints onsets per 10,000 rows, averaged over the sampling steps and seeds. A probe written before the change
it checked (the eighteenth session's counts transform), not a score to tune.

    python benchmarks/export_probe.py [--seeds 1 2] [--rows 6000] [--steps 60 300] [--json OUT]

Same method as `pfepo predict` (``univariate.score_series``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
from phase_probe import DAY, finish, probe_parser  # benchmarks/: the script's own directory

from pfepo.evaluate.streamscore import ar_path
from pfepo.predict.univariate import alarm_onsets, score_series

BASES = ("white", "daily", "ar", "poisson", "t3")


def base(rng: np.random.Generator, kind: str, n: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    t = 1.7e9 + np.arange(n) * dt
    day = np.sin(2 * np.pi * (t % DAY) / DAY)
    y = {"white": lambda: 50 + rng.normal(0, 2, n),
         "daily": lambda: 50 + 10 * day + rng.normal(0, 2, n),
         "ar": lambda: 50 + ar_path(rng.normal(0, 1, n), 0.9),
         "poisson": lambda: rng.poisson(3 + 2 * day).astype(float),
         "t3": lambda: 50 + rng.standard_t(3, n)}[kind]()
    return t, y


def deliveries(rng: np.random.Generator, t: np.ndarray, y: np.ndarray, dt: float) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    n = t.size
    yield "clean", t, y
    yield "jitter30%", np.sort(t + rng.uniform(-0.3, 0.3, n) * dt), y
    keep = rng.random(n) > 0.2
    yield "drop20%", t[keep], y[keep]
    for name, span in (("gap2d", 2 * DAY), ("gap3h", 3 * 3600.0)):
        start = t[0] + (t[-1] - t[0]) / 2
        keep = (t < start) | (t >= start + span)
        yield name, t[keep], y[keep]
    yield "rounded", t, np.round(y)
    yn = y.copy()
    yn[rng.random(n) < 0.02] = np.nan
    yield "nan2%", t, yn
    yield "repeated", t, np.repeat(y[::2], 2)[:n]


def main(argv: list[str] | None = None) -> int:
    a = probe_parser(__doc__, 6000, "rows per series before any delivery change", steps=True).parse_args(argv)
    t0 = time.perf_counter()
    out, rates = [], {}
    for kind in BASES:
        for dt in a.steps:
            for seed in a.seeds:
                rng = np.random.default_rng([seed, int(dt)])
                t, y = base(rng, kind, a.rows, dt)
                for name, tt, yy in deliveries(rng, t, y, dt):
                    on = alarm_onsets(score_series(yy, tt))
                    per = on.size * 1e4 / yy.size
                    rates.setdefault((kind, name), []).append(per)
                    out.append({"base": kind, "delivery": name, "dt": dt, "seed": seed, "rows": int(yy.size),
                                "onsets": int(on.size), "per_10k": round(per, 2)})
    names = list(dict.fromkeys(name for _, name in rates))
    print(f"{'base':8} " + " ".join(f"{nm:>9}" for nm in names))
    for kind in BASES:
        print(f"{kind:8} " + " ".join(f"{np.mean(rates[(kind, nm)]):9.1f}" for nm in names))
    return finish(out, t0, a.json, f", {sum(r['onsets'] for r in out)} onsets in all,")


if __name__ == "__main__":
    raise SystemExit(main())
