"""Each impairment knob, measured through real namespaces: left <-veth-> relay <-veth-> right.

Tolerances are the ones documented in docs/impairment.md.
"""

from __future__ import annotations

import pytest

from pfepo_lab.impair.impair import ImpairError, has_carrier, link_flags
from tests.waiting import wait_until


def test_plain_wire_forwards_without_loops(lab, imp):
    before = lab.impairer().show("lnk")["relays"]["lnk"]["a2b"]["counters"]["rx"]
    r = lab.probe(count=50, interval=0.002)
    assert r["loss_pct"] == 0
    assert r["rtt_p50"] < 3.0
    after = lab.impairer().show("lnk")["relays"]["lnk"]["a2b"]["counters"]["rx"]
    # 50 requests cross a->b once each; a loop (reading our own sends back) would multiply this.
    assert 50 <= after - before < 80


@pytest.mark.parametrize("size", [1472, 8000])
def test_mtu_and_fragmented_frames_cross(lab, imp, size):
    res = lab.probe(count=20, interval=0.002, wait=0.5, size=size)  # 8000 B: IP fragments of MTU size
    assert res["loss_pct"] == 0, res


def test_delay_each_way_adds_twice_to_rtt(lab, imp):
    imp.set_delay("lnk", 20)
    r = lab.probe(count=60, interval=0.005)
    assert r["loss_pct"] == 0
    assert 40.0 <= r["rtt_min"] and r["rtt_p50"] <= 45.0, r
    imp.set_delay("lnk", 0)
    assert lab.probe(count=20, interval=0.005)["rtt_p50"] < 3.0


def test_delay_one_direction_and_region_target(lab, imp):
    imp.set_delay("reg", 30, direction="a2b")  # region name stands for its link node
    r = lab.probe(count=40, interval=0.005)
    assert 30.0 <= r["rtt_min"] and r["rtt_p50"] <= 35.0, r


def test_jitter_spreads_rtt_within_bounds(lab, imp):
    imp.set_delay("lnk", 20, jitter_ms=5)
    r = lab.probe(count=100, interval=0.01)
    assert r["loss_pct"] == 0
    # 40 ms +- up to 10: the minimum cannot go below 30 and the median stays near 40 (one-sided or doubled
    # jitter fails one or the other). The upper tail is the host's as much as the relay's: p90 read 45.8-48.2
    # here idle and with three busy loops, and 55.1 once in a CI run; its bound is a loose sanity check.
    assert r["rtt_min"] >= 30.0 and r["rtt_p50"] <= 46.0 and r["rtt_p90"] <= 60.0, r
    assert r["rtt_p90"] - r["rtt_min"] > 3.0, r


def test_link_loss_in_relay(lab, imp):
    imp.set_loss("lnk", 30)  # 30 % each way: an echo survives with 0.7 * 0.7 -> 51 % round-trip loss
    r = lab.probe(count=500, interval=0.001, wait=0.5)
    assert 41.0 <= r["loss_pct"] <= 61.0, r
    imp.set_loss("lnk", 30, direction="a2b")
    imp.set_loss("lnk", 0, direction="b2a")
    r = lab.probe(count=500, interval=0.001, wait=0.5)
    assert 20.0 <= r["loss_pct"] <= 40.0, r


def test_host_loss_with_iptables_is_idempotent_and_removable(lab, imp):
    imp.set_loss("left", 60, direction="out")
    imp.set_loss("left", 30, direction="out")  # replaces, does not stack
    rules = [line for line in lab.runner(lab.left)(["iptables", "-S"]).splitlines() if "statistic" in line]
    assert len(rules) == 1 and "--probability 0.29999" in rules[0], rules
    r = lab.probe(count=500, interval=0.001, wait=0.5)
    assert 20.0 <= r["loss_pct"] <= 40.0, r
    imp.clear("left")
    assert "PFL-" not in lab.runner(lab.left)(["iptables", "-S"])
    assert lab.probe(count=50, interval=0.002)["loss_pct"] == 0


def test_bandwidth_cap_with_tbf(lab, imp):
    imp.set_bandwidth("lnk", 5)
    mbit = lab.iperf(seconds=2)
    assert 4.0 <= mbit <= 5.5, mbit
    imp.clear("lnk")
    assert "tbf" not in lab.runner(lab.mid)(["tc", "qdisc", "show", "dev", lab.if_b])


def test_relay_rate_cap(lab, imp):
    imp._relay(imp.links["lnk"], "set", "both", rate_mbit=20)
    mbit = lab.iperf(seconds=2)
    assert 16.0 <= mbit <= 21.0, mbit


def test_tcp_throughput_through_relay_is_reasonable(lab, imp):
    assert lab.iperf(seconds=2) > 200.0


def test_link_down_drops_carrier_on_the_peer_and_up_restores(lab, imp):
    peer = lab.runner(lab.left)
    assert has_carrier(peer, lab.if_left)
    imp.link_down("lnk")
    assert "NO-CARRIER" in link_flags(peer, lab.if_left)
    assert not has_carrier(lab.runner(lab.right), lab.if_right)
    assert lab.probe(count=20, interval=0.005, wait=0.3)["loss_pct"] == 100
    imp.link_up("lnk")
    wait_until(lambda: has_carrier(peer, lab.if_left), 3, "carrier back on the peer")
    wait_until(lambda: lab.probe(count=1, interval=0.005, wait=0.3)["loss_pct"] == 0, 5,
               "a probe through the relay again")
    r = lab.probe(count=50, interval=0.005)
    assert r["loss_pct"] < 5, r  # the relay survives its interfaces going down and up


def test_bad_targets_and_values_are_refused(lab, imp):
    with pytest.raises(ImpairError, match="unknown target"):
        imp.set_delay("nowhere", 5)
    with pytest.raises(ImpairError, match="host"):
        imp.set_delay("left", 5)
    with pytest.raises(ImpairError, match="direction"):
        imp.set_delay("lnk", 5, direction="up")
    with pytest.raises(ImpairError, match="0..100"):
        imp.set_loss("lnk", 130)
    with pytest.raises(ImpairError, match="no interface"):
        imp.link_down("lnk:eth9")
    with pytest.raises(ImpairError, match="refused"):
        imp._relay(imp.links["lnk"], "set", "both", delay_ms=-1)


def test_control_socket_refuses_garbage_and_second_relay(lab, imp):
    import socket
    import sys

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect(lab.control)
        s.sendall(b"not json\n" + b'{"op": "set", "delay": 5}\n')
        f = s.makefile()
        replies = f.readline(), f.readline()
    assert '"ok": false' in replies[0] and "bad request" in replies[0]
    assert "unknown field" in replies[1]
    r = lab.run(lab.mid, [sys.executable, "-m", "pfepo_lab.impair.relay", "--a", lab.if_a, "--b", lab.if_b,
                          "--control", lab.control, "--no-setup"])
    assert r.returncode == 1 and "another relay is listening" in r.stderr
    assert lab.relay_proc.poll() is None and lab.probe(count=10, interval=0.002)["loss_pct"] == 0
