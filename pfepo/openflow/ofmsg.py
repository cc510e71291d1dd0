"""Translate the pure desired state (desired.py) to os-ken OpenFlow 1.3 messages and back.

Kept apart from app.py so message building can be unit-tested without a switch.
"""

from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from pfepo.openflow.desired import CONTROLLER, NORMAL, Action, Bucket, Flow, Group, Meter

COOKIE = 0x7FE0_0000_0000_0001  # marks flows PF-EPO owns

_SPECIAL_OUT = {NORMAL: ofp.OFPP_NORMAL, CONTROLLER: ofp.OFPP_CONTROLLER}
_SPECIAL_IN = {v: k for k, v in _SPECIAL_OUT.items()}


def to_actions(actions: tuple[Action, ...]) -> list:
    out = []
    for a in actions:
        if a[0] == "output":
            port = _SPECIAL_OUT.get(a[1], a[1])
            out.append(parser.OFPActionOutput(port, ofp.OFPCML_NO_BUFFER if port == ofp.OFPP_CONTROLLER else 0))
        elif a[0] == "set_field":
            out.append(parser.OFPActionSetField(**{a[1]: a[2]}))
        else:
            raise ValueError(f"unknown action {a!r}")
    return out


def from_actions(actions: list) -> tuple[Action, ...]:
    out: list[Action] = []
    for a in actions:
        if isinstance(a, parser.OFPActionOutput):
            out.append(("output", _SPECIAL_IN.get(a.port, a.port)))
        elif isinstance(a, parser.OFPActionSetField):
            value = a.value
            out.append(("set_field", a.key, value.lower() if isinstance(value, str) else value))
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
        dp, cookie=COOKIE, command=ofp.OFPFC_ADD, priority=flow.priority,
        match=parser.OFPMatch(**dict(flow.match)), instructions=inst,
    )


def group_mod(dp, group: Group, command: str):
    cmd = {"add": ofp.OFPGC_ADD, "modify": ofp.OFPGC_MODIFY}[command]
    buckets = [
        parser.OFPBucket(
            weight=b.weight,
            watch_port=b.watch_port if b.watch_port is not None else ofp.OFPP_ANY,
            actions=to_actions(b.actions),
        )
        for b in group.buckets
    ]
    return parser.OFPGroupMod(dp, cmd, ofp.OFPGT_SELECT, group.group_id, buckets)


def parse_group_desc(stats: list, desired: dict[int, Group]) -> dict[int, Group]:
    """GroupDescStats body -> Groups comparable with ``desired`` (labels copied by bucket position)."""
    kinds = {ofp.OFPGT_SELECT: "select", ofp.OFPGT_ALL: "all", ofp.OFPGT_INDIRECT: "indirect", ofp.OFPGT_FF: "ff"}
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
            )
            for i, b in enumerate(g.buckets)
        )
        out[g.group_id] = Group(g.group_id, buckets, kinds.get(g.type, str(g.type)))
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
