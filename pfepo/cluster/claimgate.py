"""The planner's ShiftGate in a cluster: a planned shift A->B grows only through an etcd claim.

``allow`` is called by the decision loop's planner before a planned shift grows (an emergency failover
never asks). It reserves ``slots / weight_slots`` of the service's demand toward B with
``EtcdCoordinator.claim`` (one transaction, the loop and capacity rule of claims.py). A claim we already
hold at that size or more is enough: while etcd is unreachable existing shifts stay (last good state) and
no shift grows. ``settle`` (the agent's step, every lease_ttl/3) makes our claims in etcd equal to the
planner's current edges: claims of finished shifts released, smaller ones shrunk, and shifts made without
a claim (an emergency failover, or while etcd was away, or a lost lease) claimed again when possible.
Only a controller that is MASTER of one of the service's client-side switches claims: its weights are the
ones in force there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from pfepo.cluster.claims import Claim
from pfepo.cluster.etcd import EtcdError

log = logging.getLogger("pfepo.cluster")

Key = tuple[str, str, str]  # (service, src, dst)


def capacities(cfg) -> dict[str, float]:
    """Declared headroom per region for other regions' shifts (cluster.capacity_mbps, else the uplink's)."""
    declared = cfg.cluster.capacity_mbps if cfg.cluster is not None else {}
    return {r.name: float(declared.get(r.name, r.uplink.capacity_mbps)) for r in cfg.regions}


def demand_mbps(cfg, service: str, src: str) -> float:
    declared = cfg.cluster.demand_mbps if cfg.cluster is not None else {}
    if service in declared:
        return float(declared[service])
    return float(cfg.region(src).uplink.capacity_mbps)


class ClaimGate:
    def __init__(self, cfg, coord, etcd_ok: Callable[[], bool], active: Callable[[str], bool]):
        self.cfg = cfg
        self.coord = coord
        self.etcd_ok = etcd_ok
        self.active = active  # service -> do our weights apply on one of its client-side switches
        self.slots = int(cfg.openflow.weight_slots)
        self.capacity = capacities(cfg)
        self.held: dict[Key, int] = {}  # slots we hold a claim for
        self.refused_total = 0
        self.last_refusal: str | None = None
        self._lock = threading.Lock()

    def mbps(self, service: str, src: str, slots: int) -> float:
        return round(demand_mbps(self.cfg, service, src) * slots / self.slots, 6)

    def allow(self, service: str, src: str, dst: str, slots: int) -> str | None:
        key = (service, src, dst)
        with self._lock:
            if self.held.get(key, 0) >= slots or not self.active(service):
                return None
        if not self.etcd_ok():
            return self._refused(f"{service}: etcd unreachable: no new cross-region claim ({src} -> {dst})")
        try:
            why = self.coord.claim(Claim(service, src, dst, self.mbps(service, src, slots)), self.capacity)
        except EtcdError as exc:
            return self._refused(f"{service}: etcd error, no new cross-region claim ({src} -> {dst}): {exc}")
        if why is not None:
            return self._refused(why)
        with self._lock:
            self.held[key] = slots
        log.info("claim %s %s -> %s: %d slot(s), %g Mbit/s", service, src, dst, slots, self.mbps(service, src, slots))
        return None

    def _refused(self, why: str) -> str:
        with self._lock:
            self.refused_total += 1
            self.last_refusal = why
        log.info("shift refused: %s", why)
        return why

    def settle(self, shifts: Mapping[str, Mapping[tuple[str, str], int]]) -> None:
        """Make etcd hold exactly our current edges (raises EtcdError when etcd is unreachable)."""
        want = {(svc, s, d): n for svc, edges in shifts.items() if self.active(svc) for (s, d), n in edges.items()}
        me = self.coord.member_id
        have = {(c.service, c.src, c.dst): c for c in self.coord.claims() if c.owner == me}
        for key in have:
            if key not in want:
                self.coord.release(*key)
        for key, n in want.items():
            mbps = self.mbps(key[0], key[1], n)
            c = have.get(key)
            if c is not None and abs(c.mbps - mbps) < 1e-6:
                continue
            why = self.coord.claim(Claim(key[0], key[1], key[2], mbps), self.capacity)
            if why is not None and (c is None or mbps > c.mbps):
                self._refused(f"shift in force without a claim: {why}")
                n = 0 if c is None else round(c.mbps / max(1e-9, demand_mbps(self.cfg, key[0], key[1])) * self.slots)
            want[key] = n
        with self._lock:
            self.held = {k: n for k, n in want.items() if n > 0}

    def status(self) -> dict:
        with self._lock:
            return {"held": [{"service": s, "src": a, "dst": b, "slots": n, "mbps": self.mbps(s, a, n)}
                             for (s, a, b), n in sorted(self.held.items())],
                    "refused_total": self.refused_total, "last_refusal": self.last_refusal}
