"""Operator bandwidth overrides shared through etcd, with revisions (like the baseline weights).

``PUT /api/v1/services/NAME/bandwidth`` on any controller (validated and persisted locally as always) is
written to the ``bandwidth`` document: ``{"services": {service: {region: Mbit/s or null}}}``, only what
operators set (the planner's temporary raises stay local: each controller's planner makes its own, and
only a region switch's MASTER applies its meters). Every other controller adopts each new revision
through ``ControllerState.set_bandwidth(..., source="cluster")`` (validated and persisted there too).
Merge rule: per (service, region): two operators setting different regions at once both keep theirs; on
the same region the first write wins everywhere. While etcd is unreachable an override applies locally
and is written when etcd is back, unless a newer revision set that same region meanwhile.
"""

from __future__ import annotations

import copy
import logging

from pfepo.cluster.docsync import DocSync

log = logging.getLogger("pfepo.cluster")

Table = dict[str, dict[str, float | None]]


def _merged(a: Table, b: Table) -> Table:
    out = copy.deepcopy(a)
    for svc, regions in b.items():
        out.setdefault(svc, {}).update(regions)
    return out


class BandwidthSync(DocSync):
    name = "bandwidth"
    on_conflict = "ours is merged into theirs on the next sync"

    def _local(self) -> Table:
        with self.state._lock:
            return copy.deepcopy(self.state.bandwidth_overrides)

    def _unshared(self) -> Table:
        """Our operator overrides the cluster's document does not hold (or holds with another value)."""
        out: Table = {}
        for svc, regions in self._local().items():
            diff = {r: v for r, v in regions.items() if self._synced.get(svc, {}).get(r, "absent") != v}
            if diff:
                out[svc] = diff
        return out

    def _pending(self) -> bool:
        return bool(self._unshared())

    def _adopt(self, revision: int, doc: dict) -> None:
        theirs: Table = doc.get("services", {})
        local = self._local()
        for svc, regions in theirs.items():
            if svc not in self.state.bandwidth:
                continue  # a service this controller does not know: not ours to apply
            known = {r: v for r, v in regions.items() if r in self.state.bandwidth[svc]}
            new = {r: v for r, v in known.items()
                   if local.get(svc, {}).get(r, "absent") != v or self.state.bandwidth[svc][r] != v}
            if new:
                self.state.set_bandwidth(svc, new, source="cluster")
                log.info("bandwidth of %s from cluster revision %d: %s", svc, revision, new)
        self._synced = theirs

    def _outgoing(self, absent: bool) -> tuple[dict, Table] | None:
        extra = self._unshared()
        if not extra:
            return None
        table = _merged(self._synced, extra)
        return {"services": table}, table
