"""Console timings quoted in docs/console.md (not tests: the 24 h what-if takes minutes).

``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python tests/console/bench.py whatif HOURS``: the
what-if replay over synthetic history for 50 endpoints (5 regions x 10): the latency of region r0 ramps
up in the last 10 minutes and its endpoints report down in the last 100 s. Prints the time of each
stage: reading history, the predictor replay, the policies and planner.

``.venv/bin/python tests/console/bench.py render``: one render of the overview's live part with 100
services x 8 regions (the synthetic state of tests/console/test_console_speed.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pfepo.config import PfepoConfig  # noqa: E402
from pfepo.console import whatif  # noqa: E402
from pfepo.daemon import build_runtime  # noqa: E402
from pfepo.telemetry.samples import Sample  # noqa: E402

R, E = 5, 10


class Stages:
    """Stands in for a what-if Job: records when each stage starts."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.seen: list[tuple[float, str]] = []
        self.progress = 0.0

    @property
    def stage(self) -> str:
        return self.seen[-1][1] if self.seen else ""

    @stage.setter
    def stage(self, v: str) -> None:
        if not self.seen or self.seen[-1][1].split(":")[0] != v.split(":")[0]:
            self.seen.append((round(time.perf_counter() - self.t0, 1), v))


def main(hours: float) -> None:
    tmp = Path(tempfile.mkdtemp())
    try:
        regions = [{"name": f"r{i}", "switch": f"s{i}", "uplink": {"switch": "core", "port": i + 1},
                    "endpoints": [{"name": f"r{i}-{j}", "ip": f"10.{i}.0.{j + 2}",
                                   "mac": f"00:00:00:00:{i:02x}:{j + 2:02x}", "port": j + 2} for j in range(E)]}
                   for i in range(R)]
        pdir = tmp / "pol"
        pdir.mkdir()
        shutil.copyfile(REPO / "policies" / "default.yaml", pdir / "default.yaml")
        cfg = PfepoConfig.model_validate({
            "state_dir": str(tmp / "st"), "history": {"backend": "sqlite", "path": str(tmp / "h.sqlite")},
            "switches": [{"name": "core", "dpid": 1}] + [{"name": f"s{i}", "dpid": 0x11 + i} for i in range(R)],
            "regions": regions, "policy": {"paths": [str(pdir)]},
            "predict": {"model_path": "shipped"},
            "services": [{"name": "web", "vip": "10.9.0.1", "vip_mac": "00:00:00:09:00:01", "port": 80,
                          "weights": {f"r{i}": 1 for i in range(R)}}]})
        rt = build_runtime(cfg)
        now, n = time.time(), int(hours * 360)
        rng = np.random.default_rng(0)
        t0 = time.time()
        for i in range(R):
            rows = []
            for k in range(n):
                t = now - hours * 3600 + 10 * k
                lat = 20 + rng.normal(0, 2) + (200 * max(0, k - n + 60) / 60 if i == 0 else 0)
                rows += [Sample(t, f"uplink:r{i}", "latency_ms", lat), Sample(t, f"uplink:r{i}", "loss_pct", 0.0)]
                for j in range(E):
                    rows += [Sample(t, f"r{i}-{j}", "health_up", 0.0 if (i == 0 and k > n - 10) else 1.0),
                             Sample(t, f"r{i}-{j}", "error_rate_pct", max(0.0, rng.normal(0.5, 0.2)))]
            rt.store.write(rows)
        print(f"history: {n} steps x {R * E} endpoints written in {time.time() - t0:.1f} s")
        target = pdir / "default.yaml"
        ps, problems, folder = whatif.validate(cfg, target, target.read_text())
        assert ps is not None, problems
        job = Stages()
        res = whatif.replay_policy(rt, ps, folder / target.name, hours, job)
        total = time.perf_counter() - job.t0
        print(f"what-if replay {hours:g} h x {len(res['endpoints'])} endpoints ({res['steps']} steps): {total:.1f} s;"
              f" endpoints that would have acted {len(res['acts'])}, weight steps {len(res['changes'])}")
        print("stage start times (s):", job.seen)
        shutil.rmtree(folder, ignore_errors=True)
        rt.writer.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render(n: int = 20) -> None:
    import copy

    from pfepo.console import views
    from tests.console.test_console_speed import SyntheticPredictor, big_config

    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = PfepoConfig.model_validate(copy.deepcopy(big_config(tmp)))
        rt = build_runtime(cfg)
        rt.predictor = SyntheticPredictor([e.name for r in cfg.regions for e in r.endpoints])
        for sw in rt.state.switches.values():
            rt.state.switch_connected(sw.dpid, True)
        frag = views.overview_live(rt)
        t = time.perf_counter()
        for _ in range(n):
            frag = views.overview_live(rt)
        print(f"overview live part, 100 services x 8 regions: {(time.perf_counter() - t) / n * 1000:.1f} ms per "
              f"render, {len(frag)} bytes")
        rt.writer.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["render"]:
        render()
    else:
        main(float(sys.argv[2]) if len(sys.argv) > 2 else 24.0)
