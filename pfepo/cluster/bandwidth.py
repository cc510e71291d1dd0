"""Operator bandwidth overrides shared through etcd, with revisions (like the baseline weights).

``PUT /api/v1/services/NAME/bandwidth`` on any controller (validated and persisted locally as always) is
written to the ``bandwidth`` document: ``{"services": {service: {region: Mbit/s or null}}}``, only what
operators set (the planner's temporary raises stay local: each controller's planner makes its own, and
only a region switch's MASTER applies its meters). Every other controller adopts each new revision
through ``ControllerState.set_bandwidth(..., source="cluster")`` (validated and persisted there too).
Writes are a compare-and-set on the revision last seen and merge per (service, region): two operators
setting different regions at once both keep theirs; on the same region the first write wins everywhere.
While etcd is unreachable an override applies locally and is written when etcd is back, unless a newer
revision set that same region meanwhile.
"""

from __future__ import annotations

import copy
import logging
import threading

log = logging.getLogger("pfepo.cluster")
DOC = "bandwidth"

Table = dict[str, dict[str, float | None]]


def _merged(a: Table, b: Table) -> Table:
    out = copy.deepcopy(a)
    for svc, regions in b.items():
        out.setdefault(svc, {}).update(regions)
    return out


class BandwidthSync:
    def __init__(self, coord, state, wake=lambda: None):
        self.coord = coord
        self.state = state
        self.wake = wake  # asks the agent's thread to sync soon
        self.revision = 0  # last revision adopted or written
        self._synced: Table = {}  # the document as of that revision
        self._lock = threading.Lock()
        state.add_listener(self._changed)

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

    def _changed(self) -> None:
        """State listener (any thread): only note it; the agent's thread talks to etcd."""
        if self._unshared():
            self.wake()

    def sync(self) -> int:
        """Adopt a newer revision, then write what we set that it lacks. Raises the coordinator's errors."""
        with self._lock:
            got = self.coord.get_doc(DOC)
            if got is not None and got[0] > self.revision:
                rev, doc = got
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
                        log.info("bandwidth of %s from cluster revision %d: %s", svc, rev, new)
                self.revision, self._synced = rev, theirs
            extra = self._unshared()
            if extra:
                rev = self.coord.put_doc(DOC, {"services": _merged(self._synced, extra)}, self.revision)
                if rev is None:  # someone wrote first: adopt theirs (and merge ours) on the next sync
                    log.info("bandwidth: a newer cluster revision arrived first; merging on the next sync")
                    self.wake()
                    return self.revision
                self.revision, self._synced = rev, _merged(self._synced, extra)
                log.info("bandwidth revision %d written", rev)
            return self.revision
