"""Condition waits for lab tests, on the daemon's own clock (its poll ticks), not on wall-clock sleeps."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.waiting import wait_until


def polls(lab) -> int:
    """Poll ticks the daemon's OpenFlow thread has handled (read-back, stats, probes)."""
    text = lab.api.get("/metrics").text
    m = re.search(r"^pfepo_openflow_polls_total (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else 0


def wait_polls(lab, n: int = 2, timeout: float = 15.0) -> None:
    """Wait until ``n`` more poll ticks were handled: every switch was read back and repaired ``n`` times."""
    start = polls(lab)
    wait_until(lambda: polls(lab) >= start + n, timeout, f"{n} poll ticks of the daemon")


def dump_flows(lab, switch: str | None = None) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch or lab.spec.core()],
                          capture_output=True, text=True, check=True).stdout


def vip_flow_present(lab, switch: str | None = None) -> bool:
    return f"nw_dst={lab.spec.vip}" in dump_flows(lab, switch) and "group:1" in dump_flows(lab, switch)


def wait_split_settled(lab, region: str, share: float, timeout: float = 10.0) -> None:
    """OVS revalidates cached datapath flows asynchronously after a group change: wait until a small
    sample of new connections already shows ``region`` at ``share`` (exactly 0 or 1 only)."""
    wait_until(lambda: lab.measure_split(40)[region] == share, timeout, f"{region} at {share} in new connections")


def wait_keepalive_answered(log: Path, n: int, timeout: float = 15.0) -> None:
    """Wait until each of the ``n`` keep-alive connections of a load client (``--log``) was answered:
    every connection is open and pinned to a region."""

    def answered() -> bool:
        recs = [json.loads(line) for line in log.read_text().splitlines()]
        return len({r["conn"] for r in recs if r.get("server")}) >= n

    wait_until(answered, timeout, f"{n} keep-alive connections answered")


def at_baseline(lab) -> None:
    """Put the lab back to the config split with every uplink up and an idle planner, whatever a previous
    test left. A planner still holding a drained region (min dwell) is reset by restarting the daemon."""
    if lab.daemon is None or lab.daemon.poll() is not None:
        lab.start_daemon()
    for region in lab.spec.regions:
        lab.net.set_uplink(region, True)
    wait_until(lambda: lab.service()["down_regions"] == [], 10, "every uplink up")
    r = lab.set_weights({"eu": 50, "us": 30, "ap": 20})
    assert r.status_code == 200, r.text
    wait_polls(lab, 2)  # a decision tick or two: does the planner put its own split back on top?
    planned = lab.service()["planned"]
    if planned is not None and planned != {"eu": 32, "us": 19, "ap": 13}:
        lab.stop_daemon()
        # desired.json keeps the operator split; the planner's own state (drains, dwell timers) survives a
        # restart by design (state_dir/planner.json), so a test that wants an idle planner removes it.
        (Path(lab.config["state_dir"]) / "planner.json").unlink(missing_ok=True)
        lab.start_daemon()
    wait_until(lambda: lab.switch_weights() == [32, 19, 13], 15, "config split on the switch")
    lab.wait_connected()


def switch_matches_desired(lab) -> bool:
    """The core's service group holds the bucket weights the daemon wants now (planner included)."""
    want = lab.service()["bucket_weights"]
    return lab.switch_weights() == [want[r] for r in lab.spec.regions]  # bucket order = config order


def data_plane_one_way_ms(lab, region_index: int, count: int = 20) -> float:
    """Mean one-way latency c1 -> the region's first server measured by ping at the same moment (half
    the average RTT): what the data plane itself sees through the same relay, for comparison."""
    out = lab.net.host("c1").cmd(f"ping -c {count} -i 0.1 -q 10.0.{region_index + 1}.1")
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    assert m, out
    return float(m.group(1)) / 2

