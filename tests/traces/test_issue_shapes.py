"""The issue-13 sanity set: the shapes the issue's text names, in the trace format, at 5 s sampling."""

from __future__ import annotations

import numpy as np

from pfepo.traces.csv import failure_starts, read_trace
from pfepo.traces.issue_shapes import BENIGN, FAILURES, write_set


def test_the_set_holds_five_failures_in_four_traces_and_two_quiet_benign_traces(tmp_path):
    paths = write_set(tmp_path, [7])
    assert len(paths) == len(FAILURES) + len(BENIGN) == 6
    failures = 0
    for p in paths:
        tr = read_trace(p)  # the project's own reader accepts it
        ts = tr.frame["ts"].to_numpy()
        assert np.median(np.diff(np.unique(ts))) == 5.0
        n = sum(len(v) for v in failure_starts(tr).values())
        if any(p.name.startswith(k) for k in BENIGN):
            assert n == 0
            assert tr.frame["latency_ms"].isna().any()  # the 30 s dropout
        else:
            assert n >= 1
        failures += n
    assert failures == 5


def test_cpu_climb_reaches_99_and_latency_joins_only_in_the_last_5_minutes(tmp_path):
    tr = read_trace(write_set(tmp_path, [3])[FAILURES.index("cpu_climb20")])
    f = tr.frame
    ep = f[f["endpoint"] == f["endpoint"].iloc[0]]
    t_fail = float(failure_starts(tr)[ep["endpoint"].iloc[0]][0])
    before = ep[(ep["ts"] < t_fail) & (ep["ts"] >= t_fail - 1200)]
    assert before["cpu_pct"].iloc[-1] > 95
    early = before[before["ts"] < t_fail - 330]
    assert early["latency_ms"].max() < 150  # latency follows only in the last 5 minutes
    assert before["latency_ms"].iloc[-1] > 150


def test_the_busy_util_climb_family_is_extra_and_climbs_from_a_busy_level_to_100(tmp_path):
    """(ar10) ``util_busy10`` is written only when asked (the default set is unchanged; ``noise_scale`` 1 is
    the set itself): a busy endpoint (55-70 %) whose utilisation climbs to ~100 % over 10 minutes."""
    import pandas as pd

    from pfepo.traces.issue_shapes import EXTRA, issue_trace

    assert "util_busy10" in EXTRA and "util_busy10" not in FAILURES + BENIGN
    pd.testing.assert_frame_equal(issue_trace("benign_b", 2, 0.8), issue_trace("benign_b", 2, 0.8, 1.0))
    for seed in (1, 2, 3):
        p = write_set(tmp_path, [seed], ar=0.8, noise_scale=1.5, kinds=("util_busy10",))[0]
        tr = read_trace(p)
        f = tr.frame
        ep = f[f["endpoint"] == f["endpoint"].iloc[0]]
        t_fail = float(failure_starts(tr)[ep["endpoint"].iloc[0]][0])
        u = ep[(ep["ts"] < t_fail)].set_index("ts")["utilization_pct"]
        before = u[(u.index >= t_fail - 3600) & (u.index < t_fail - 900)].mean()
        last = u[u.index >= t_fail - 60].mean()
        assert 50 <= before <= 80 and last >= 85, (seed, before, last)
