"""Messages survive serialisation and parse back into the same desired groups (no switch needed)."""

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from pfepo.openflow import ofmsg
from pfepo.openflow.desired import switch_state


class FakeDatapath:
    """Just enough of a datapath for os-ken to serialise messages; no connection."""

    ofproto = ofp
    ofproto_parser = parser
    id = 1


def _roundtrip_group_desc(group_mod):
    group_mod.serialize()
    buckets = []
    for b in group_mod.buckets:
        buf = bytearray()
        b.serialize(buf, 0)
        buckets.append(parser.OFPBucket.parser(bytes(buf), 0))
    return parser.OFPGroupDescStats(group_mod.type, group_mod.group_id, buckets)


def test_group_mod_parses_back_equal(cfg):
    dp = FakeDatapath()
    for sw in ("pfc0", "pfr1"):
        for evicted in (None, {"web": ["eu"]}):
            want = switch_state(cfg, sw, {"web": {"eu": 30, "us": 20, "ap": 14}}, evicted=evicted).groups
            stats = [_roundtrip_group_desc(ofmsg.group_mod(dp, g, "add")) for g in want.values()]
            got = ofmsg.parse_group_desc(stats, want)
            assert got == want
            assert {gid: g.kind for gid, g in got.items()} == {gid: g.kind for gid, g in want.items()}


def test_new_actions_translate_both_ways():
    acts = (("set_field", "reg0", 3), ("resubmit", 3), ("group", 2001), ("ct", True, 7701, None, 2),
            ("ct", False, 7701, 1, None), ("output", 4))
    msgs = ofmsg.to_actions(acts)
    assert isinstance(msgs[1], parser.NXActionResubmitTable) and isinstance(msgs[3], parser.NXActionCT)
    # serialise and parse back through os-ken, as a group-desc reply would carry them
    b = parser.OFPBucket(weight=1, watch_port=ofp.OFPP_ANY, watch_group=ofp.OFPG_ANY, actions=msgs)
    buf = bytearray()
    b.serialize(buf, 0)
    back = parser.OFPBucket.parser(bytes(buf), 0)
    assert ofmsg.from_actions(back.actions) == acts


def test_flow_mod_carries_table_and_ct_mark_match(cfg):
    dp = FakeDatapath()
    flows = switch_state(cfg, "pfc0", {"web": {"eu": 64}}).flows
    tables = set()
    for flow in flows:
        m = ofmsg.flow_mod(dp, flow)
        m.serialize()
        tables.add(m.table_id)
    assert tables == {0, 1, 2, 3}


def test_flow_mods_serialise(cfg):
    dp = FakeDatapath()
    for sw in ("pfc0", "pfr1"):
        for flow in switch_state(cfg, sw, {"web": {"eu": 64}}).flows:
            m = ofmsg.flow_mod(dp, flow)
            m.serialize()
            assert m.cookie == ofmsg.COOKIE and len(m.buf) > 0


def test_meter_mod_parses_back(cfg):
    from pfepo.openflow.desired import meter_for

    m = meter_for(20.0, 1)
    mod = ofmsg.meter_mod(FakeDatapath(), m, "add")
    mod.serialize()
    stats = [parser.OFPMeterConfigStats(flags=mod.flags, meter_id=mod.meter_id, bands=mod.bands)]
    assert ofmsg.parse_meter_config(stats) == {1: m}


def _roundtrip_flow_stats(flow_mod):
    """What OVS reports for a flow we added: the FlowMod serialised and parsed back as FlowStats."""
    flow_mod.serialize()
    match = parser.OFPMatch.parser(bytes(flow_mod.buf), 48)  # ofp_header 8 + flow_mod fixed part 40
    insts = []
    for inst in flow_mod.instructions:
        buf = bytearray()
        inst.serialize(buf, 0)
        insts.append(type(inst).parser(bytes(buf), 0))
    return parser.OFPFlowStats(table_id=flow_mod.table_id, priority=flow_mod.priority, cookie=flow_mod.cookie,
                               match=match, instructions=insts)


def test_flow_read_back_matches_desired_flows(cfg):
    from pfepo.openflow.desired import meter_for
    from pfepo.openflow.reconcile import flow_changes

    dp = FakeDatapath()
    for sw in ("pfc0", "pfr1"):
        want = switch_state(cfg, sw, {"web": {"eu": 64}}, {"web": {"eu": 20.0}}).flows
        stats = [_roundtrip_flow_stats(ofmsg.flow_mod(dp, f)) for f in want]
        have = ofmsg.parse_flow_stats(stats)
        assert flow_changes(want, have) == [], sw
        assert not [a for f in have for a in f.actions if a[0] == "other"]  # compared, not trusted
        assert any(f.meter == 1 for f in have) == (sw == "pfr1") and any(f.group for f in have)
    assert meter_for(20.0, 1).rate_kbps == 20000


def test_every_plain_message_translates(cfg):
    from pfepo.openflow.desired import meter_for
    from pfepo.openflow.messages import EchoRequest, FlowMod, GroupMod, MeterMod, PacketOut, StatsRequest

    dp = FakeDatapath()
    st = switch_state(cfg, "pfc0", {"web": {"eu": 64}})
    msgs = [FlowMod(st.flows[0]), FlowMod(st.flows[1], "delete_strict"), GroupMod(st.groups[1], "modify"),
            MeterMod(meter_for(5, 1), "add"), EchoRequest(b"12345678"), PacketOut(3, b"\0" * 60),
            *(StatsRequest(k) for k in ("port_desc", "port_stats", "meter_config", "group_desc", "flow_stats"))]
    for m in msgs:
        out = ofmsg.to_osken(dp, m)
        out.serialize()
        assert len(out.buf) >= 8
    delete = ofmsg.to_osken(dp, msgs[1])
    assert delete.command == ofp.OFPFC_DELETE_STRICT and delete.cookie_mask == 2**64 - 1
    flows_req = ofmsg.to_osken(dp, StatsRequest("flow_stats"))
    assert flows_req.cookie == ofmsg.COOKIE and flows_req.cookie_mask == 2**64 - 1


def _raw_reply(mp_type: int, entries: bytes, more: bool = False) -> bytes:
    from pfepo_lab.bench._fakeswitches import _MP_REPLY, _msg

    flags = ofp.OFPMPF_REPLY_MORE if more else 0
    return _msg(ofp.OFPT_MULTIPART_REPLY, 9, _MP_REPLY.pack(mp_type, flags) + entries)


def _parse(raw: bytes):
    from types import SimpleNamespace

    from os_ken.ofproto import ofproto_parser

    from pfepo_lab.bench._fakeswitches import HEADER

    dp = SimpleNamespace(ofproto=ofp, ofproto_parser=parser, id=1)
    version, mtype, length, xid = HEADER.unpack_from(raw)
    return ofproto_parser.msg(dp, version, mtype, length, xid, bytearray(raw))


def test_port_stats_parse_into_one_array_with_os_kens_fields_and_values(monkeypatch):
    import struct

    import numpy as np

    entries = b"".join(struct.pack(ofp.OFP_PORT_STATS_PACK_STR, p, 10 * p, 20 * p, 2**63 + p, 2**40 + p, 1, 2, 3, 4,
                                   5, 6, 7, 8, 100 + p % 1000, 9) for p in (1, 2, ofp.OFPP_LOCAL))
    current = parser._MSG_PARSERS[ofp.OFPT_MULTIPART_REPLY]  # an app made earlier may have installed it
    monkeypatch.setitem(parser._MSG_PARSERS, ofp.OFPT_MULTIPART_REPLY, getattr(current, "pfepo_orig", current))
    slow = _parse(_raw_reply(ofp.OFPMP_PORT_STATS, entries, more=True))
    assert isinstance(slow.body, list)
    ofmsg.install_fast_port_stats()
    ofmsg.install_fast_port_stats()  # idempotent
    fast = _parse(_raw_reply(ofp.OFPMP_PORT_STATS, entries, more=True))
    assert type(fast) is type(slow) is parser.OFPPortStatsReply and not ofmsg.is_last_part(fast)
    assert isinstance(fast.body, np.ndarray) and len(fast.body) == 3
    for obj, row in zip(slow.body, fast.body, strict=True):
        for name in ofmsg.PORT_STATS_DTYPE.names:
            if name != "pad":
                assert int(row[name]) == getattr(obj, name), name
    # parts join into one array; other multipart types and odd bodies still go to os-ken's parser
    joined = ofmsg.join_parts([fast.body, fast.body[:1]])
    assert isinstance(joined, np.ndarray) and joined["port_no"].tolist() == [1, 2, ofp.OFPP_LOCAL, 1]
    assert ofmsg.join_parts([[1, 2], [3]]) == [1, 2, 3]
    assert isinstance(_parse(_raw_reply(ofp.OFPMP_METER_CONFIG, b"")).body, list)
    odd = _parse(_raw_reply(ofp.OFPMP_PORT_STATS, entries[:-8]))  # not whole entries: os-ken's parser decides
    assert odd is None or not isinstance(odd.body, np.ndarray)
