"""``pfepo demo --screenshot``'s capture (``OverviewShot`` in pfepo/commands/demo.py) without Mininet.

The daemon's REST app and console run for real (uvicorn, the real runtime, state and planner) and a real
headless Debian Chromium logs in and watches the overview. What the demo's lab would provide is
SYNTHETIC here: the client-side switch is marked connected and its read-back groups are set by the test
(what the OpenFlow thread records after a read-back), and the drain is the real planner's plan for eu
down, put where the decision loop puts it (``rt.loop.last_plan``, ``set_planned``). The lab object the
shot reads is a stand-in with the same three attributes (``api``, ``rest_port``, ``api_token``).
"""

from __future__ import annotations

import struct
import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from pfepo.commands.demo import OverviewShot
from pfepo.openflow.desired import service_group_id
from pfepo.planner import Planner
from tests.api.conftest import TOKENS, bearer
from tests.console.browser import need_browser
from tests.waiting import wait_until


@pytest.fixture
def shot_lab(console):
    need_browser()
    rt, base, _ = console
    st = rt.state
    client = next(sw for sw in st.switches.values() if sw.name == rt.cfg.regions[0].uplink.switch)
    st.switch_connected(client.dpid, True)
    weights = st.bucket_weights()
    for i, s in enumerate(rt.cfg.services):
        client.applied[service_group_id(i)] = dict(weights[s.name])
    with httpx.Client(base_url=base, timeout=10, headers=bearer("read")) as api:
        yield rt, client, SimpleNamespace(api=api, rest_port=int(base.rsplit(":", 1)[1]), api_token=TOKENS["read"])


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_the_overview_is_captured_once_traffic_moves_and_the_switch_applies_it(shot_lab, tmp_path):
    rt, client, lab = shot_lab
    png = tmp_path / "shot" / "overview.png"
    shot = OverviewShot(png, "eu", within_s=60)
    shot.start(lab)
    # logged in and polling the decisions: nothing is captured before traffic moves
    wait_until(lambda: shot.outcome.startswith("no screenshot: traffic never moved"), 60, message="the login")
    assert not png.exists()
    plan = Planner(rt.cfg).step(time.time(), [], {"eu": False, "us": True, "ap": True}, None)
    assert plan.weights["web"]["eu"] == 0
    rt.loop = SimpleNamespace(last_plan=plan.to_dict(), ticks=1, errors=0, last_decisions=[])
    assert rt.state.set_planned(plan.weights, rt.state.baseline_version)

    applied_at = []

    def read_back() -> None:  # the switch applies the new shares a moment later
        client.applied[service_group_id(0)] = dict(rt.state.bucket_weights()["web"])
        applied_at.append(time.time())

    threading.Timer(1.0, read_back).start()
    outcome = shot.join(60)
    assert outcome.startswith("console overview captured") and str(png) in outcome, outcome
    width, height = _png_size(png)
    assert width == 1280 and height >= 600
    assert applied_at and png.stat().st_mtime >= applied_at[0]  # it waited for the switch's shares


def test_no_capture_when_traffic_never_moves(shot_lab, tmp_path):
    rt, client, lab = shot_lab
    png = tmp_path / "never.png"
    shot = OverviewShot(png, "eu", within_s=3)
    shot.start(lab)
    assert shot.join(60) == "no screenshot: traffic never moved away from eu"
    assert not png.exists()
