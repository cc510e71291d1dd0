"""The bench's fake switch against os-ken itself: what the daemon sends is kept, what it reads back parses."""

from __future__ import annotations

from types import SimpleNamespace

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from pfepo.openflow import ofmsg
from pfepo.openflow.desired import Bucket, Flow, Group
from pfepo_lab.bench._fakeswitches import HEADER, Fabric

DP = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)


class _Capture:
    def __init__(self):
        self.out = b""

    def write(self, data):
        self.out += data

    def is_closing(self):
        return False


def _to_switch(sw, msg) -> None:
    msg.set_xid(42)
    msg.serialize()
    raw = bytes(msg.buf)
    _v, mtype, length, xid = HEADER.unpack_from(raw)
    sw._handle(mtype, xid, raw[8:length])


def _replies(sw) -> list:
    raw, out = sw.writer.out, []
    sw.writer.out = b""
    while raw:
        v, mtype, length, xid = HEADER.unpack_from(raw)
        out.append(ofproto_parser.msg(DP, v, mtype, length, xid, raw[:length]))
        raw = raw[length:]
    return out


def test_groups_flows_and_port_stats_round_trip_through_os_ken():
    fab = Fabric()
    sw = fab.add(1, n_ports=4)
    sw.writer = _Capture()
    group = Group(1, (Bucket(40, 1, (("output", 1),), "eu"), Bucket(24, 2, (("output", 2),), "us")))
    flow = Flow(200, (("eth_type", 0x0800), ("ip_proto", 6), ("ipv4_dst", "10.0.100.1"), ("tcp_dst", 80)), group=1)
    _to_switch(sw, ofmsg.group_mod(DP, group, "add"))
    _to_switch(sw, ofmsg.flow_mod(DP, flow))
    _to_switch(sw, ofmsg.flow_mod(DP, flow))  # ADD of the same match replaces
    assert sw.bucket_weight(1) == 40 and sw.bucket_weight(2) == 24 and len(sw.flows) == 1
    assert sw.group_events[-1].weights == {1: 40, 2: 24}

    _to_switch(sw, parser.OFPGroupDescStatsRequest(DP, 0))
    (gd,) = _replies(sw)
    assert ofmsg.parse_group_desc(gd.body, {1: group}) == {1: group}
    _to_switch(sw, parser.OFPFlowStatsRequest(DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY))
    (fs,) = _replies(sw)
    assert len(fs.body) == 1 and fs.body[0].priority == 200 and fs.body[0].cookie == ofmsg.COOKIE
    _to_switch(sw, parser.OFPPortStatsRequest(DP, 0, ofp.OFPP_ANY))
    (ps,) = _replies(sw)
    # os-ken's objects, or one array once a PfepoApp in this test process installed its parser (ofmsg)
    ports = ps.body["port_no"].tolist() if hasattr(ps.body, "dtype") else [s.port_no for s in ps.body]
    assert ports == [1, 2, 3, 4] and sw.stats_replies == 1
    sw.port_status(2, up=False)
    (st,) = _replies(sw)
    assert st.desc.port_no == 2 and st.desc.state & ofp.OFPPS_LINK_DOWN
