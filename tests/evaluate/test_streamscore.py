"""The streaming-benchmark scoring used for pfepo predict's figures: null 0, perfect 100, early > late."""

from __future__ import annotations

import numpy as np

from pfepo.evaluate.streamscore import Labelled, benchmark, score_file


def _corpus():
    t = np.arange(1000.0)
    return [Labelled("a", t, np.zeros(1000), [(400, 500)]), Labelled("b", t, np.zeros(1000), [(700, 760)])]


def test_null_scores_0_and_perfect_100_and_false_flags_cost():
    c = _corpus()
    null = [np.zeros(1000), np.zeros(1000)]
    perfect = [np.zeros(1000), np.zeros(1000)]
    perfect[0][400] = perfect[1][700] = 1.0
    noisy = [p.copy() for p in perfect]
    noisy[0][200:260] = 1.0  # 60 flags outside any window
    res = benchmark(c, {"null": null, "perfect": perfect, "noisy": noisy})
    assert res["null"]["score"] == 0.0 and res["perfect"]["score"] == 100.0
    assert res["noisy"]["score"] < 100.0


def test_early_detection_earns_more_than_late():
    early, late = np.zeros(1000, bool), np.zeros(1000, bool)
    early[405], late[495] = True, True
    assert score_file(early, [(400, 500)])[0] > score_file(late, [(400, 500)])[0] > 0
    flags_in_probation = np.zeros(1000, bool)
    flags_in_probation[10:100] = True  # the first 15 % are ignored
    assert score_file(flags_in_probation, [(400, 500)]) == (-1.0, 1)


def test_the_subtle_corpus_has_normal_series_and_the_generic_anomaly_classes():
    from pfepo.evaluate.streamscore import make_subtle

    rng = np.random.default_rng(1)
    corpus = [make_subtle(rng, k) for k in range(30)]
    normal = [s for s in corpus if not s.windows]
    assert len(normal) == 10  # every third series
    kinds = {k for s in corpus for k in s.name.split("-")[2].split("+")}
    assert {"frozen", "shift", "missing_peak", "spike_density", "variance", "slow_drift"} <= kinds
    for s in corpus:
        assert np.all(np.isfinite(s.y)) and np.all(np.diff(s.t) > 0)
        dt = s.t[1] - s.t[0]
        assert dt in (60.0, 300.0, 600.0)
        for a, b in s.windows:
            assert 0 <= a < b <= s.y.size
    frozen = next(s for s in corpus if "frozen" in s.name and "normal" not in s.name)
    assert (np.diff(frozen.y) == 0).sum() >= 5  # a stuck value repeats


def _digest(make, seed: int = 1, count: int = 12) -> str:
    import hashlib

    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    for k in range(count):
        s = make(rng, k)
        h.update(s.name.encode())
        h.update(s.t.tobytes())
        h.update(s.y.tobytes())
        h.update(repr([(int(a), int(b)) for a, b in s.windows]).encode())
    return h.hexdigest()


def test_the_shared_base_generator_keeps_both_corpora_byte_identical():
    """stream8 factored the base series of both generators into one ``_base_series``; the digests are
    those of the code before (1ee4e50), so every seed's corpus, and every figure measured on it, stands."""
    from pfepo.evaluate.streamscore import make_series, make_subtle

    assert _digest(make_series) == "5e996cf83e400a4b79402c619c1841af295e54f442c2a6b082ae1a2a96bb5769"
    assert _digest(make_subtle) == "1dfb6e15b7f9bf3b4231a5ab1b075eb5df17e8d9589527e678e1ff8f292f7ffe"


def test_the_wide_corpus_has_real_export_shapes():
    """--wide: heavy tails, bursts, flat stretches, integer steps, irregular sampling with gaps, persisting
    regime changes; every third series normal; windows inside the series after the gaps are cut."""
    from pfepo.evaluate.streamscore import WIDE_BASES, make_wide

    rng = np.random.default_rng(1)
    corpus = [make_wide(rng, k) for k in range(2 * len(WIDE_BASES))]
    assert {s.name.split("-")[1] for s in corpus} == set(WIDE_BASES)
    assert sum(not s.windows for s in corpus) == len([k for k in range(len(corpus)) if k % 3 == 2])
    for s in corpus:
        assert np.all(np.isfinite(s.y)) and np.all(np.diff(s.t) > 0)
        for a, b in s.windows:
            assert 0 <= a < b <= s.y.size
    irregular = [s for s in corpus if "irregular" in s.name]
    gaps = [np.diff(s.t).max() / np.median(np.diff(s.t)) for s in irregular]
    assert min(gaps) > 4  # rows never exported
    flat = next(s for s in corpus if "flat_active" in s.name)
    assert (flat.y == 0).mean() > 0.3
    steps = next(s for s in corpus if "steps_int" in s.name)
    assert np.all(steps.y == np.round(steps.y))


def test_the_weekly_corpus_has_weeks_normal_series_and_labelled_holidays_only_as_anomalies():
    """season9b: every base has normal and anomalous series, >= 2 weeks each (4 at 30-60 minutes), finite."""
    from pfepo.evaluate.streamscore import WEEKLY_BASES, make_weekly

    rng = np.random.default_rng(1)
    corpus = [make_weekly(rng, k) for k in range(2 * len(WEEKLY_BASES))]
    for s in corpus:
        dt = float(np.median(np.diff(s.t)))
        assert np.isfinite(s.y).all() and (s.t[-1] - s.t[0]) >= (4 * 7 - 1 if dt >= 1800 else 14) * 86_400 - dt
    for b in WEEKLY_BASES:
        mine = [s for s in corpus if s.name.split("-")[1] == b]
        assert any(not s.windows for s in mine) and any(s.windows for s in mine)
    assert all("holiday_day" not in s.name for s in corpus if not s.windows)


def test_shift_hours_moves_only_the_clock():
    """day12: ``--shift-hours`` exports the same corpus in another zone: timestamps + H hours, the values and
    the labelled row ranges unchanged, and 0 leaves the series as generated."""
    from pfepo.evaluate.streamscore import make_weekly, shift_hours

    s = make_weekly(np.random.default_rng(3), 0)
    m = shift_hours(s, -8.0)
    assert np.array_equal(m.t, s.t - 8 * 3600.0) and np.array_equal(m.y, s.y) and m.windows == s.windows
    assert shift_hours(s, 0.0) is s
