"""Translate the pure desired state (desired.py) to os-ken OpenFlow 1.3 messages and back.

Kept apart from app.py so message building can be unit-tested without a switch.
"""

from __future__ import annotations

from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

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
        dp, cookie=COOKIE, command=ofp.OFPFC_ADD, priority=flow.priority, table_id=flow.table,
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
