"""The pure OpenFlow sync (switch.py) against fake switches (fakeswitch.py): no OVS, milliseconds each."""

from __future__ import annotations

import struct

import pytest

from pfepo.openflow import frames
from pfepo.openflow.desired import Bucket, Flow, Group, service_group_id
from pfepo.openflow.messages import FlowMod, GroupMod, PacketOut, PortStat
from pfepo.telemetry import probes
from tests.openflow.fakeswitch import FakeController, FakeSwitch

VIP_TCP = {"in_port": 10, "eth_type": 0x0800, "ip_proto": 6, "ipv4_dst": "10.0.100.1", "tcp_dst": 80}
GID = service_group_id(0)


@pytest.fixture
def net(cfg) -> FakeController:
    n = FakeController(cfg)
    n.connect()
    return n


def _bucket(label: str):
    return lambda _g, live: next(b for b in live if b.label == label)


def _no_errors(net: FakeController) -> None:
    for sw in net.switches.values():
        assert sw.errors == [], sw.errors


def test_connect_installs_what_the_switch_should_hold_in_openflow_order(net):
    core = net.switches[net.dpid("pfc0")]
    assert not [e for e in net.events if e[0] == "drift_repaired"]  # the first install is no drift
    want = net.fabric.want(core.dpid)
    assert core.groups == want.groups
    assert set(core.flows.values()) == set(want.flows)
    _no_errors(net)  # no flow ever referenced a group or meter before it existed
    first_flow = next(i for i, m in enumerate(core.mods) if isinstance(m, FlowMod))
    assert all(isinstance(m, GroupMod) for m in core.mods[:first_flow])
    svc = net.state.snapshot_services()[0]
    assert svc["in_sync"] and svc["applied"]["pfc0"] == {"eu": 32, "us": 19, "ap": 13}


def test_vip_packet_goes_to_the_chosen_region_and_is_rewritten_to_an_endpoint(net):
    core, eu = net.switches[net.dpid("pfc0")], net.switches[net.dpid("pfr1")]
    path = core.forward(VIP_TCP, choose=_bucket("us"))
    assert path.outputs == [2] and path.groups == [(GID, "us")]
    at_eu = eu.forward({**core.forward(VIP_TCP, choose=_bucket("eu")).headers, "in_port": 1},
                       choose=_bucket("eu-2"))
    assert at_eu.outputs == [3] and at_eu.headers["ipv4_dst"] == "10.0.1.2"
    assert at_eu.headers["eth_dst"] == "00:00:00:00:01:02"
    reply = eu.forward({"in_port": 3, "eth_type": 0x0800, "ip_proto": 6, "ipv4_src": "10.0.1.2", "tcp_src": 80})
    assert reply.headers["ipv4_src"] == "10.0.100.1" and reply.outputs == ["normal"]


@pytest.mark.parametrize("drift", ["del_groups", "del_flows", "mod_group"])
def test_drift_is_repaired_on_the_next_poll(net, drift):
    core = net.switches[net.dpid("pfc0")]
    want = net.fabric.want(core.dpid)
    if drift == "mod_group":
        core.mod_group(Group(GID, (Bucket(64, 1, (("output", 1),), "eu"),)))
    else:
        getattr(core, drift)()
    net.tick()  # the poll's read-back sees the drift: not in sync until repaired
    assert core.groups == want.groups and set(core.flows.values()) == set(want.flows)
    tables = {e["table"] for kind, e in net.events if kind == "drift_repaired"}
    assert tables == ({"groups"} if drift == "mod_group" else {"flows"} if drift == "del_flows"
                      else {"groups", "flows"}), net.events
    assert core.forward(VIP_TCP).groups, "VIP flow back"
    _no_errors(net)
    assert net.state.snapshot_services()[0]["in_sync"]


def test_in_sync_is_false_while_a_flow_is_missing(net):
    core = net.switches[net.dpid("pfc0")]
    core.del_flows()
    # Read-back only (replies handled, repairs not yet applied): feed the flow stats by hand.
    out = net.fabric.on_flow_stats(core.dpid, [])
    assert any(isinstance(m, FlowMod) for m in out.to(core.dpid))
    net.state.set_sync_status(core.dpid, out.status[core.dpid])
    assert not net.state.snapshot_services()[0]["in_sync"]


def test_our_stale_flow_is_deleted_and_foreign_groups_are_left_alone(net):
    core = net.switches[net.dpid("pfc0")]
    stale = Flow(150, (("eth_type", 0x0800), ("ipv4_dst", "10.9.9.9")), (("output", 1),))
    core.flows[(0, 150, frozenset(stale.match))] = stale
    core.groups[77] = Group(77, (Bucket(1, None, (("output", 2),)),))
    net.tick()
    assert stale not in core.flows.values() and 77 in core.groups


def test_uplink_down_zeroes_its_bucket_and_traffic_avoids_it(net):
    core = net.switches[net.dpid("pfc0")]
    net.port_status(core.dpid, 1, False)
    assert core.groups[GID].weights()["eu"] == 0
    assert sum(core.groups[GID].weights().values()) == 64
    assert ("port_status", {"switch": "pfc0", "port": 1, "up": False}) in net.events
    # Even a hash that would pick eu cannot: its weight is 0 and its watch port is down.
    assert core.forward(VIP_TCP, choose=lambda _g, live: live[0]).groups[0][1] != "eu"
    net.port_status(core.dpid, 1, True)
    assert core.groups[GID].weights()["eu"] > 0
    _no_errors(net)


def test_operator_overrides_modify_in_place_even_before_read_back(net):
    core = net.switches[net.dpid("pfc0")]
    n_mods = len(core.mods)
    net.state.set_baseline("web", {"eu": 0, "us": 3, "ap": 1}, source="operator")
    net.run(None)
    net.state.set_baseline("web", {"eu": 1, "us": 1, "ap": 2}, source="operator")
    net.run(None)
    assert core.groups[GID].weights() == {"eu": 16, "us": 16, "ap": 32}
    new = [m for m in core.mods[n_mods:] if isinstance(m, GroupMod)]
    assert [m.command for m in new] == ["modify", "modify"]
    _no_errors(net)


def test_stale_read_back_does_not_undo_a_change(net):
    """A group-desc reply requested before our MODIFY must not make us re-send (or re-ADD) anything."""
    core = net.switches[net.dpid("pfc0")]
    before = dict(core.groups)
    net.fabric.on_tick(net.now)  # poll requests in flight (their replies would show the old weights)
    net.state.set_baseline("web", {"eu": 1, "us": 1, "ap": 2}, source="operator")
    push = net.fabric.on_desired(net.state.bucket_weights(), net.state.bandwidth_snapshot())
    assert [m.command for m in push.to(core.dpid) if isinstance(m, GroupMod)] == ["modify"]
    late = net.fabric.on_group_desc(core.dpid, before)  # the poll's reply, from before the MODIFY
    assert not [m for m in late.to(core.dpid) if isinstance(m, GroupMod)]


def test_bandwidth_becomes_a_meter_before_the_flows_using_it(net):
    eu = net.switches[net.dpid("pfr1")]
    net.state.set_bandwidth("web", {"eu": 20}, source="operator")
    net.run(None)
    assert eu.meters[1].rate_kbps == 20000
    assert any(f.meter == 1 for f in eu.flows.values())
    _no_errors(net)
    assert net.state.snapshot_services()[0]["in_sync"]


def test_port_counters_become_rates_and_samples(net):
    core = net.switches[net.dpid("pfc0")]
    core.counters[1] = PortStat(1, 0, 0)
    net.tick()
    core.counters[1] = PortStat(1, 1_000_000, 2_000_000)
    net.tick(1.0)
    tx = [s for s in net.samples if s.subject == "uplink:eu" and s.metric == "tx_bps"]
    assert tx and tx[-1].value == pytest.approx(16e6)
    assert net.state.snapshot_switches()[0].ports[1].rates is not None


def test_arp_for_a_vip_is_answered_with_the_vip_mac(net):
    core = net.switches[net.dpid("pfc0")]
    req = frames.arp_frame(frames.ARP_REQUEST, "00:00:00:00:00:0c", "10.0.0.3", "00:00:00:00:00:00", "10.0.100.1")
    net.packet_in(core.dpid, 7, req)
    out = core.packet_outs[-1]
    assert out.port == 7
    op, sha, spa, tha, tpa = frames.parse_arp(out.data)
    assert (op, sha, spa, tha, tpa) == (frames.ARP_REPLY, "02:00:00:00:00:64", "10.0.100.1",
                                        "00:00:00:00:00:0c", "10.0.0.3")
    other = frames.arp_frame(frames.ARP_REQUEST, "00:00:00:00:00:0c", "10.0.0.3", "00:00:00:00:00:00", "10.0.0.9")
    net.packet_in(core.dpid, 7, other)
    assert core.packet_outs[-1] is out  # not ours to answer



def test_probes_measure_each_direction_and_learn_the_return_port(net):
    core, eu = net.switches[net.dpid("pfc0")], net.switches[net.dpid("pfr1")]
    net.tick()
    assert net.deliver_probes(core, 1, eu.dpid, 1, 0.010) == net.cfg.probes.per_interval  # core -> eu on port 1
    net.tick()  # eu's return port is learnt now: probes go both ways
    assert net.deliver_probes(eu, 1, core.dpid, 1, 0.020) == net.cfg.probes.per_interval
    net.deliver_probes(core, 1, eu.dpid, 1, 0.010)
    net.tick(net.cfg.probes.timeout_s + 0.1)
    got = {s.metric: s.value for s in net.samples if s.subject == "uplink:eu"}
    assert got["latency_out_ms"] == pytest.approx(10.0, abs=0.5)
    assert got["latency_in_ms"] == pytest.approx(20.0, abs=0.5)
    assert got["loss_pct"] == 0.0
    # Probes that never come back count as lost.
    core.packet_outs.clear()
    net.tick()
    net.tick(net.cfg.probes.timeout_s + 0.1)
    lost = [s for s in net.samples if s.subject == "uplink:eu" and s.metric == "loss_out_pct"]
    assert lost[-1].value == 100.0


def test_no_probes_until_both_ends_hold_their_flows(cfg):
    net = FakeController(cfg)
    net.connect(net.dpid("pfc0"))
    net.tick()
    core = net.switches[net.dpid("pfc0")]
    assert not [p for p in core.packet_outs if isinstance(p, PacketOut)]


def test_reconnect_starts_a_fresh_sync(net):
    core = net.switches[net.dpid("pfc0")]
    net.disconnect(core.dpid)
    core.del_groups()
    net.connect(core.dpid)
    assert core.groups == net.fabric.want(core.dpid).groups
    _no_errors(net)


def test_unknown_switch_is_left_alone(cfg):
    net = FakeController(cfg)
    assert net.fabric.on_connect(0xAA, net.now) is None


def test_fake_switch_records_unknown_actions_instead_of_failing():
    sw = FakeSwitch(1, {1: True})
    sw.apply(FlowMod(Flow(10, (("eth_type", 0x0800),), (("ct", "commit", 5), ("output", 1)))))
    path = sw.forward({"eth_type": 0x0800, "in_port": 2})
    assert path.outputs == [1] and path.unknown == [("ct", "commit", 5)]
    sw.apply(GroupMod(Group(3, ()), "modify"))
    assert sw.errors == ["UNKNOWN_GROUP: MODIFY of group 3"]


def _forge(net, link_id: int, seq: int, t_out: float, key: bytes, src_dpid: int = 1, src_port: int = 1) -> bytes:
    return frames.probe_frame(probes.encode(src_dpid, src_port, link_id, seq, t_out, key), probes.ETH_TYPE)


def test_forged_probe_frames_are_counted_and_change_nothing(net):
    """issue 11 item 3: 60 forged frames from a server port used to drain a region."""
    core, eu = net.switches[net.dpid("pfc0")], net.switches[net.dpid("pfr1")]
    net.tick()
    sent = [p for p in core.packet_outs if p.port == 1 and frames.ethertype(p.data) == probes.ETH_TYPE]
    core.packet_outs.clear()
    genuine = sent[0].data
    _hdr, _dpid, _port, link_id, seq, t_out = struct.unpack_from("!4sQIIId", genuine, 14)
    forged = [
        _forge(net, link_id, seq, t_out, b"wrong key"),                              # bad_mac
        genuine[:-1] + bytes([genuine[-1] ^ 1]),                                       # bad_mac (tampered)
        genuine[:20],                                                                  # malformed
    ]
    for f in forged:
        net.packet_in(eu.dpid, 2, f)  # from a server port, like the attack
    assert net.rejected_probes == ["bad_mac", "bad_mac", "malformed"]
    # The real probes arrive on the link's port and are accepted (the first one teaches the return port).
    for p in sent:
        net.packet_in(eu.dpid, 1, p.data)
    assert len(net.rejected_probes) == 3
    net.packet_in(eu.dpid, 2, genuine)  # a genuine frame replayed from a server port
    net.packet_in(eu.dpid, 1, genuine)  # ... and on the link's port
    assert net.rejected_probes[3:] == ["wrong_port", "replay"]
    # The return port was learnt from the genuine probes only: port 1, not the server port 2.
    assert net.fabric.links["uplink:eu<"][1] == 1
    net.tick(net.cfg.probes.timeout_s + 0.1)
    got = {s.metric: s.value for s in net.samples if s.subject == "uplink:eu"}
    assert got["loss_out_pct"] == 0.0


def test_probe_sent_long_ago_is_outside_the_window(net):
    core, eu = net.switches[net.dpid("pfc0")], net.switches[net.dpid("pfr1")]
    net.tick()
    p = next(p for p in core.packet_outs if p.port == 1 and frames.ethertype(p.data) == probes.ETH_TYPE)
    net.now += net.cfg.probes.timeout_s + 5
    net.packet_in(eu.dpid, 1, p.data)
    assert net.rejected_probes == ["outside_window"]
