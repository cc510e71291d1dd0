"""Which controller should be MASTER of each switch: pure (members, switches, regions in; owners out).

Rule: a switch belongs to a region (the region's own switch, or a client-side switch whose uplinks all
lead to one region). Its owner is a live controller of that region (the lowest id, so every controller
computes the same answer); when that region has no live controller, or the switch belongs to no single
region, a live peer chosen by rendezvous hashing on (switch, controller id): stable, spread evenly, and
only the switches of a departed controller move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """A live controller as registered in etcd (its key exists only while its lease lives)."""

    id: str
    region: str | None = None


def _score(switch: str, member: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{switch}\0{member}".encode(), digest_size=8).digest(), "big")


def preferred_owner(switch: str, region: str | None, members: Iterable[Member]) -> str | None:
    """The controller that should own ``switch`` (None when no controller is live)."""
    live = sorted({m.id: m for m in members}.values(), key=lambda m: m.id)
    if not live:
        return None
    local = [m.id for m in live if region is not None and m.region == region]
    if local:
        return local[0]
    return max(live, key=lambda m: _score(switch, m.id)).id


def desired_owners(switch_regions: Mapping[str, str | None], members: Iterable[Member]) -> dict[str, str | None]:
    """Owner per switch name for the given live members."""
    live = list(members)
    return {sw: preferred_owner(sw, region, live) for sw, region in switch_regions.items()}


def switch_regions(cfg) -> dict[str, str | None]:
    """Region of each configured switch (None: shared by several regions, or by none);
    ``cluster.switch_regions`` names it explicitly (e.g. each region's own client-side switch)."""
    explicit = cfg.cluster.switch_regions if getattr(cfg, "cluster", None) is not None else {}
    out: dict[str, str | None] = {}
    for sw in cfg.switches:
        own = [r.name for r in cfg.regions if r.switch == sw.name]
        uplinked = {r.name for r in cfg.regions if r.uplink.switch == sw.name}
        if sw.name in explicit:
            out[sw.name] = explicit[sw.name]
        elif own:
            out[sw.name] = own[0]
        elif len(uplinked) == 1:
            out[sw.name] = next(iter(uplinked))
        else:
            out[sw.name] = None
    return out
