"""Overview speed at scale in real headless Chromium: 100 services x 8 regions render in under 1 s,
measured by the browser's Navigation Timing API (navigation start -> load event end).

No Mininet here: a lab of 8 region switches with 100 services is not something this machine can run in
a test. The daemon's REST app and console run for real (uvicorn, the real runtime and state); the switch
side is filled with SYNTHETIC state instead: every switch is marked connected and its read-back groups
are set to the weights the daemon wants (what the OpenFlow thread records after a read-back), and the
predictor is a stand-in that returns a prediction per endpoint. Say so when quoting the figure.
"""

from __future__ import annotations

import copy
import time

import pytest

from pfepo.api.server import ApiServer, create_app
from pfepo.config import PfepoConfig
from pfepo.daemon import build_runtime
from pfepo.openflow.desired import service_group_id
from pfepo.predict.prediction import Prediction
from tests.api.conftest import TOKENS, add_tokens
from tests.console.browser import chrome, login, navigation_ms, need_browser, screenshot, wait

REGIONS = [f"r{i}" for i in range(8)]
SERVICES = 100


def big_config(tmp_path) -> dict:
    switches = [{"name": "core", "dpid": 1}] + [{"name": f"s{r}", "dpid": 0x11 + i} for i, r in enumerate(REGIONS)]
    regions = [{"name": r, "switch": f"s{r}", "uplink": {"switch": "core", "port": i + 1},
                "endpoints": [{"name": f"{r}-{j}", "ip": f"10.{i}.0.{j + 2}", "mac": f"00:00:00:00:{i:02x}:{j + 2:02x}",
                               "port": j + 2} for j in range(2)]}
               for i, r in enumerate(REGIONS)]
    services = [{"name": f"svc{k:03d}", "vip": f"10.200.{k // 200}.{k % 200 + 1}",
                 "vip_mac": f"00:00:00:01:{k // 256:02x}:{k % 256:02x}", "port": 80,
                 "weights": {r: (k + i) % 5 + 1 for i, r in enumerate(REGIONS)}} for k in range(SERVICES)]
    return add_tokens({"rest": {"host": "127.0.0.1", "port": 0}, "state_dir": str(tmp_path / "state"),
                       "history": {"backend": "sqlite", "path": str(tmp_path / "h.sqlite")},
                       "predict": {"enabled": False}, "switches": switches, "regions": regions,
                       "services": services})


class SyntheticPredictor:
    """Stand-in for the prediction worker: one prediction per endpoint (the overview's endpoint table)."""

    def __init__(self, endpoints):
        now = time.time()
        self._p = {e: Prediction(e, now, 0.1 + 0.8 * (i % 10) / 10, 300.0, {"latency_ms": 40.0},
                                 [("latency_ms", 0.5), ("loss_pct", 0.2)], "forecast")
                   for i, e in enumerate(endpoints)}

    def latest(self):
        return dict(self._p)


@pytest.fixture
def big(tmp_path):
    need_browser()
    cfg = PfepoConfig.model_validate(copy.deepcopy(big_config(tmp_path)))
    rt = build_runtime(cfg)
    st = rt.state
    weights = st.bucket_weights()
    for sw in st.switches.values():  # synthetic read-back: connected, holding what the daemon wants
        st.switch_connected(sw.dpid, True)
    core = next(sw for sw in st.switches.values() if sw.name == "core")
    for i, s in enumerate(cfg.services):
        core.applied[service_group_id(i)] = dict(weights[s.name])
    rt.predictor = SyntheticPredictor([e.name for r in cfg.regions for e in r.endpoints])
    srv = ApiServer(create_app(rt), "127.0.0.1", 0)
    srv.start()
    yield f"http://127.0.0.1:{srv.bound_port}"
    srv.stop()
    rt.writer.close()


def test_overview_100_services_8_regions_under_1s(big):
    d = chrome()
    try:
        login(d, big, TOKENS["read"])
        loads = []
        for _ in range(3):  # the first load warms the server's code paths; the figure is the median
            d.get(big + "/ui/overview")
            wait(d, lambda drv: drv.execute_script("return document.readyState") == "complete", 10, "page load")
            loads.append(navigation_ms(d))
        rows = d.execute_script("return document.querySelectorAll('#live table.services tbody tr').length")
        assert rows == SERVICES
        bars = d.execute_script("return document.querySelectorAll('#live svg.bar').length")
        assert bars == 2 * SERVICES  # wanted + applied on the core switch
        screenshot(d, "overview-100x8")
        med = sorted(x["load"] for x in loads)[1]
        print(f"\noverview 100 services x 8 regions: load {[round(x['load']) for x in loads]} ms "
              f"(response end {[round(x['response_end']) for x in loads]} ms), "
              f"{loads[-1]['transfer_bytes']} bytes")
        assert med < 1000, loads
    finally:
        d.quit()
