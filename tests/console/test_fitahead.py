"""The fit-ahead worker (console/fitahead.py) changes no number of a replay, and its guesses are the
engine's own fits. Real SQLite history, the real engine with the shipped model, a real worker process."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from pfepo.console import fitahead, replaycache, whatif
from pfepo.telemetry.samples import Sample
from pfepo_lab.bench.whatif import runtime
from tests.console.whatif_lab import inputs, same

R, E = 2, 3
HOURS = 1.5


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fitahead")
    target, _, rt = runtime(tmp, R, E)
    now = time.time()
    n = int(HOURS * 360)
    rng = np.random.default_rng(3)
    rows = []
    for k in range(n):
        t = now - HOURS * 3600 + 10 * k
        if 200 <= k < 215:  # the history writer was down: no sample at all for 150 s
            continue
        for i in range(R):
            rows += [Sample(t, f"uplink:r{i}", "latency_ms", 20 + rng.normal(0, 2) + (0.5 * max(0, k - 400) if i == 0 else 0)),
                     Sample(t, f"uplink:r{i}", "loss_pct", 0.0)]
            for j in range(E):
                rows += [Sample(t, f"r{i}-{j}", "health_up", 0.0 if i == 0 and 300 <= k < 310 else 1.0)]
                if not (j == 1 and k % 7 == 0):  # some steps without an error rate
                    rows.append(Sample(t, f"r{i}-{j}", "error_rate_pct", max(0.0, rng.normal(0.5, 0.2))))
    rt.store.write(rows)
    yield rt, target, now
    rt.writer.close()






def test_the_workers_schedule_is_the_engines(lab):
    """The worker's copy of the refit schedule, run in this process over the pieces the engine is fed,
    asks for exactly the fits (window bytes and start parameters, in order) the engine asks for: over a
    gap in the history, an endpoint down, a metric with missing steps and constant series."""
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    cache = replaycache.PredictorCache()
    cache.fit_ahead = False
    asked: list = []
    real = replaycache._memo_fit

    def spy(memo):
        inner = real(memo)

        def fit(window, start=None):
            asked.append(fitahead.fit_key(window, start))
            return inner(window, start)

        fit.memo, fit.ahead = memo, None
        return fit

    replaycache._memo_fit = spy
    try:
        cache.series(settings, model, endpoints, now - HOURS * 3600, now, read)
    finally:
        replaycache._memo_fit = real
    fam = next(iter(cache._families.values()))
    fresh = replaycache.make_engine(settings, None, {})
    idx = fresh.ensure(endpoints)
    sched = fitahead._Schedule(_state(fresh, idx))
    guessed = []
    memo = fam.fits  # the engine's own results: the worker's chain of start parameters is the engine's
    for ts, values, present, up in zip(*(fam.steps.__dict__[k] for k in ("ts", "values", "present", "up")), strict=True):
        for b, mean, down in sched.blocks(ts, values, present, up):
            for i in sched.due(b, mean, down):
                guessed.append(sched.fit(b, int(i), lambda w, s: memo[fitahead.fit_key(w, s)])[0])
    assert len(asked) > 2 * R * E  # first and second fits of every fitted series at least
    assert guessed == asked


def _state(eng, idx):
    """What ``FitAhead`` sends its worker (without starting one)."""
    from pfepo.predict.engine import MAX_EMPTY_STEPS
    from pfepo.predict.forecast import MAX_COEF

    return {"m": eng.m, "rows": np.asarray(idx), "window": eng.window, "min_fit_obs": eng.min_fit_obs,
            "refit_blocks": eng.refit_blocks, "fits_per_step": eng.fits_per_step, "step_s": eng.step_s,
            "max_gap": eng.bank.max_gap, "max_empty": MAX_EMPTY_STEPS, "max_coef": MAX_COEF, "block": eng.block,
            "ring": eng.ring, "seen": eng.bank.seen, "n_fits": eng.n_fits, "last_fit": eng.last_fit,
            "fitted": eng.bank.fitted, "phi": eng.bank.phi, "theta": eng.bank.theta,
            "up": np.where(np.isfinite(eng.feat.up), eng.feat.up, 1.0), "last": eng.feat.last, "last_t": eng.feat.last_t,
            "interval": eng.feat.interval}


@pytest.mark.parametrize("reads", [False, True], ids=["pieces-sent", "worker-reads"])
def test_a_replay_with_the_worker_equals_one_without_and_uses_its_fits(lab, monkeypatch, reads):
    """The worker follows pieces this process reads and sends it, or (a store another process can open)
    reads them itself and sends them here; either way the same numbers, and every fit from the worker."""
    rt, target, now = lab
    settings, model, endpoints, read = inputs(rt, target)
    if reads:
        read = whatif.HistoryReader(rt)
        assert read.spec() is not None
    since = now - HOURS * 3600
    plain = replaycache.PredictorCache()
    plain.fit_ahead = False
    want = plain.series(settings, model, endpoints, since, now, read)
    monkeypatch.setattr(fitahead, "MIN_STEPS", 0)
    core = replaycache.PredictorCache._core

    def after_the_worker(self, fam, rec, *args):  # the test waits for the worker: its fits are all ahead
        ahead = rec.engine.fit.ahead
        deadline = time.time() + 120
        while ahead.pieces_done < max(ahead.pieces, ahead.expected) and time.time() < deadline and ahead.proc.poll() is None:
            time.sleep(0.05)
        return core(self, fam, rec, *args)

    monkeypatch.setattr(replaycache.PredictorCache, "_core", after_the_worker)
    cache = replaycache.PredictorCache()
    cache.fit_ahead = True  # opt-in (off by default)
    got = cache.series(settings, model, endpoints, since, now, read)
    same(got, want)
    st = cache.last_ahead
    assert st["used"] > 2 * R * E and st["fitted_here"] == 0, st
    assert st["read_here"] == (0 if reads else st["pieces"]) and st["pieces"] >= 1, st
    fam = next(iter(cache._families.values()))
    assert set(fam.fits) == set(next(iter(plain._families.values())).fits)


def test_a_worker_that_dies_costs_only_time(lab, monkeypatch):
    """A worker that exits at once (here: a command that fails) reads no piece and fits nothing: the
    replay reads and fits everything itself, with the same numbers."""
    rt, target, now = lab
    settings, model, endpoints, _ = inputs(rt, target)
    read = whatif.HistoryReader(rt)
    since = now - HOURS * 3600
    plain = replaycache.PredictorCache()
    plain.fit_ahead = False
    want = plain.series(settings, model, endpoints, since, now, read)
    monkeypatch.setattr(fitahead, "MIN_STEPS", 0)
    monkeypatch.setattr(fitahead, "WORKER", [sys.executable, "-c", "import sys; sys.exit(3)"])
    cache = replaycache.PredictorCache()
    cache.fit_ahead = True  # opt-in (off by default)
    same(cache.series(settings, model, endpoints, since, now, read), want)
    st = cache.last_ahead
    assert st["used"] == 0 and st["fitted_here"] > 2 * R * E and st["read_here"] >= 1, st


def test_the_engine_and_the_worker_split_a_burst_of_refits(lab, monkeypatch):
    """Without waiting for the worker (the engine reaches the first refits of every series before the
    worker can make them all), the two share them: the numbers are the single-process ones, each fit is
    made once by one of them or waited for, and the worker made some."""
    rt, target, now = lab
    settings, model, endpoints, _ = inputs(rt, target)
    read = whatif.HistoryReader(rt)
    since = now - HOURS * 3600
    plain = replaycache.PredictorCache()
    plain.fit_ahead = False
    want = plain.series(settings, model, endpoints, since, now, read)
    monkeypatch.setattr(fitahead, "MIN_STEPS", 0)
    cache = replaycache.PredictorCache()
    cache.fit_ahead = True  # opt-in (off by default)
    same(cache.series(settings, model, endpoints, since, now, read), want)
    st = cache.last_ahead
    fam = next(iter(plain._families.values()))
    assert st["used"] + st["fitted_here"] >= len(fam.fits) - 2 * R  # (equal windows of a shared uplink: once)
    assert st["read_here"] == 0, st
