"""The what-if's caches give the numbers a plain replay gives (console/replaycache.py, console/whatif.py).

Real SQLite history store, real engine with the shipped model, real policies and planner; no browser.
"""

from __future__ import annotations

import copy
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from pfepo.console import replaycache, whatif
from pfepo.daemon import build_runtime
from pfepo.telemetry.samples import Sample
from pfepo_lab.bench.whatif import runtime, synthetic_config
from tests.console.whatif_lab import inputs, same

R, E = 2, 3
HOURS = 1.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whatif")
    target, cfg, rt = runtime(tmp, R, E)
    # r0's uplink latency ramps over 150 -> r0 drains; its endpoints go down for 100 s, then recover
    now = time.time()
    n = int(HOURS * 360)
    rng = np.random.default_rng(1)
    rows = []
    for k in range(n):
        t = now - HOURS * 3600 + 10 * k
        for i in range(R):
            ramp = 250 * min(1.0, max(0, k - (n - 120)) / 40) if i == 0 and k < n - 30 else 0.0
            rows += [Sample(t, f"uplink:r{i}", "latency_ms", 20 + rng.normal(0, 2) + ramp),
                     Sample(t, f"uplink:r{i}", "loss_pct", 0.0)]
            for j in range(E):
                down = i == 0 and n - 70 <= k < n - 60
                rows += [Sample(t, f"r{i}-{j}", "health_up", 0.0 if down else 1.0),
                         Sample(t, f"r{i}-{j}", "error_rate_pct", max(0.0, rng.normal(0.5, 0.2)))]
    rt.store.write(rows)
    yield rt, target, now
    rt.writer.close()






def test_extending_the_cache_equals_one_replay_and_matches_the_plain_replay(lab):
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    since, mid, until = now - HOURS * 3600, now - 1500, now
    cache = replaycache.PredictorCache()
    first = cache.series(settings, model, endpoints, since, mid, read)
    assert first.cached_steps == 0 and first.ts.size > 100
    extended = cache.series(settings, model, endpoints, since, until, read)
    assert extended.cached_steps > 0 and extended.read_steps < extended.ts.size / 2
    once = replaycache.PredictorCache().series(settings, model, endpoints, since, until, read)
    same(extended, once)
    # the plain path (pfepo evaluate's replay of the window's trace) gives the same numbers
    trace = whatif.history_trace(rt, since, until, settings.step_s)
    r, prob, _ = whatif._engine_replay(trace, target, rt.cfg)
    assert list(r.endpoints) == once.endpoints
    np.testing.assert_array_equal(prob, once.prob)
    np.testing.assert_array_equal(r.predicted, once.predicted)


def test_memoised_fits_change_no_number_of_a_replay_with_other_thresholds(lab):
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    since = now - HOURS * 3600
    cache = replaycache.PredictorCache()
    cache.series(settings, model, endpoints, since, now, read)
    fam = next(iter(cache._families.values()))
    fits = len(fam.fits)
    assert fits > 0
    other = whatif._settings(target, rt.cfg)[0]
    other.thresholds = {**other.thresholds, "latency_ms": 120.0}
    reused = cache.series(other, model, endpoints, since, now, read)
    assert len(fam.fits) == fits  # every fit of the second replay was in the memo: same inputs
    same(reused, replaycache.PredictorCache().series(other, model, endpoints, since, now, read))


def test_skipping_quiet_steps_changes_no_decision(lab):
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    since = now - HOURS * 3600
    s = replaycache.PredictorCache().series(settings, model, endpoints, since, now, read)
    ps, problems, folder = whatif.validate(rt.cfg, target, target.read_text())
    assert ps is not None, problems
    shutil.rmtree(folder)
    base = rt.state.baseline_weights()
    fast = whatif.decide(rt.cfg, base, ps, since, s, skip_quiet=True)
    slow = whatif.decide(rt.cfg, base, ps, since, s, skip_quiet=False)
    assert fast["skipped_steps"] > s.ts.size / 2
    assert slow["skipped_steps"] == 0
    assert fast["changes"] and {e for e in fast["acts"]} >= {"r0-0", "r0-1", "r0-2"}
    for k in ("would", "changes", "acts", "final"):
        assert fast[k] == slow[k], k


def test_the_page_warm_up_serves_a_shorter_window_from_its_replay(lab):
    rt, target, now = lab
    cache = replaycache.PredictorCache()
    th = whatif.warm(rt, cache, hours=HOURS)
    assert th is not None and whatif.warm(rt, cache, hours=HOURS) is None  # at most once a minute
    th.join(120)
    ps, problems, folder = whatif.validate(rt.cfg, target, target.read_text())
    assert ps is not None, problems
    try:
        res = whatif.replay_policy(rt, ps, folder / target.name, HOURS / 2, cache=cache)
    finally:
        shutil.rmtree(folder)
    assert res["steps"] > 100 and res["cached_steps"] >= res["steps"] - 10  # only the newest steps replayed
    assert {"r0-0", "r0-1", "r0-2"} <= set(res["acts"])


def _edited(settings, **thr):
    other = copy.deepcopy(settings)
    other.thresholds = {**other.thresholds, **thr}
    return other


def test_a_threshold_edit_runs_only_the_evidence_and_equals_a_replay_from_scratch(lab):
    """The edited thresholds are judged over the recorder's tape (no engine replay), extended by new
    history like any entry, and give the numbers of a fresh engine with those thresholds."""
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    since, mid = now - HOURS * 3600, now - 1500
    cache = replaycache.PredictorCache()
    cache.series(settings, model, endpoints, since, mid, read)
    assert cache.last_path == "recorded"
    other = _edited(settings, latency_ms=120.0)
    part = cache.series(other, model, endpoints, since, mid, read)
    assert cache.last_path == "judged"
    same(part, replaycache.PredictorCache().series(other, model, endpoints, since, mid, read))
    extended = cache.series(other, model, endpoints, since, now, read)  # the recorder and the judge follow
    assert cache.last_path == "judged" and extended.cached_steps > 0
    fresh = replaycache.PredictorCache().series(other, model, endpoints, since, now, read)
    assert fresh.prob.max() > 0.5  # the edit matters: r0's ramp is judged at 120 ms
    same(extended, fresh)
    assert not np.array_equal(fresh.prob, cache.series(settings, model, endpoints, since, now, read).prob)


def test_a_threshold_the_tape_cannot_serve_is_replayed_in_full(lab):
    """Far below the recorded thresholds, rows gain evidence whose features were not kept: a full replay,
    with the same numbers as a fresh engine."""
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    since = now - HOURS * 3600
    cache = replaycache.PredictorCache()
    cache.series(settings, model, endpoints, since, now, read)
    low = _edited(settings, latency_ms=25.0)
    got = cache.series(low, model, endpoints, since, now, read)
    assert cache.last_path == "full"
    same(got, replaycache.PredictorCache().series(low, model, endpoints, since, now, read))


def test_a_threshold_edited_whatif_decides_as_the_plain_replay_of_the_edited_policy(lab):
    """The console path (cache warmed with the shipped policy, then the edited file) and the plain path
    (the edited file's window replayed from scratch, every step through policies and planner) agree."""
    rt, target, now = lab
    cache = replaycache.PredictorCache()
    text = target.read_text()
    edited = text.replace("threshold: 150", "threshold: 120", 1)
    assert edited != text
    out = {}
    for name, body, fast in (("shipped", text, True), ("edited", edited, True), ("plain", edited, False)):
        ps, problems, folder = whatif.validate(rt.cfg, target, body)
        assert ps is not None, problems
        try:
            out[name] = whatif.replay_policy(rt, ps, folder / target.name, HOURS, cache=cache if fast else None,
                                             fast=fast, until=now)
        finally:
            shutil.rmtree(folder)
        if name == "edited":
            assert cache.last_path == "judged"
    for k in ("would", "changes", "acts", "final"):
        assert out["edited"][k] == out["plain"][k], k
    assert out["edited"]["changes"]
    first = {name: min(c["ts"] for c in out[name]["changes"]) for name in ("shipped", "edited")}
    assert first["edited"] < first["shipped"]  # a lower threshold acts earlier on the same ramp


def test_a_saved_and_adopted_cache_extends_to_the_numbers_of_one_that_never_left_memory(lab, tmp_path):
    """``save`` then ``adopt`` (another process, or the next daemon) carries the engine on exactly: the
    recorder extended after adoption, and a threshold edit judged over the adopted tape, equal the cache
    that stayed in memory, to the bit."""
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    since, mid = now - HOURS * 3600, now - 1500
    stay = replaycache.PredictorCache()
    stay.series(settings, model, endpoints, since, mid, read)
    path = tmp_path / "snap.pickle"
    assert stay.save(path) > 0 and path.stat().st_mode & 0o077 == 0  # readable by the daemon's user only
    moved = replaycache.PredictorCache()
    assert moved.adopt(path) == 1 and moved.adopt(path) == 0  # not further along than what it holds
    assert moved.spans() == stay.spans()
    got = moved.series(settings, model, endpoints, since, now, read)
    assert moved.last_path == "recorded" and got.cached_steps > 0 and got.read_steps < got.ts.size / 2
    same(got, stay.series(settings, model, endpoints, since, now, read))
    other = _edited(settings, latency_ms=120.0)
    judged = moved.series(other, model, endpoints, since, now, read)
    assert moved.last_path == "judged"
    same(judged, stay.series(other, model, endpoints, since, now, read))


def test_an_adopted_family_replaces_one_of_another_start(lab, tmp_path):
    """A short window replayed in the daemon (its family starts late) does not keep the pre-warm's family,
    which starts further back and serves every window, out."""
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    saved = replaycache.PredictorCache()
    saved.series(settings, model, endpoints, now - 3000, now, read)
    path = tmp_path / "snap.pickle"
    saved.save(path)
    short = replaycache.PredictorCache()
    short.series(settings, model, endpoints, now - 600, now, read)
    assert short.spans()[0][0] == now - 600
    assert short.adopt(path) == 1 and short.spans() == saved.spans()
    got = short.series(settings, model, endpoints, now - 2000, now, read)
    assert got.cached_steps >= got.ts.size - 3  # served by the adopted family


def test_a_snapshot_made_by_other_code_or_damaged_is_not_used(lab, tmp_path, monkeypatch):
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    cache = replaycache.PredictorCache()
    cache.series(settings, model, endpoints, now - 1200, now, read)
    path = tmp_path / "snap.pickle"
    cache.save(path)
    monkeypatch.setattr(replaycache, "_CODE", ["another engine"])
    assert replaycache.PredictorCache().adopt(path) == 0
    monkeypatch.undo()
    assert replaycache.PredictorCache().adopt(path) == 1
    path.write_bytes(path.read_bytes()[:1000])
    assert replaycache.PredictorCache().adopt(path) == 0
    assert replaycache.PredictorCache().adopt(tmp_path / "missing.pickle") == 0


def _per_endpoint_pivot(rt, since, until, step_s):
    """The earlier ``history_trace`` (one query, ``pivot_table`` and ``combine_first`` per endpoint), kept
    here as the reference the batched one must equal."""
    from pfepo.console.views import METRICS

    def per_step(rows):
        df = pd.DataFrame(rows, columns=["ts", "metric", "value"])
        df["ts"] = np.floor(df["ts"] / step_s) * step_s
        health = df["metric"] == "health_up"
        wide = df[~health].pivot_table(index="ts", columns="metric", values="value", aggfunc="mean")
        if health.any():
            wide = wide.join(df[health].pivot_table(index="ts", columns="metric", values="value", aggfunc="last"),
                             how="outer")
        return wide

    frames = []
    for r in rt.cfg.regions:
        link = [(s.ts, s.metric, s.value) for s in rt.store.range(subject=f"uplink:{r.name}", start=since, end=until)
                if s.metric in whatif.UPLINK]
        link_w = per_step(link) if link else None
        for e in r.endpoints:
            own = [(s.ts, s.metric, s.value) for s in rt.store.range(subject=e.name, start=since, end=until)
                   if s.metric in METRICS]
            own_w = per_step(own) if own else None
            if own_w is None and link_w is None:
                continue
            wide = own_w if link_w is None else link_w if own_w is None else own_w.combine_first(link_w)
            wide = wide.reset_index()
            wide.insert(1, "endpoint", e.name)
            frames.append(wide)
    frame = pd.concat(frames, ignore_index=True).sort_values(["ts", "endpoint"], kind="stable")
    frame["up"] = frame["health_up"].fillna(1.0) if "health_up" in frame else 1.0
    return frame.drop(columns=[c for c in ("health_up",) if c in frame]).reset_index(drop=True)


def test_history_trace_equals_the_per_endpoint_pivot(lab, tmp_path):
    """The batched reading gives the frame of the per-endpoint one, to the bit: on the lab's history and on
    an irregular one (several samples per step, jittered times, metrics and health in different steps,
    an endpoint with its own latency, an endpoint with no samples, an uplink silent for a while)."""
    rt, target, now = lab
    for a, b in ((now - 3600, now), (now - 1234.5, now - 600)):
        _same_frame(whatif.history_trace(rt, a, b, 10.0).frame, _per_endpoint_pivot(rt, a, b, 10.0))
    pdir = tmp_path / "pol"
    pdir.mkdir()
    cfg = synthetic_config(tmp_path, pdir, 2, 3)
    other = build_runtime(cfg)
    try:
        rng = np.random.default_rng(5)
        t0 = 1_800_000_000.0
        rows = []
        for k in range(600):
            t = t0 + k * 2.7 + rng.uniform(0, 0.5)
            if not 200 <= k < 260:
                rows.append(Sample(t, "uplink:r0", "latency_ms", float(rng.lognormal(3, 0.5))))
            rows.append(Sample(t, "uplink:r1", "loss_pct", float(rng.uniform(0, 3))))
            if k % 3 == 0:
                rows.append(Sample(t + 0.1, "r0-0", "error_rate_pct", float(rng.uniform(0, 2))))
            if k % 7 == 0:
                rows.append(Sample(t, "r0-0", "health_up", float(k % 2)))
            if k % 5 == 0:
                rows.append(Sample(t, "r0-1", "latency_ms", float(rng.uniform(10, 90))))
            if k % 11 == 0:
                rows.append(Sample(t, "r1-2", "cpu_pct", float(rng.uniform(0, 100))))
        other.store.write(rows)
        for a, b in ((t0 - 5, t0 + 1700), (t0 + 333.3, t0 + 900)):
            _same_frame(whatif.history_trace(other, a, b, 10.0).frame, _per_endpoint_pivot(other, a, b, 10.0))
    finally:
        other.writer.close()


def _same_frame(got, want) -> None:
    assert len(got) > 10
    pd.testing.assert_frame_equal(got, want, check_like=True, check_exact=True, check_names=False)
    for c in got.columns:  # to the bit (assert_frame_equal treats -0.0 as 0.0)
        if got[c].dtype == float:
            assert got[c].to_numpy().tobytes() == want[c].to_numpy().tobytes(), c
