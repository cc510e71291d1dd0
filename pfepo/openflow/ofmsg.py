"""Translate the pure desired state (desired.py) and messages (messages.py) to os-ken OpenFlow 1.3
messages and back: the ONE place that knows os-ken's message classes.

Kept apart from app.py so message building can be unit-tested without a switch.
"""

from __future__ import annotations

import struct

import numpy as np
from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from pfepo.openflow import messages
from pfepo.openflow.desired import CONTROLLER, NORMAL, Action, Bucket, Flow, Group, Meter

COOKIE = 0x7FE0_0000_0000_0001  # marks flows PF-EPO owns

_SPECIAL_OUT = {NORMAL: ofp.OFPP_NORMAL, CONTROLLER: ofp.OFPP_CONTROLLER}
_SPECIAL_IN = {v: k for k, v in _SPECIAL_OUT.items()}
IN_PORT_16 = 0xFFF8  # NXActionResubmitTable's in_port is 16 bits: ofp.OFPP_IN_PORT (32-bit) fails to pack
NO_RECIRC = 0xFF  # NXActionCT recirc_table: continue in the same pipeline


def to_actions(actions: tuple[Action, ...]) -> list:
    out = []
    for a in actions:
        if a[0] == "output":
            port = _SPECIAL_OUT.get(a[1], a[1])
            out.append(parser.OFPActionOutput(port, ofp.OFPCML_NO_BUFFER if port == ofp.OFPP_CONTROLLER else 0))
        elif a[0] == "set_field":
            out.append(parser.OFPActionSetField(**{a[1]: a[2]}))
        elif a[0] == "group":
            out.append(parser.OFPActionGroup(a[1]))
        elif a[0] == "resubmit":
            out.append(parser.NXActionResubmitTable(in_port=IN_PORT_16, table_id=a[1]))
        elif a[0] == "ct":
            _, commit, zone, table, mark = a
            nested = [parser.OFPActionSetField(ct_mark=mark)] if mark is not None else []
            out.append(parser.NXActionCT(
                flags=nicira_ext.NX_CT_F_COMMIT if commit else 0, zone_src="", zone_ofs_nbits=zone,
                recirc_table=NO_RECIRC if table is None else table, alg=0, actions=nested))
        else:
            raise ValueError(f"unknown action {a!r}")
    return out


def _ct_from(a) -> Action:
    """NXActionCT as read back -> our ("ct", ...) tuple (an immediate zone, optional ct_mark set)."""
    mark = None
    for inner in a.actions or []:
        if isinstance(inner, parser.OFPActionSetField) and inner.key == "ct_mark":
            mark = inner.value[0] if isinstance(inner.value, tuple) else inner.value
        else:
            return ("other", "NXActionCT")
    table = None if a.recirc_table == NO_RECIRC else a.recirc_table
    if a.zone_src not in ("", None, 0):
        return ("other", "NXActionCT")
    return ("ct", bool(a.flags & nicira_ext.NX_CT_F_COMMIT), a.zone_ofs_nbits, table, mark)


def from_actions(actions: list) -> tuple[Action, ...]:
    out: list[Action] = []
    for a in actions:
        if isinstance(a, parser.OFPActionOutput):
            out.append(("output", _SPECIAL_IN.get(a.port, a.port)))
        elif isinstance(a, parser.OFPActionSetField):
            value = a.value
            if isinstance(value, tuple):  # masked field (value, mask) as read back: keep the value
                value = value[0]
            out.append(("set_field", a.key, value.lower() if isinstance(value, str) else value))
        elif isinstance(a, parser.OFPActionGroup):
            out.append(("group", a.group_id))
        elif isinstance(a, parser.NXActionResubmitTable):
            out.append(("resubmit", a.table_id))
        elif isinstance(a, parser.NXActionCT):
            out.append(_ct_from(a))
        else:
            out.append(("other", type(a).__name__))
    return tuple(out)


def flow_mod(dp, flow: Flow):
    inst = []
    if flow.meter is not None:
        inst.append(parser.OFPInstructionMeter(flow.meter, ofp.OFPIT_METER))
    if flow.actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, to_actions(flow.actions)))
    if flow.group is not None:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionGroup(flow.group)]))
    return parser.OFPFlowMod(
        dp, cookie=COOKIE, command=ofp.OFPFC_ADD, priority=flow.priority, table_id=flow.table_id,
        match=parser.OFPMatch(**dict(flow.match)), instructions=inst,
    )


_KINDS = {ofp.OFPGT_SELECT: "select", ofp.OFPGT_ALL: "all", ofp.OFPGT_INDIRECT: "indirect", ofp.OFPGT_FF: "ff"}
_KIND_TYPES = {v: k for k, v in _KINDS.items()}


def group_mod(dp, group: Group, command: str):
    cmd = {"add": ofp.OFPGC_ADD, "modify": ofp.OFPGC_MODIFY}[command]
    buckets = [
        parser.OFPBucket(
            weight=b.weight,
            watch_port=b.watch_port if b.watch_port is not None else ofp.OFPP_ANY,
            watch_group=b.watch_group if b.watch_group is not None else ofp.OFPG_ANY,
            actions=to_actions(b.actions),
        )
        for b in group.buckets
    ]
    return parser.OFPGroupMod(dp, cmd, _KIND_TYPES[group.kind], group.group_id, buckets)


def parse_group_desc(stats: list, desired: dict[int, Group]) -> dict[int, Group]:
    """GroupDescStats body -> Groups comparable with ``desired`` (labels copied by bucket position)."""
    out = {}
    for g in stats:
        want = desired.get(g.group_id)
        labels = [b.label for b in want.buckets] if want else []
        buckets = tuple(
            Bucket(
                b.weight,
                None if b.watch_port == ofp.OFPP_ANY else b.watch_port,
                from_actions(b.actions),
                labels[i] if i < len(labels) else f"bucket{i}",
                None if b.watch_group == ofp.OFPG_ANY else b.watch_group,
            )
            for i, b in enumerate(g.buckets)
        )
        out[g.group_id] = Group(g.group_id, buckets, _KINDS.get(g.type, str(g.type)))
    return out


def meter_mod(dp, meter: Meter, command: str):
    cmd = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY}[command]
    bands = [parser.OFPMeterBandDrop(rate=meter.rate_kbps, burst_size=meter.burst_kb)]
    return parser.OFPMeterMod(dp, cmd, ofp.OFPMF_KBPS | ofp.OFPMF_BURST, meter.meter_id, bands)


def parse_meter_config(stats: list) -> dict[int, Meter]:
    """MeterConfigStats body -> Meters (first drop band; other band types are not ours)."""
    out = {}
    for m in stats:
        drop = next((b for b in m.bands if getattr(b, "type", None) == ofp.OFPMBT_DROP), None)
        if drop is not None:
            out[m.meter_id] = Meter(m.meter_id, drop.rate, drop.burst_size)
    return out


def flow_delete(dp, flow: Flow):
    """DELETE_STRICT of our flow with this table, priority and match (our cookie only)."""
    return parser.OFPFlowMod(
        dp, cookie=COOKIE, cookie_mask=0xFFFF_FFFF_FFFF_FFFF, table_id=flow.table_id,
        command=ofp.OFPFC_DELETE_STRICT, priority=flow.priority, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**dict(flow.match)),
    )


def stats_request(dp, kind: str):
    if kind == "port_desc":
        return parser.OFPPortDescStatsRequest(dp, 0)
    if kind == "port_stats":
        return parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY)
    if kind == "meter_config":
        return parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL)
    if kind == "group_desc":
        return parser.OFPGroupDescStatsRequest(dp, 0)
    if kind == "flow_stats":  # only the flows we own
        return parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, COOKIE,
                                          0xFFFF_FFFF_FFFF_FFFF, parser.OFPMatch())
    raise ValueError(f"unknown stats request {kind!r}")


def to_osken(dp, msg: messages.Message):
    """The os-ken message for one of the sync's plain messages (messages.py)."""
    if isinstance(msg, messages.FlowMod):
        return flow_mod(dp, msg.flow) if msg.command == "add" else flow_delete(dp, msg.flow)
    if isinstance(msg, messages.GroupMod):
        return group_mod(dp, msg.group, msg.command)
    if isinstance(msg, messages.MeterMod):
        return meter_mod(dp, msg.meter, msg.command)
    if isinstance(msg, messages.StatsRequest):
        return stats_request(dp, msg.kind)
    if isinstance(msg, messages.EchoRequest):
        return parser.OFPEchoRequest(dp, data=msg.data)
    if isinstance(msg, messages.PacketOut):
        return parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                   actions=[parser.OFPActionOutput(msg.port)], data=msg.data)
    raise TypeError(f"not an OpenFlow message: {msg!r}")


def parse_flow_stats(stats: list) -> list[Flow]:
    """FlowStats body -> Flows comparable with desired ones (a trailing group action becomes ``group``)."""
    out = []
    for st in stats:
        actions: list = []
        group = meter = None
        for inst in st.instructions:
            if isinstance(inst, parser.OFPInstructionMeter):
                meter = inst.meter_id
            elif isinstance(inst, parser.OFPInstructionActions) and inst.type == ofp.OFPIT_APPLY_ACTIONS:
                for a in inst.actions:
                    if isinstance(a, parser.OFPActionGroup):
                        group = a.group_id
                    else:
                        actions.extend(from_actions([a]))
            else:
                actions.append(("other", type(inst).__name__))
        out.append(Flow(st.priority, tuple(st.match.items()), tuple(actions), group, meter, table_id=st.table_id))
    return out


def port_up(desc) -> bool:
    return not (desc.state & ofp.OFPPS_LINK_DOWN) and not (desc.config & ofp.OFPPC_PORT_DOWN)


def parse_port_desc(body: list) -> list[tuple[int, bool]]:
    """PortDesc body -> (port number, up) for physical ports (not LOCAL/CONTROLLER)."""
    return [(p.port_no, port_up(p)) for p in body if p.port_no <= ofp.OFPP_MAX]


def parse_port_status(msg) -> tuple[int, bool]:
    """PortStatus -> (port number, up); a deleted port is down."""
    return msg.desc.port_no, port_up(msg.desc) and msg.reason != ofp.OFPPR_DELETE


def is_last_part(msg) -> bool:
    return not (msg.flags & ofp.OFPMPF_REPLY_MORE)


def join_parts(parts: list) -> list | np.ndarray:
    """The bodies of a multipart reply's parts as one body: one array if they were parsed as arrays."""
    if parts and all(isinstance(p, np.ndarray) for p in parts):
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    return [e for p in parts for e in p]


# --- port stats without os-ken's per-port objects -----------------------------------------------------
# ofp_port_stats (OpenFlow 1.3, 112 bytes, fixed size), field names as os-ken's OFPPortStats.
PORT_STATS_DTYPE = np.dtype([
    ("port_no", ">u4"), ("pad", "V4"), ("rx_packets", ">u8"), ("tx_packets", ">u8"), ("rx_bytes", ">u8"),
    ("tx_bytes", ">u8"), ("rx_dropped", ">u8"), ("tx_dropped", ">u8"), ("rx_errors", ">u8"),
    ("tx_errors", ">u8"), ("rx_frame_err", ">u8"), ("rx_over_err", ">u8"), ("rx_crc_err", ">u8"),
    ("collisions", ">u8"), ("duration_sec", ">u4"), ("duration_nsec", ">u4")])
assert PORT_STATS_DTYPE.itemsize == ofp.OFP_PORT_STATS_SIZE
_MP_REPLY = struct.Struct(ofp.OFP_MULTIPART_REPLY_PACK_STR)


def install_fast_port_stats() -> None:
    """Parse OFPMP_PORT_STATS replies into one numpy structured array (``PORT_STATS_DTYPE``) on the receive
    thread, instead of os-ken's one ``OFPPortStats`` object per port (13 % of the GIL at 300 switches).

    Hooks os-ken's OpenFlow 1.3 parser table for MULTIPART_REPLY in this process; every other multipart
    type, and a port-stats body that is not whole 112-byte entries, goes to os-ken's own parser. The message
    is still an ``OFPPortStatsReply`` (same event, same ``flags``); only ``body`` is an array. Idempotent.
    """
    table = parser._MSG_PARSERS
    orig = table[ofp.OFPT_MULTIPART_REPLY]
    if getattr(orig, "pfepo_fast", False):
        return
    base_parser = parser.MsgBase.parser.__func__
    head = ofp.OFP_MULTIPART_REPLY_SIZE

    def multipart_reply(datapath, version, msg_type, msg_len, xid, buf):
        if msg_len >= head and (msg_len - head) % PORT_STATS_DTYPE.itemsize == 0:
            mp_type, flags = _MP_REPLY.unpack_from(buf, ofp.OFP_HEADER_SIZE)
            if mp_type == ofp.OFPMP_PORT_STATS:
                msg = base_parser(parser.OFPPortStatsReply, datapath, version, msg_type, msg_len, xid, buf)
                msg.type, msg.flags = mp_type, flags
                msg.body = np.frombuffer(buf, PORT_STATS_DTYPE, (msg_len - head) // PORT_STATS_DTYPE.itemsize,
                                         head)
                return msg
        return orig(datapath, version, msg_type, msg_len, xid, buf)

    multipart_reply.pfepo_fast = True
    multipart_reply.pfepo_orig = orig
    table[ofp.OFPT_MULTIPART_REPLY] = multipart_reply


# --- multi-controller roles (issue 15): additive, used by pfepo.cluster --------------------------------


def role_request(dp, msg):
    """OFPRoleRequest for a messages.RoleRequest (role name -> OFPCR_ROLE_*, generation id as given)."""
    from pfepo.openflow.messages import ROLES

    return parser.OFPRoleRequest(dp, ROLES.index(msg.role), msg.generation_id & 0xFFFF_FFFF_FFFF_FFFF)


def parse_role_reply(msg) -> tuple[str, int]:
    """OFPRoleReply -> (role name, generation id)."""
    from pfepo.openflow.messages import ROLES

    return ROLES[msg.role], msg.generation_id


def parse_role_error(msg) -> str | None:
    """The reason name of an OFPET_ROLE_REQUEST_FAILED error ("stale", "unsup", "bad_role"), None for any
    other error."""
    etype, code = error_names(msg)
    return code if etype == "role_request_failed" else None


# --- OFPT_ERROR: what a switch refused, by name -----------------------------------------------------------

# Each error type's code constants (OpenFlow 1.3, section A.4.4), by their name prefix in os-ken's ofproto.
_ERROR_CODE_PREFIX = {
    "hello_failed": "OFPHFC_", "bad_request": "OFPBRC_", "bad_action": "OFPBAC_", "bad_instruction": "OFPBIC_",
    "bad_match": "OFPBMC_", "flow_mod_failed": "OFPFMFC_", "group_mod_failed": "OFPGMFC_",
    "port_mod_failed": "OFPPMFC_", "table_mod_failed": "OFPTMFC_", "queue_op_failed": "OFPQOFC_",
    "switch_config_failed": "OFPSCFC_", "role_request_failed": "OFPRRFC_", "meter_mod_failed": "OFPMMFC_",
    "table_features_failed": "OFPTFFC_",
}


_ERROR_TYPES = {getattr(ofp, n): n[len("OFPET_"):].lower() for n in dir(ofp) if n.startswith("OFPET_")}
_ERROR_CODES = {etype: {getattr(ofp, n): n[len(p):].lower() for n in dir(ofp) if n.startswith(p)}
                for etype, p in _ERROR_CODE_PREFIX.items()}


def error_names(msg) -> tuple[str, str]:
    """(type, code) of an OFPErrorMsg as lower-case names, e.g. ("bad_request", "is_slave"); numbers for
    anything the spec does not name (an experimenter's error, a code from a newer version)."""
    etype = _ERROR_TYPES.get(msg.type, str(msg.type))
    return etype, _ERROR_CODES.get(etype, {}).get(msg.code, str(msg.code))
