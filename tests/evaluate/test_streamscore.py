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
