"""Connection affinity on real OVS + Mininet + the daemon: live connections survive weight changes.

50 keep-alive connections (one request every 0.2 s each) are held while the operator changes the split
five times; after each change a fresh sample of new connections must follow the new weights.
Tolerance for the split: 600 new connections, +-10 points (3 binomial sd <= 6 points at n=600, plus OVS
rounding weights onto as few as 16 hash slots, up to 3 points), as in tests/integration.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from tests.integration.helpers import at_baseline, wait_keepalive_answered, wait_polls

pytestmark = pytest.mark.ovs

TOL = 0.10
SPLITS = [{"eu": 25, "us": 25, "ap": 50}, {"eu": 62.5, "us": 12.5, "ap": 25}, {"eu": 33, "us": 34, "ap": 33},
          {"eu": 12.5, "us": 75, "ap": 12.5}, {"eu": 50, "us": 30, "ap": 20}]


@pytest.fixture(autouse=True)
def baseline(lab):
    """Each test starts from the config split with every uplink up, so they run in any order."""
    at_baseline(lab)


def group_mods(lab) -> float:
    text = lab.api.get("/metrics").text
    m = re.search(r"^pfepo_group_mods_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def ofctl(*args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, text=True,
                          check=True).stdout


def test_switch_holds_the_conntrack_pipeline(lab):
    core = lab.spec.core()
    groups = ofctl("dump-groups", core)
    assert re.search(r"group_id=1,type=select,.*set_field:0x1->reg0,resubmit\(,3\)", groups), groups
    assert re.search(r"group_id=2001,type=ff,.*watch_port:1,actions=output:1,.*watch_group:1,actions=group:1",
                     groups), groups
    flows = ofctl("dump-flows", core)
    zone = lab.config.get("openflow", {}).get("conntrack_zone", 7701)
    assert f"ct(table=1,zone={zone})" in flows and f"ct(table=2,zone={zone})" in flows, flows
    assert re.search(rf"table=3.*reg0=0x1.*ct\(commit,zone={zone},exec\(set_field:0x1->ct_mark\)\),output:1", flows)


def test_keepalive_connections_survive_five_weight_changes(lab):
    log = lab.workdir / "keepalive.jsonl"
    duration = 75.0
    p = lab.net.start_client("c1", ["--url", f"http://{lab.spec.vip}/", "--keepalive", "50", "--interval", "0.2",
                                    "--duration", str(duration), "--timeout", "2", "--log", str(log)])
    t0 = time.monotonic()
    wait_keepalive_answered(log, 50)  # every connection open and pinned before the first change
    splits = []
    for weights in SPLITS:
        assert lab.set_weights(weights).status_code == 200
        want = [round(64 * weights[r] / 100) for r in lab.spec.regions]
        lab.wait_for(lambda w=want: all(abs(a - b) <= 1 for a, b in zip(lab.switch_weights(), w, strict=True)),
                     5, what=f"weights {weights} on the switch")
        wait_polls(lab, 2)  # the switch read back twice since the change (datapath flows revalidated)
        shares = lab.measure_split(600, client="c2")
        splits.append((weights, shares))
        assert shares["_failed"] == 0, shares
        for r in lab.spec.regions:
            assert abs(shares[r] - weights[r] / 100) < TOL, (weights, shares)
    assert time.monotonic() - t0 < duration - 5, "the changes took longer than the kept connections live"
    out, _ = p.communicate(timeout=duration + 30)
    res = json.loads(out.decode().strip().splitlines()[-1])
    print(f"keep-alive: {json.dumps({k: res[k] for k in ('sent', 'failed', 'errors', 'moved', 'by_server')})}")
    print("splits of 600 new connections:", splits)
    assert res["connections"] == 50 and res["sent"] > 50 * 0.8 * duration / 0.2 * 0.5
    assert res["failed"] == 0 and res["moved"] == 0, res


def test_no_modify_churn_on_unchanged_groups(lab):
    lab.wait_for(lambda: lab.service()["in_sync"], 5, what="in sync")
    wait_polls(lab, 2)
    before = group_mods(lab)
    wait_polls(lab, 6)  # six polls: each reads every group back and compares
    assert group_mods(lab) == before


def test_hand_edited_fast_failover_group_is_repaired(lab):
    core = lab.spec.core()
    ofctl("mod-group", core, "group_id=2001,type=ff,bucket=watch_group:1,actions=group:1")
    t0 = time.monotonic()
    lab.wait_for(lambda: "group_id=2001,type=ff,bucket=watch_port:1,actions=output:1" in ofctl("dump-groups", core), 5,
                 interval=0.05, what="fast-failover group 2001 repaired")
    print(f"hand-edited FF group repaired in {time.monotonic() - t0:.2f} s")
