"""The operator's baseline weights (overrides) shared through etcd, with revisions.

An override accepted by one controller's REST API (``PUT /api/v1/services/NAME/weights``, validated and
persisted locally as always) is written to the ``baseline`` document in one compare-and-set on the
revision this controller last saw; every other controller adopts each new revision through
``ControllerState.set_baseline(..., source="cluster")`` (validated and persisted there too, so it
survives a restart without etcd). Merge rule: the whole document; two operators racing on two
controllers: the first write wins, the other controller adopts it (its own override is superseded). While
etcd is unreachable a local override is applied locally and pushed when etcd is back, unless a newer
revision arrived meanwhile. The first controller to sync seeds the document from its configuration.
"""

from __future__ import annotations

import logging
import threading

from pfepo.cluster.docsync import DocSync

log = logging.getLogger("pfepo.cluster")


def _rounded(weights: dict) -> dict:
    return {r: round(float(w), 9) for r, w in sorted(weights.items())}


class BaselineSync(DocSync):
    name = "baseline"
    on_conflict = "ours is superseded by theirs"

    def __init__(self, coord, state, wake=lambda: None):
        self._dirty = threading.Event()  # a local change since the last revision adopted or written
        super().__init__(coord, state, wake)

    def _local(self) -> dict[str, dict]:
        return {svc: _rounded(w) for svc, w in self.state.baseline_snapshot().items()}

    def _pending(self) -> bool:
        if self._local() != self._synced:
            self._dirty.set()
            return True
        return False

    def _adopt(self, revision: int, doc: dict) -> None:
        theirs = {svc: _rounded(d["weights"]) for svc, d in doc.get("services", {}).items()}
        for svc, w in theirs.items():
            local = self._local()
            if svc in local and local[svc] != w:
                self.state.set_baseline(svc, w, source="cluster")
                log.info("baseline of %s from cluster revision %d: %s", svc, revision, w)
        self._synced = {**self._local(), **theirs}
        self._dirty.clear()  # a local override made before this revision is superseded by it

    def _outgoing(self, absent: bool) -> tuple[dict, dict] | None:
        local = self._local()
        if not absent and not (self._dirty.is_set() and local != self._synced):
            return None
        sources = dict(getattr(self.state, "baseline_source", {}))
        return {"services": {svc: {"weights": w, "source": sources.get(svc, "operator")}
                             for svc, w in local.items()}}, local

    def _written(self) -> None:
        self._dirty.clear()
