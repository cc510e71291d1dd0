"""A gray failure handled end to end on real OVS + Mininet + the daemon: region eu's relay drops every
packet while its link stays up (OVS liveness sees nothing). The daemon's live signals (1 s HTTP health
checks through the data plane, link probes) detect it, move eu's share at once and evict its pinned
connections; new connections stop failing; after recovery the region is restored (pinned again)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import pytest

from mininet_topologies.lab import Lab
from mininet_topologies.multiregion import TopoSpec
from tests.integration.helpers import at_baseline, wait_keepalive_answered, wait_split_settled

pytestmark = pytest.mark.ovs


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    spec = TopoSpec(prefix="p" + secrets.token_hex(2), weights={"eu": 50, "us": 30, "ap": 20}, monitor_ip="10.0.0.250")
    lb = Lab(tmp_path_factory.mktemp("gray"), spec=spec, extra_config={"predict": {"enabled": False}})
    lb.start()
    lb.restart_daemon()  # the first start saw every health check fail (servers not up yet): start clean
    yield lb
    lb.stop()
    log = lb.workdir / "daemon.log"
    if log.exists():
        print(log.read_text()[-3000:])


@pytest.fixture(autouse=True)
def baseline(lab):
    """Each test starts with eu healthy, the config split and an idle planner, so they run in any order."""
    lab.net.impairer.clear("eu")
    at_baseline(lab)


def ff_group(core: str) -> str:
    """eu's fast-failover group as the switch reports it (dump-groups lists every group in OF1.3)."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", core], capture_output=True,
                         text=True, check=True).stdout
    return next((line for line in out.splitlines() if "group_id=2001," in line), "")


def eu_state(lab) -> dict:
    """eu's state in the planner's last plan (phase: normal, draining, recovering, failed; evicted)."""
    plan = lab.api.get("/api/v1/decisions").json()["plan"] or {}
    return plan.get("states", {}).get("web", {}).get("eu", {})


def eu_phase(lab) -> str | None:
    return eu_state(lab).get("phase")


def health(lab, endpoint: str) -> list[dict]:
    return lab.api.get("/api/v1/samples", params={"subject": endpoint, "metric": "health_up", "limit": 1}).json()["samples"]


def test_blackhole_detected_moved_and_emptied(lab):
    lab.wait_for(lambda: health(lab, "eu-1") and health(lab, "eu-1")[-1]["value"] == 1, 15,
                 what="health checks of eu through the monitor interface")
    assert lab.service()["bucket_weights"]["eu"] == 32
    kalog = lab.workdir / "ka.jsonl"
    duration = 30.0
    ka = lab.net.start_client("c1", ["--url", f"http://{lab.spec.vip}/", "--keepalive", "10", "--interval", "0.2",
                                     "--duration", str(duration), "--timeout", "2", "--log", str(kalog)])
    wait_keepalive_answered(kalog, 10)  # every connection open and pinned to its region
    assert "watch_port:1" in ff_group(lab.spec.core())
    t_fail = time.time()
    lab.net.impairer.blackhole("eu")
    lab.wait_for(lambda: lab.service()["bucket_weights"]["eu"] == 0, 10, interval=0.1, what="eu share moved")
    t_moved = time.time()
    lab.wait_for(lambda: "watch_port:1" not in ff_group(lab.spec.core()), 5, interval=0.1, what="eu evicted")
    t_evicted = time.time()
    print(f"blackhole: share moved after {t_moved - t_fail:.2f} s, pinned connections evicted after "
          f"{t_evicted - t_fail:.2f} s")
    assert lab.service()["down_regions"] == []  # the link is up: this was not OVS liveness
    wait_split_settled(lab, "eu", 0.0)
    shares = lab.measure_split(300, client="c2")
    assert shares["eu"] == 0.0 and shares["_failed"] == 0, shares
    records = lab.api.get("/api/v1/audit", params={"kind": "evict", "limit": 10}).json()["records"]
    assert any(r.get("region") == "eu" and "failed" in r.get("reason", "") for r in records), records

    out, _ = ka.communicate(timeout=duration + 30)
    res = json.loads(out.decode().strip().splitlines()[-1])
    recs = [json.loads(line) for line in kalog.read_text().splitlines()]
    late = [r for r in recs if r.get("error") and r["ts"] > t_evicted + 2.5]  # 2 s client timeout + slack
    print(f"keep-alive: {res['sent']} sent, {res['failed']} failed ({res['errors']}), failed after eviction+timeout: "
          f"{len(late)}")
    assert not late, late[:5]

    lab.net.impairer.clear("eu")
    lab.wait_for(lambda: health(lab, "eu-1")[-1]["value"] == 1, 10, what="eu healthy again")
    # Up again but not back: fail-back waits for min dwell and calm, so eu gets no new connections. Whether
    # its connections are pinned again now depends on the ticks the planner saw the signals in: up again
    # restores them (recovering), and a later tick that still sees the probes' loss (recovering -> draining)
    # keeps them pinned until empty_after_s, whereas both in one tick (failed -> draining) keeps them evicted.
    # That is a race between the health check and the probe window (a phase-based expectation failed CI
    # once: draining and pinned), so the switch is checked against the planner's own eviction decision.
    lab.wait_for(lambda: eu_phase(lab) in ("draining", "recovering"), 10, what="eu out of the failed phase")
    assert lab.service()["bucket_weights"]["eu"] == 0
    lab.wait_for(lambda: ("watch_port:1" in ff_group(lab.spec.core())) == (not eu_state(lab).get("evicted")), 5,
                 interval=0.1, what="the switch pins eu's connections exactly when the planner has not evicted them")
    # An operator split is the new baseline: eu takes traffic again, so its connections are pinned again.
    assert lab.set_weights({"eu": 40, "us": 40, "ap": 20}).status_code == 200
    lab.wait_for(lambda: "watch_port:1" in ff_group(lab.spec.core()) and lab.switch_weights()[0] > 0, 10,
                 interval=0.2, what="eu restored")
    records = lab.api.get("/api/v1/audit", params={"kind": "restore", "limit": 10}).json()["records"]
    assert any(r.get("region") == "eu" for r in records), records


def test_kill_9_during_a_drain_puts_no_weight_back(lab):
    """Issue 11 item 4: the planner's drain, timers and eviction survive a kill -9 of the daemon."""
    assert lab.set_weights({"eu": 50, "us": 30, "ap": 20}).status_code == 200
    lab.wait_for(lambda: lab.switch_weights() == [32, 19, 13], 10, what="nominal weights")
    lab.net.impairer.blackhole("eu")
    lab.wait_for(lambda: lab.switch_weights()[0] == 0 and "watch_port:1" not in ff_group(lab.spec.core()), 10,
                 interval=0.1, what="eu failed and emptied")
    lab.net.impairer.clear("eu")  # healthy again: the planner fails back only after dwell and calm
    lab.wait_for(lambda: eu_phase(lab) in ("recovering", "draining"), 10,
                 what="eu recovering (or draining while the probe window still shows loss)")
    t_before = time.time()
    before = eu_state(lab)
    lab.daemon.kill()  # SIGKILL: no chance to save anything on the way out
    lab.daemon.wait(timeout=5)
    lab.daemon = None
    seen: list[list[int]] = []
    lab.start_daemon()  # same state_dir
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen.append(lab.switch_weights())
        try:
            if lab.service()["in_sync"] and len(seen) > 40:
                break
        except Exception:
            pass
        time.sleep(0.05)  # sampling interval of the switch's weights (a polling loop, not a wait)
    assert lab.service()["in_sync"]
    assert all(w[0] == 0 for w in seen if w), [w for w in seen if w and w[0]][:5]
    after = lab.api.get("/api/v1/decisions").json()["plan"]["states"]["web"]["eu"]
    print(f"before kill -9: {before}; after restart: {after}; {len(seen)} samples of the switch, eu always 0")
    assert after["weight"] == 0
    if after["phase"] == before["phase"]:
        assert after["since"] == before["since"]  # the dwell timer resumed, not restarted
    else:  # up first (recovering), the probes' loss seen a tick later (draining): a new phase, not a reset
        assert (before["phase"], after["phase"]) == ("recovering", "draining") and after["since"] >= t_before
