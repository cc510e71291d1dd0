"""Time (or profile) only the console's cold what-if replay: 24 h x 50 endpoints by default.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/whatif_cold.py [HOURS] [ENDPOINTS] [OUT.prof]

Synthetic history as ``pfepo bench whatif`` writes it; prints wall and CPU time of the replay, its steps,
acts and weight changes, and a digest of the risk it computed (to compare two versions of the code).
With OUT.prof the replay runs under cProfile (times inflated)."""
import cProfile
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
from pfepo.console import whatif  # noqa: E402
from pfepo_lab.bench.whatif import _history, setup  # noqa: E402

hours = float(sys.argv[1]) if len(sys.argv) > 1 else 24.0
eps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
out = sys.argv[3] if len(sys.argv) > 3 else None
tmp = Path(tempfile.mkdtemp(prefix="pfepo-cold-"))
regions, per, target, cfg, rt = setup(tmp, eps)
now = 1_780_000_000.0  # fixed: two runs replay the same history
_history(rt, regions, per, hours, now)
end = now + 1.0
ps, problems, folder = whatif.validate(cfg, target, target.read_text())
jobs = whatif.Jobs()
timers: dict = {}
if os.environ.get("TIMERS"):  # wall time inside a few functions (cheap, unlike cProfile)
    import functools

    from pfepo.console import replaycache
    from pfepo.predict import core, engine, features, forecast

    def wrap(owner, name, label):
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[label] = timers.get(label, 0.0) + time.perf_counter() - t0
        setattr(owner, name, timed)

    wrap(forecast, "fit_arima", "fit_arima")
    wrap(core.AnomalyCore, "update", "core.update")
    wrap(engine.PredictiveEngine, "_judge", "engine._judge")
    wrap(engine.PredictiveEngine, "_close", "engine._close")
    wrap(engine.PredictiveEngine, "snapshot", "engine.snapshot")
    wrap(engine.PredictiveEngine, "observe_arrays", "engine.observe_arrays")
    wrap(features.FeatureState, "update", "features.update")
    wrap(features.FeatureState, "matrix", "features.matrix")
    wrap(forecast.ForecastBank, "update", "bank.update")
    wrap(replaycache, "_read_into", "history read")
    wrap(replaycache, "_score", "classifier score")
    wrap(replaycache, "_feed", "feed (engine replay)")
if os.environ.get("TIMERS"):
    import gc

    _gc_t0 = [0.0]

    def _gc_cb(phase, info):
        if phase == "start":
            _gc_t0[0] = time.perf_counter()
        else:
            key = f"gc gen{info['generation']}"
            timers[key] = timers.get(key, 0.0) + time.perf_counter() - _gc_t0[0]

    gc.callbacks.append(_gc_cb)
pr = cProfile.Profile() if out else None
t, c = time.perf_counter(), time.process_time()
if pr:
    pr.enable()
res = whatif.replay_policy(rt, ps, folder / target.name, hours, whatif.Job("cold"), cache=jobs.cache, fast=True,
                           until=end)
if pr:
    pr.disable()
    pr.dump_stats(out)
wall, cpu = time.perf_counter() - t, time.process_time() - c
fam = next(iter(jobs.cache._families.values()))
import numpy as np  # noqa: E402

prob = np.concatenate(fam.recorder.prob)
np.save(tmp.parent / f"pfepo-cold-prob-{os.getpid()}.npy", prob)
print(f"cold {wall:.1f} s wall, CPU {cpu:.1f} s, steps {res['steps']} acted {len(res['acts'])} "
      f"changes {len(res['changes'])} acts {sorted(res['acts'].items())} "
      f"risk digest {hashlib.sha256(prob.tobytes()).hexdigest()[:12]} saved {tmp.parent}/pfepo-cold-prob-{os.getpid()}.npy "
      f"load {os.getloadavg()[0]:.2f}")
for k, v in sorted(timers.items(), key=lambda kv: -kv[1]):
    print(f"  {k:24s} {v:6.2f} s")
rt.writer.close()
shutil.rmtree(tmp, ignore_errors=True)
shutil.rmtree(folder, ignore_errors=True)  # validate's copy of the policy folder
