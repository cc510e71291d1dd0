"""Make a switch match the desired state: the ONE diff of desired vs what the switch reported.

Every path uses these functions: connect, every poll's read-back, and a desired-state change (then the
"have" side is the last read-back plus what was sent since). Pure: plain dataclasses in, changes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pfepo.openflow.desired import Flow, Group, Meter


@dataclass(frozen=True)
class GroupChange:
    command: str  # "add" | "modify"
    group: Group


def group_changes(desired: Mapping[int, Group], actual: Mapping[int, Group]) -> list[GroupChange]:
    """ADD groups the switch lacks, MODIFY those that differ in type, weights, watch ports or actions.

    Groups the switch has but we do not want are left alone: they may belong to another application,
    and deleting them would be a surprise to the operator.
    """
    out = []
    for gid, g in sorted(desired.items()):
        have = actual.get(gid)
        if have is None:
            out.append(GroupChange("add", g))
        elif have.kind != g.kind or have.buckets != g.buckets:
            out.append(GroupChange("modify", g))
    return out


def meter_changes(desired: Mapping[int, Meter], actual: Mapping[int, Meter]) -> list[tuple[str, Meter]]:
    """("add"|"modify", meter) for meters missing or with another rate/burst; foreign meters left alone."""
    out = []
    for mid, m in sorted(desired.items()):
        have = actual.get(mid)
        if have is None:
            out.append(("add", m))
        elif have != m:
            out.append(("modify", m))
    return out


FlowKey = tuple[int, int, frozenset]


def _norm(v: object) -> object:
    return v.lower() if isinstance(v, str) else v


def flow_key(flow: Flow) -> FlowKey:
    """What identifies a flow entry in OpenFlow: table, priority and the exact match (order-free)."""
    return (getattr(flow, "table_id", 0), flow.priority, frozenset((k, _norm(v)) for k, v in flow.match))


def _body(flow: Flow) -> tuple:
    actions = tuple(tuple(_norm(x) for x in a) for a in flow.actions)
    return actions, flow.group, flow.meter


def same_flow(want: Flow, have: Flow) -> bool:
    """Equal instructions; a read-back action we cannot parse ("other") is trusted, not re-sent forever."""
    if any(a and a[0] == "other" for a in have.actions):
        return True
    return _body(want) == _body(have)


def flows_by_key(flows: Iterable[Flow]) -> dict[FlowKey, Flow]:
    return {flow_key(f): f for f in flows}


def flow_changes(desired: Iterable[Flow], actual: Iterable[Flow]) -> list[tuple[str, Flow]]:
    """("add", flow) for flows missing or different (an ADD replaces in place), ("delete_strict", flow)
    for flows with our cookie that are no longer desired. ``actual`` holds only our cookie's flows."""
    want = flows_by_key(desired)
    have = flows_by_key(actual)
    out: list[tuple[str, Flow]] = []
    for key, f in want.items():
        h = have.get(key)
        if h is None or not same_flow(f, h):
            out.append(("add", f))
    out.extend(("delete_strict", h) for key, h in have.items() if key not in want)
    return out
