"""Make a switch's groups match the desired ones: diff desired vs what GroupDescStats reported."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pfepo.openflow.desired import Group, Meter


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
