"""Console timings quoted in docs/console.md (not a test). The what-if replay's benchmark is
``pfepo bench whatif`` (pfepo_lab/bench/whatif.py).

``.venv/bin/python tests/console/bench.py render``: one render of the overview's live part with 100
services x 8 regions (the synthetic state of tests/console/test_console_speed.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pfepo.config import PfepoConfig  # noqa: E402
from pfepo.daemon import build_runtime  # noqa: E402


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
    render()
