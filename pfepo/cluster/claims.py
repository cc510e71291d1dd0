"""Loop-free, capacity-aware shift claims: pure rule (this module) + atomic etcd transaction (etcd.py).

A claim "service S shifts ``mbps`` from region A toward B" is an edge A->B in S's claim graph. It may be
made only if (1) A != B, (2) B does not already reach A in S's graph (B draining S toward A, or toward
anywhere that leads back to A): the graph stays acyclic, so two degraded regions never send S's traffic
back and forth; and (3) B has the headroom: its declared capacity minus what every claim toward B already
reserves (all services share a region's capacity) covers ``mbps``. Capacity is reserved, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    service: str
    src: str
    dst: str
    mbps: float
    owner: str = ""  # controller id that made it (its lease holds the claim)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Each controller holds its own claim per edge (two controllers may shift the same way)."""
        return (self.service, self.src, self.dst, self.owner)


def reaches(claims: Iterable[Claim], service: str, start: str, goal: str) -> bool:
    """True when ``goal`` is reachable from ``start`` along ``service``'s claim edges."""
    edges: dict[str, set[str]] = {}
    for c in claims:
        if c.service == service:
            edges.setdefault(c.src, set()).add(c.dst)
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        for nxt in edges.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def reserved_toward(claims: Iterable[Claim], region: str, ignore: tuple[str, ...] | None = None) -> float:
    return sum(c.mbps for c in claims if c.dst == region and c.key != ignore)


def refusal(claims: Iterable[Claim], new: Claim, capacity_mbps: Mapping[str, float]) -> str | None:
    """Why ``new`` may not be claimed given the current ``claims`` (None: it may). A claim with the same
    (service, src, dst, owner) is replaced by ``new``, so re-claiming with another amount is allowed."""
    claims = [c for c in claims if c.key != new.key]
    if new.src == new.dst:
        return f"{new.service}: a shift from {new.src} to itself"
    if not new.mbps > 0:
        return f"{new.service}: a shift must reserve more than 0 Mbit/s (got {new.mbps})"
    if new.dst not in capacity_mbps:
        return f"{new.service}: region {new.dst!r} declares no capacity"
    if reaches(claims, new.service, new.dst, new.src):
        return f"{new.service}: {new.dst} already shifts toward {new.src} (directly or via other regions): a loop"
    free = capacity_mbps[new.dst] - reserved_toward(claims, new.dst)
    if new.mbps > free + 1e-9:
        return f"{new.service}: {new.dst} has {free:g} Mbit/s headroom, {new.mbps:g} requested"
    return None


def is_acyclic(claims: Iterable[Claim]) -> bool:
    """Every service's claim graph is free of cycles (the invariant ``refusal`` keeps)."""
    claims = list(claims)
    return not any(reaches([c for c in claims if c is not e], e.service, e.dst, e.src) for e in claims)
