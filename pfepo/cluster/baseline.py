"""The operator's baseline weights (overrides) shared through etcd, with revisions.

An override accepted by one controller's REST API (``PUT /api/v1/services/NAME/weights``, validated and
persisted locally as always) is written to the ``baseline`` document in one compare-and-set on the
revision this controller last saw; every other controller adopts each new revision through
``ControllerState.set_baseline(..., source="cluster")`` (validated and persisted there too, so it
survives a restart without etcd). Two operators racing on two controllers: the first write wins, the
other controller adopts it (its own override is logged as superseded). While etcd is unreachable a local
override is applied locally and pushed when etcd is back, unless a newer revision arrived meanwhile.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("pfepo.cluster")
DOC = "baseline"


def _rounded(weights: dict) -> dict:
    return {r: round(float(w), 9) for r, w in sorted(weights.items())}


class BaselineSync:
    def __init__(self, coord, state, wake=lambda: None):
        self.coord = coord
        self.state = state
        self.wake = wake  # asks the agent's thread to sync soon
        self.revision = 0  # last revision adopted or written
        self._synced: dict[str, dict] = {}  # service -> weights as in that revision
        self._dirty = threading.Event()
        self._lock = threading.Lock()
        state.add_listener(self._changed)

    def _local(self) -> dict[str, dict]:
        return {svc: _rounded(w) for svc, w in self.state.baseline_snapshot().items()}

    def _changed(self) -> None:
        """State listener (any thread): only note it; the agent's thread talks to etcd."""
        if self._local() != self._synced:
            self._dirty.set()
            self.wake()

    def sync(self) -> int:
        """Adopt a newer revision, else push our local override. Raises the coordinator's errors."""
        with self._lock:
            got = self.coord.get_doc(DOC)
            if got is not None and got[0] > self.revision:
                rev, doc = got
                theirs = {svc: _rounded(d["weights"]) for svc, d in doc.get("services", {}).items()}
                for svc, w in theirs.items():
                    if svc in self._local() and self._local()[svc] != w:
                        self.state.set_baseline(svc, w, source="cluster")
                        log.info("baseline of %s from cluster revision %d: %s", svc, rev, w)
                self.revision, self._synced = rev, {**self._local(), **theirs}
                self._dirty.clear()
                return rev
            local = self._local()
            if got is None or self._dirty.is_set() and local != self._synced:
                sources = dict(getattr(self.state, "baseline_source", {}))
                doc = {"services": {svc: {"weights": w, "source": sources.get(svc, "operator")}
                                    for svc, w in local.items()}}
                rev = self.coord.put_doc(DOC, doc, got[0] if got else 0)
                if rev is None:  # someone wrote first: adopt theirs on the next sync
                    log.warning("baseline: a newer cluster revision superseded our local override")
                    return self.revision
                self.revision, self._synced = rev, local
                self._dirty.clear()
                log.info("baseline revision %d written", rev)
            return self.revision
