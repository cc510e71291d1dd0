"""The what-if pre-warm: the history replayed by a real child process (``python -m
pfepo.console.prewarm``) and adopted by the daemon's cache, so the first what-if replays no predictor
step and decides as a cold replay of the same window (console/prewarm.py).

Real SQLite history (written by the daemon's store, read by the child at the same time, WAL), the real
engine with the shipped model, real policies and planner; no browser, no OVS.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from pfepo.console import prewarm, whatif
from pfepo.console.routes import _prewarm_html
from pfepo.daemon import build_runtime
from pfepo.telemetry.samples import Sample
from pfepo_lab.bench.whatif import synthetic_config

REPO = Path(__file__).resolve().parents[2]
HOURS = 0.5


def _history(rt, start: float, n: int) -> None:
    rng = np.random.default_rng(2)
    rows = []
    for k in range(n):
        t = start + 10 * k
        ramp = 250 * min(1.0, max(0, k - (n - 60)) / 30)
        rows += [Sample(t, "uplink:r0", "latency_ms", 20 + rng.normal(0, 2) + ramp),
                 Sample(t, "uplink:r1", "latency_ms", 20 + rng.normal(0, 2))]
        rows += [Sample(t, f"r{i}-{j}", "error_rate_pct", max(0.0, rng.normal(0.5, 0.2)))
                 for i in range(2) for j in range(2)]
    rt.store.write(rows)


def _run(rt, target, cache, until):
    ps, problems, folder = whatif.validate(rt.cfg, target, target.read_text())
    assert ps is not None, problems
    try:
        return whatif.replay_policy(rt, ps, folder / target.name, HOURS, cache=cache, until=until)
    finally:
        shutil.rmtree(folder)


def test_the_prewarm_child_replays_the_history_and_a_restart_replays_only_what_is_new(tmp_path, monkeypatch):
    monkeypatch.setattr(whatif, "SHORT_H", HOURS / 2)  # windows over this wait for the pre-warm (1 h by default)
    pdir = tmp_path / "pol"
    pdir.mkdir()
    target = pdir / "default.yaml"
    shutil.copyfile(REPO / "policies" / "default.yaml", target)
    cfg = synthetic_config(tmp_path, pdir, 2, 2)
    rt = build_runtime(cfg)
    try:
        until = time.time()
        n = int(HOURS * 360)
        _history(rt, until - HOURS * 3600, n)
        # the daemon starts: the child replays [until - HOURS, until) and the cache adopts it
        jobs = whatif.Jobs()
        pre = prewarm.Prewarm(cfg, jobs.cache, hours=HOURS, until=until, every_s=3600)
        assert pre.pending() and whatif.warm(rt, jobs.cache, hours=HOURS) is None  # no second, in-process replay
        page = _prewarm_html(pre)  # the what-if page polls this while the child works
        assert "Preparing the what-if" in page and "<progress" in page and 'hx-get="/ui/whatif/prewarm"' in page
        pre.start()
        first = _run(rt, target, jobs.cache, until)  # waits for the child, then replays no predictor step
        assert not pre.pending() and pre.state == "ready", pre.status()
        assert pre.last["adopted"] == 0 and pre.last["taken"] == 1 and prewarm.snapshot_path(cfg).exists()
        assert first["cached_steps"] >= first["steps"] - 3 and jobs.cache.last_path == "recorded"
        assert "History replayed in the background" in _prewarm_html(pre) and "hx-get" not in _prewarm_html(pre)
        cold = _run(rt, target, whatif.Jobs().cache, until)  # the same window, replayed in this process
        for k in ("would", "changes", "acts", "final"):
            assert first[k] == cold[k], k
        assert first["changes"] and {"r0-0", "r0-1"} <= set(first["acts"])
        snap = prewarm.snapshot_path(cfg).read_bytes()  # as the first run left it
        # 10 minutes later the refresh runs: its snapshot is adopted only when a what-if (or the page) asks
        _history(rt, until, 60)
        later = until + 600
        held = jobs.cache.spans()
        pre.until = later
        assert pre.run_once() and jobs.cache.spans() == held
        assert pre.catch_up() == 1 and jobs.cache.spans() != held and pre.catch_up() == 0
        pre.stop()
        # the daemon restarts: the child starts from the snapshot
        (prewarm.snapshot_path(cfg)).write_bytes(snap)
        jobs2 = whatif.Jobs()
        pre2 = prewarm.Prewarm(cfg, jobs2.cache, hours=HOURS, until=later, every_s=3600).start()
        assert pre2.wait(300) and pre2.state == "ready", pre2.status()
        assert pre2.last["adopted"] == 1 and pre2.last["kept"] == 1  # extended, not replayed afresh
        again = _run(rt, target, jobs2.cache, later)
        assert again["cached_steps"] >= again["steps"] - 3
        pre2.stop()
        # exact: the same window from the family that never left this process
        stay = _run(rt, target, jobs.cache, later)
        for k in ("would", "changes", "acts", "final"):
            assert again[k] == stay[k], k
    finally:
        rt.writer.close()


def test_a_child_that_fails_releases_waiting_runs_and_says_why(tmp_path):
    pdir = tmp_path / "pol"
    pdir.mkdir()
    shutil.copyfile(REPO / "policies" / "default.yaml", pdir / "default.yaml")
    cfg = synthetic_config(tmp_path, pdir, 1, 1)
    # the history "file" is a folder: the child cannot open the store
    cfg = cfg.model_copy(update={"history": cfg.history.model_copy(update={"path": str(tmp_path)})})
    jobs = whatif.Jobs()
    pre = prewarm.Prewarm(cfg, jobs.cache, hours=HOURS, every_s=3600).start()
    try:
        assert pre.wait(120) and pre.state == "failed" and "exited with 1" in pre.error, pre.status()
        assert not pre.pending()  # what-ifs no longer wait; the page's own warm-up takes over
        assert "background replay failed" in _prewarm_html(pre)
    finally:
        pre.stop()


def test_the_daemon_starts_the_prewarm_for_its_console_and_shares_the_live_classifier(tmp_path):
    """``prewarm.start`` as ``daemon.run`` calls it, on the app ``create_app`` builds: on by default, the
    adopted family scores with the live engine's classifier object (no second load); off when configured
    so, and with DuckDB (one process per file)."""
    from types import SimpleNamespace

    from pfepo.api.server import create_app
    from pfepo.predict.engine import PredictiveEngine

    pdir = tmp_path / "pol"
    pdir.mkdir()
    shutil.copyfile(REPO / "policies" / "default.yaml", pdir / "default.yaml")
    cfg = synthetic_config(tmp_path, pdir, 1, 2)
    rt = build_runtime(cfg)
    try:
        _history(rt, time.time() - 900, 90)
        live = PredictiveEngine(horizon_s=cfg.predict.horizon_s, step_s=cfg.predict.step_s, model_path="shipped")
        assert live.classifier is not None
        rt.predictor = SimpleNamespace(engine=live)
        app = create_app(rt)
        pre = prewarm.start(rt, app)
        try:
            assert pre is not None and app.state.whatif_jobs.cache.prewarm is pre
            assert pre.wait(300) and pre.state == "ready", pre.status()
            fams = list(app.state.whatif_jobs.cache._families.values())
            assert len(fams) == 1 and fams[0].recorder.engine.classifier is live.classifier
        finally:
            pre.stop()
        off = cfg.model_copy(update={"rest": cfg.rest.model_copy(update={"console_prewarm": False})})
        assert prewarm.start(SimpleNamespace(cfg=off), app) is None
        duck = cfg.model_copy(update={"history": cfg.history.model_copy(update={"backend": "duckdb"})})
        assert prewarm.start(SimpleNamespace(cfg=duck), app) is None
    finally:
        rt.writer.close()
