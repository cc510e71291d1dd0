"""Which cross-region shifts a set of weights amounts to, and the gate a shift must pass (claims).

A service's weights below baseline in region A and above baseline in region B mean A's traffic now goes to
B: an edge A->B. ``shift_edges`` derives every edge from (baseline, weights) alone, with each deficit
split over the surpluses in proportion (rounded to slots), so the edges toward a region add up to its
surplus (exactly with up to 3 regions) and a restart rebuilds the same edges. A region is never both
below and above baseline, so one controller's edges never form a cycle; cycles between controllers are
what the claims in etcd refuse (pfepo.cluster.claims).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

Edges = dict[tuple[str, str], int]


def shift_edges(baseline: Mapping[str, int], weights: Mapping[str, int]) -> Edges:
    """(src, dst) -> slots of src's baseline share now served by dst (integers; every edge >= 1)."""
    deficit = {r: baseline[r] - weights.get(r, 0) for r in baseline if weights.get(r, 0) < baseline[r]}
    surplus = {r: w - baseline.get(r, 0) for r, w in weights.items() if w > baseline.get(r, 0)}
    total = sum(surplus.values())
    out: Edges = {}
    if not total:
        return out
    for src, d in sorted(deficit.items()):
        left = d
        dsts = sorted(surplus)
        for i, dst in enumerate(dsts):
            n = left if i == len(dsts) - 1 else min(left, round(d * surplus[dst] / total))
            left -= n
            if n > 0:
                out[(src, dst)] = n
    return out


class ShiftGate(Protocol):
    """Asked before a planned (not emergency) shift grows: may ``service`` move ``slots`` of ``src``'s
    share to ``dst``? None: yes (reserved); else the reason it may not. In a cluster it is an etcd claim."""

    def allow(self, service: str, src: str, dst: str, slots: int) -> str | None: ...
