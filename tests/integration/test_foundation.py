"""End to end on real OVS (userspace datapath) + Mininet + `pfepo run` as a separate process.

Tolerances: OVS maps weights onto hash slots and splits per TCP flow by hash, so a 600-connection
split is compared with the weights at +-10 percentage points: 3 binomial sd at n=600 is <= 6 points, and
OVS may use as few as 16 hash slots (its dp_hash selection uses 16 unless the smallest weight is below 8),
which rounds a share by up to 3 points.

Each test starts from the config split with every uplink up (``baseline``), so they run in any order.
"""

from __future__ import annotations

import sqlite3
import statistics
import subprocess
import sys
import time

import pytest

from tests.integration.helpers import (
    at_baseline,
    data_plane_one_way_ms,
    dump_flows,
    switch_matches_desired,
    vip_flow_present,
    wait_polls,
    wait_split_settled,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.ovs

TOL = 0.10


@pytest.fixture(autouse=True)
def baseline(lab):
    at_baseline(lab)


def test_clients_reach_vip_and_flows_split_by_weight(lab):
    assert lab.switch_weights() == [32, 19, 13]  # 50/30/20 quantised to 64 slots
    shares = lab.measure_split(600)
    print(f"split of 600 connections for weights 50/30/20: {shares}")
    assert shares["_failed"] == 0
    for region, want in {"eu": 0.5, "us": 0.3, "ap": 0.2}.items():
        assert abs(shares[region] - want) < TOL, shares


def test_weights_set_through_api_appear_in_dump_groups_and_traffic(lab):
    r = lab.set_weights({"eu": 0, "us": 3, "ap": 1})
    assert r.status_code == 200, r.text
    lab.wait_for(lambda: lab.switch_weights() == [0, 48, 16], 5, what="group modified on the switch")
    assert "weight:48" in lab.dump_groups()
    lab.wait_for(lambda: lab.service()["in_sync"], 5, what="applied weights read back")
    wait_split_settled(lab, "eu", 0.0)
    shares = lab.measure_split(400)
    assert shares["eu"] == 0.0 and shares["_failed"] == 0
    assert abs(shares["us"] - 0.75) < TOL, shares
    lab.set_weights({"eu": 50, "us": 30, "ap": 20})
    lab.wait_for(lambda: lab.switch_weights() == [32, 19, 13], 5, what="weights restored")


def test_bad_override_changes_nothing_on_the_switch(lab):
    before = lab.dump_groups()
    for body in ({"mars": 1}, {"eu": -5, "us": 1}, {"eu": 0, "us": 0, "ap": 0}):
        r = lab.set_weights(body)
        assert r.status_code == 422, r.text
    wait_polls(lab, 2)  # two read-backs: nothing may have been sent
    assert lab.dump_groups() == before


def test_port_stats_reach_history_and_api(lab):
    lab.measure_split(200)

    def have_samples():
        got = lab.api.get("/api/v1/samples", params={"subject": "uplink:eu", "metric": "tx_bps", "limit": 50}).json()
        return [s for s in got["samples"] if s["value"] > 0]

    samples = lab.wait_for(have_samples, 10, what="non-zero uplink samples")
    assert samples[0]["tags"]["switch"] == lab.spec.core() and samples[0]["tags"]["region"] == "eu"
    db = sqlite3.connect(lab.workdir / "history.sqlite")
    # port rates are wide rows (port_rates); the all_samples view shows them as samples
    n = db.execute("SELECT COUNT(*) FROM all_samples WHERE subject = 'eu-1' AND metric = 'rx_bps'").fetchone()[0]
    db.close()
    assert n > 0
    ports = lab.api.get("/api/v1/switches").json()["switches"][0]["ports"]
    assert ports["1"]["up"] is True and ports["1"]["rates"] is not None


def test_daemon_restart_keeps_weights_and_reconciles(lab):
    assert lab.set_weights({"eu": 1, "us": 1, "ap": 2}).status_code == 200
    lab.wait_for(lambda: lab.switch_weights() == [16, 16, 32], 5, what="weights applied")
    lab.stop_daemon()
    # Controller gone: fail-mode secure keeps flows and groups, traffic still flows.
    assert lab.switch_weights() == [16, 16, 32]
    assert lab.measure_split(100)["_failed"] == 0
    # Someone changes the group behind our back while the daemon is down.
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "mod-group", lab.spec.core(),
                    "group_id=1,type=select,bucket=weight:64,watch_port:1,actions=output:1"], check=True)
    lab.start_daemon()
    lab.wait_connected()
    svc = lab.service()
    assert svc["desired_source"] == "saved" and svc["bucket_weights"] == {"eu": 16, "us": 16, "ap": 32}
    lab.wait_for(lambda: lab.switch_weights() == [16, 16, 32], 10, what="group reconciled after restart")
    assert lab.measure_split(100)["_failed"] == 0
    lab.set_weights({"eu": 50, "us": 30, "ap": 20})
    lab.wait_for(lambda: lab.switch_weights() == [32, 19, 13], 5, what="weights restored")


def test_link_down_moves_its_share_at_once(lab):
    lab.net.set_uplink("eu", False)
    t0 = time.monotonic()
    lab.wait_for(lambda: lab.switch_weights()[0] == 0, 5, interval=0.02, what="eu bucket at weight 0")
    took = time.monotonic() - t0
    svc = lab.service()
    assert svc["down_regions"] == ["eu"] and svc["bucket_weights"]["eu"] == 0
    assert took < 3.0
    # The planner follows within a decision tick (eu's share to us/ap by spare capacity); measure once the
    # switch holds its plan, or a regroup during the measurement would remap (reset) open connections.
    wait_until(lambda: (s := lab.service())["planned"] and s["planned"]["eu"] == 0 and s["in_sync"], 10,
               "planner's split applied")
    wait_split_settled(lab, "eu", 0.0)
    shares = lab.measure_split(600)
    assert shares["eu"] == 0.0 and shares["_failed"] == 0
    w = lab.switch_weights()  # eu's slots went to us and ap (planner: by spare capacity)
    assert w[0] == 0 and abs(shares["us"] - w[1] / 64) < TOL, (shares, w)
    # After the failure a root-cause report for the region is stored and served.
    reports = lab.wait_for(lambda: [r for r in lab.api.get("/api/v1/rootcause").json()["reports"]
                                    if r["region"] == "eu"], 15, interval=0.5, what="root-cause report for eu")
    assert lab.api.get(f"/api/v1/rootcause/{reports[0]['id']}").json()["region"] == "eu"
    lab.net.set_uplink("eu", True)
    # Back up, but the planner fails back gradually after a calm period (policies/default.yaml: 120 s),
    # so right after link-up eu still gets nothing: no flapping back onto a link that just returned.
    lab.wait_for(lambda: lab.service()["down_regions"] == [], 5, what="eu link up seen")
    wait_polls(lab, 2)  # decision loop and read-back both ran since: still nothing for eu
    assert lab.switch_weights()[0] == 0 and lab.service()["planned"]["eu"] == 0
    # An operator override is the new baseline and takes effect at once.
    assert lab.set_weights({"eu": 50, "us": 30, "ap": 20}).status_code == 200
    lab.wait_for(lambda: lab.switch_weights() == [32, 19, 13], 5, what="eu restored by the operator")
    events = lab.api.get("/api/v1/events").json()["events"]
    assert any(e["kind"] == "port_status" and e["port"] == 1 and e["up"] is False for e in events)


def test_unknown_switch_is_logged_and_left_alone(lab):
    br = lab.spec.prefix + "x9"
    subprocess.run(["ovs-vsctl", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
                    "protocols=OpenFlow13", "other-config:datapath-id=00000000000000aa", "fail-mode=secure"],
                   check=True)
    try:
        subprocess.run(["ovs-vsctl", "set-controller", br, f"tcp:127.0.0.1:{lab.of_port}"], check=True)
        lab.wait_for(lambda: lab.api.get("/api/v1/switches").json()["unknown_switches"], 10,
                     what="unknown switch reported")
        assert lab.api.get("/api/v1/switches").json()["unknown_switches"][0]["dpid"] == 0xAA
        flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", br], capture_output=True,
                               text=True, check=True).stdout
        assert "cookie" not in flows  # nothing installed
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", br], check=False)


def test_link_probes_measure_latency_and_loss(lab):
    def probe_samples(since: float = 0.0):
        got = lab.api.get("/api/v1/samples", params={"subject": "uplink:us", "since": since,
                                                     "limit": 200}).json()["samples"]
        return [s for s in got if s["tags"].get("source") == "probe"]

    samples = lab.wait_for(lambda: len({s["metric"] for s in probe_samples()}) >= 6 and probe_samples(), 10,
                           what="probe samples for both directions")
    assert {"latency_ms", "latency_out_ms", "latency_in_ms", "loss_pct"} <= {s["metric"] for s in samples}
    # A window of settled rounds (not the first ones after a connect, whose echo RTT is not learnt yet).
    t = time.time()
    wait_polls(lab, 6)
    window = probe_samples(t)
    latency = statistics.median(s["value"] for s in window if s["metric"] == "latency_ms")
    loss = [s["value"] for s in window if s["metric"] == "loss_pct"]
    # No impairment on this link: a few ms at most (controller-path error), no loss.
    print(f"idle probe latency {latency:.1f} ms, data plane {data_plane_one_way_ms(lab, 1):.1f} ms one way")
    assert 0 <= latency < 5.0, window
    assert loss and max(loss) == 0.0, window


@pytest.mark.parametrize("command", ["del-flows", "del-groups"])
def test_deleted_flows_or_groups_come_back_and_in_sync_means_it(lab, command):
    """issue 11 item 9: after del-flows/del-groups on a connected switch the VIP flow is reinstalled."""
    core = lab.spec.core()
    t0 = time.time()
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", command, core], check=True)
    # del-groups also removes the flows that use them (OVS); either way the VIP flow is gone right now,
    # unless the daemon already repaired it (a poll is every 0.5 s).
    wait_until(lambda: vip_flow_present(lab) and switch_matches_desired(lab), 5,
               f"VIP flow and group back after {command}", interval=0.02)
    print(f"{command}: VIP flow and group back after {time.time() - t0:.2f} s (poll interval 0.5 s)")
    repaired = [e for e in lab.api.get("/api/v1/events").json()["events"]
                if e["kind"] == "drift_repaired" and e["switch"] == core and e["ts"] >= t0]
    assert {e["table"] for e in repaired} >= ({"flows"} if command == "del-flows" else {"groups", "flows"}), repaired
    assert "priority=0 actions=NORMAL" in dump_flows(lab)  # the table-miss flow too
    wait_until(lambda: lab.service()["in_sync"], 5, "in_sync after the repair")
    # OVS revalidates its datapath flow cache asynchronously: wait until new connections all succeed.
    shares = wait_until(lambda: (sh := lab.measure_split(100))["_failed"] == 0 and sh, 10,
                        "every connection answered after the repair")
    assert all(shares[r] > 0 for r in ("eu", "us", "ap")), shares


def _recent_loss(lab, region: str, n: int = 4) -> list[float]:
    """The last ``n`` probe-loss samples of a region's uplink (fewer while it has fewer)."""
    rows = lab.api.get("/api/v1/samples", params={"subject": f"uplink:{region}", "metric": "loss_pct",
                                                  "limit": n}).json()["samples"]
    return [s["value"] for s in rows]


_FORGE = """
import os, socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
mac = bytes.fromhex(sys.argv[2].replace(":", ""))
for i in range(60):
    # PFEP magic, the core switch's dpid, its eu uplink port, a link id, a sequence number, now; no valid MAC
    body = struct.pack("!4sQIIId", b"PFEP", 1, 1, i % 6, 1000 + i, time.time()) + os.urandom(16)
    s.send(b"\\xff" * 6 + mac + struct.pack("!H", 0x88B5) + body)
    time.sleep(0.1)  # the attack's pace: 60 frames over 6 s
print("sent 60")
"""


def _rejected(lab) -> float:
    text = lab.api.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("pfepo_probe_frames_rejected_total{"))


def test_forged_probe_frames_from_a_server_change_nothing(lab):
    """issue 11 item 3, on a real switch: 60 forged probe frames sent from an eu server's port (the
    attack that used to drain eu) are counted as rejected and move no weight, and eu's probes stay
    lossless."""
    # Start from quiet probes and an idle planner: the previous tests delete the core's flows and groups,
    # and probes lost before the repair can start a shift a few ticks later (CI once saw eu at 16 of 32
    # here, the reason not logged). Every uplink lossless for the last polls, then the baseline again.
    wait_until(lambda: all(_recent_loss(lab, r) == [0.0] * 4 for r in lab.spec.regions), 20,
               "four lossless probe rounds on every uplink")
    at_baseline(lab)
    before_weights, before_rejected, t0 = lab.switch_weights(), _rejected(lab), time.time()
    server = lab.net.host(lab.spec.server(0, 0)[0])
    intf = server.defaultIntf()
    script = lab.workdir / "forge_probes.py"
    script.write_text(_FORGE)
    out = server.cmd(f"{sys.executable} {script} {intf.name} {intf.MAC()}")
    assert "sent 60" in out, out
    wait_until(lambda: _rejected(lab) - before_rejected >= 60, 10, "60 forged frames counted as rejected")
    wait_polls(lab, 6)  # three seconds of probes and decisions after the attack
    decisions = lab.api.get("/api/v1/audit", params={"kind": "decision", "since": t0}).json()["records"]
    acted = [d for d in decisions if d["level"] == "act"]
    assert lab.switch_weights() == before_weights, acted[-3:]
    assert not acted, acted[-3:]
    loss = lab.api.get("/api/v1/samples", params={"subject": "uplink:eu", "metric": "loss_pct",
                                                  "since": t0, "limit": 100}).json()["samples"]
    assert loss and all(s["value"] == 0.0 for s in loss), loss
