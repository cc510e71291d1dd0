"""Policy -> planner -> switch, end to end: loss injected on a region's link (relay on the link node)
makes the daemon ramp that region down step by step and back after the loss ends; an invalid policy
edit during the run is rejected and changes nothing. Timings are shortened by the test policy.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mininet_topologies.lab import Lab
from tests.integration.helpers import at_baseline, wait_polls

pytestmark = pytest.mark.ovs

POLICY = (Path(__file__).parent.parent / "data" / "fast-policy.yaml").read_text()  # also used by tests/controller


@pytest.fixture(scope="module")
def plab(tmp_path_factory):
    pdir = tmp_path_factory.mktemp("policies")
    (pdir / "fast.yaml").write_text(POLICY)
    lb = Lab(tmp_path_factory.mktemp("plab"), policy_paths=[str(pdir)])
    lb.policy_file = pdir / "fast.yaml"
    lb.start()
    yield lb
    lb.stop()


@pytest.fixture(autouse=True)
def baseline(plab):
    """Each test starts from the shipped fast policy, eu without loss and the config split (any order)."""
    if plab.policy_file.read_text() != POLICY:
        version = plab.api.get("/api/v1/policies").json()["version"]
        plab.policy_file.write_text(POLICY)
        plab.wait_for(lambda: plab.api.get("/api/v1/policies").json()["version"] > version, 10,
                      what="the fast policy back in force")
    plab.net.impairer.clear("eu")
    at_baseline(plab)


def _eu_weight(lab) -> int:
    return lab.switch_weights()[0]


def test_loss_ramps_region_down_stepwise_and_back(plab):
    lab = plab
    assert lab.switch_weights() == [32, 19, 13]
    t0 = time.time()
    lab.net.impairer.set_loss("eu", 30)
    seen = [32]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and seen[-1] > 8:
        w = _eu_weight(lab)
        if w != seen[-1]:
            seen.append(w)
        time.sleep(0.05)  # sampling interval of the weight trace (a polling loop, not a wait)
    # Gradual: several intermediate weights on the switch, never a jump straight to the floor.
    assert seen[-1] == 8, seen  # max_percent 75: a quarter of eu's nominal share stays
    assert len(seen) >= 3 and all(a > b for a, b in zip(seen, seen[1:], strict=False)), seen
    assert all(a - b <= 8 for a, b in zip(seen, seen[1:], strict=False)), seen  # steps of 25 % of 32
    audit = lab.api.get("/api/v1/audit", params={"kind": "weight_change", "since": t0, "region": "eu"}).json()
    steps = [r for r in audit["records"] if r["region"] == "eu"]
    assert len(steps) >= 3 and "loss_pct" in steps[0]["reason"], steps[:2]
    decisions = lab.api.get("/api/v1/audit", params={"kind": "decision", "since": t0}).json()["records"]
    assert any(d.get("level") == "act" for d in decisions)

    lab.net.impairer.set_loss("eu", 0)
    back = [_eu_weight(lab)]
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and back[-1] < 32:
        w = _eu_weight(lab)
        if w != back[-1]:
            back.append(w)
        time.sleep(0.05)  # sampling interval of the weight trace
    assert back[-1] == 32 and len(back) >= 3, back  # gradual fail-back to the nominal share


def test_invalid_policy_edit_is_rejected_and_changes_nothing(plab):
    lab = plab
    before = lab.api.get("/api/v1/policies").json()
    groups = lab.dump_groups()
    lab.policy_file.write_text(POLICY.replace("threshold: 5", "threshold: 500"))  # loss_pct > 500: impossible
    st = lab.wait_for(lambda: (s := lab.api.get("/api/v1/policies").json())["last_error"] and s, 10,
                      what="rejected edit reported")
    assert st["version"] == before["version"]
    assert any("fast.yaml:5:" in e and "impossible threshold" in e for e in st["last_error"]), st["last_error"]
    wait_polls(lab, 2)  # the rejected edit had two read-backs and decision ticks to do harm
    assert lab.dump_groups() == groups
    lab.policy_file.write_text(POLICY.replace("step_percent: 25, step_interval_s: 1, max_percent: 75",
                                              "step_percent: 20, step_interval_s: 1, max_percent: 75"))
    st = lab.wait_for(lambda: (s := lab.api.get("/api/v1/policies").json())["version"] > before["version"] and s,
                      10, what="valid edit swapped in")
    assert st["last_error"] == []
