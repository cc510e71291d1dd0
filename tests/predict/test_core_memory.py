"""The anomaly core's per-chunk seasonal sums are held only for the profile positions a chunk touched
(``ChunkSums``): at the engine's few-second steps a 256-step chunk touches 1-3 of the 96 phase bins, and
dense (series x 7 days x 96 bins) sums were a third of the engine's memory per series."""

from __future__ import annotations

import numpy as np

from pfepo.predict.core import AnomalyCore, CoreParams


def _rows(n_rows: int, n: int, dt: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = 1.7e9 + np.arange(n_rows) * dt
    y = 50 + 10 * np.sin(2 * np.pi * t / 86_400)[:, None] + rng.normal(0, 1, (n_rows, n))
    return t, y


def test_chunk_sums_hold_only_the_positions_the_chunk_touched():
    n = 50
    core = AnomalyCore(CoreParams(dt=5.0), n)
    t, y = _rows(200, n, 5.0)  # 1,000 s: at most 2 phase bins of 900 s
    for i in range(t.size):
        core.update(y[i : i + 1], t[i : i + 1])
    assert core.bins == 96 and core.weekly
    for sums in (core.acc, core.dw_acc):
        assert 1 <= sums.pos.size <= 2, sums.pos
        assert sums.s.shape == (n, sums.pos.size)
    # a dense (7 x 96) pair per series alone would be 10.75 kB; these are a few dozen bytes
    assert (core.acc.nbytes + core.dw_acc.nbytes - core.acc.col.nbytes - core.dw_acc.col.nbytes) / n <= 4 * 2 * 8 * 2


def test_chunk_sums_are_folded_and_cleared_at_each_chunk_boundary():
    core = AnomalyCore(CoreParams(dt=60.0), 3)
    t, y = _rows(1600, 3, 60.0)
    # exactly six chunks of the core's clock: past the first day, whose rows the day-of-week sums leave out
    core.update(y[:1536], t[:1536])
    assert core.acc.pos.size == 0 and core.dw_acc.pos.size == 0
    assert (core.dw_cover > 0).any() and (core.cover > 0).any()
    core.update(y[1536:], t[1536:])
    assert core.dw_acc.pos.size > 0


def test_series_added_mid_chunk_leave_the_others_sums_intact():
    """grow() in the middle of a chunk: the first series' chunk sums so far survive (they are folded at the
    boundary exactly as in a core that had both series from the start)."""
    t, y = _rows(1500, 2, 60.0)
    both = AnomalyCore(CoreParams(dt=60.0), 2)
    late = AnomalyCore(CoreParams(dt=60.0), 1)
    y_both = y.copy()
    y_both[:700, 1] = np.nan  # the second series has no rows before it exists
    for i in range(t.size):
        r_both = both.update(y_both[i : i + 1], t[i : i + 1])
        if i == 700:  # not a chunk boundary (256, 512, 768)
            late.grow(2)
        r_late = late.update(y[i : i + 1, : late.n], t[i : i + 1])
        assert r_both[0, 0] == r_late[0, 0]
    np.testing.assert_array_equal(both.dw_prof[0], late.dw_prof[0])
    np.testing.assert_array_equal(both.half[0], late.half[0])
    np.testing.assert_array_equal(both.cover[0], late.cover[0])
