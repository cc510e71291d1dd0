"""A revisioned etcd document mirrored into ControllerState: the sync loop the shared documents have in common.

Each ``sync()`` (from the agent's thread: at every step and when etcd or the state changed) reads the
document; a revision newer than the last one seen is adopted into the local state; then what the local
state holds that the cluster lacks is written in one compare-and-set on the revision just read. When
another controller wrote first, nothing is written: the agent is woken and the next sync adopts theirs
(and, depending on the merge rule, writes ours on top). While etcd is unreachable the local state
changes as always and is written when etcd is back. What differs per document is the merge rule: the
subclass's ``_adopt`` (theirs into the state) and ``_outgoing`` (what to write, if anything).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

log = logging.getLogger("pfepo.cluster")


class DocSync:
    name: ClassVar[str]  # the document's key under the cluster root
    on_conflict: ClassVar[str]  # what happens to ours when another controller wrote first (for the log)

    def __init__(self, coord, state, wake: Callable[[], None] = lambda: None):
        self.coord = coord
        self.state = state
        self.wake = wake  # asks the agent's thread to sync soon
        self.revision = 0  # last revision adopted or written
        self._synced: Any = {}  # the document's content as of that revision (the subclass's form)
        self._lock = threading.Lock()
        state.add_listener(self._changed)

    # --- the merge rule (per subclass) ----------------------------------------------------------------
    def _adopt(self, revision: int, doc: dict) -> None:
        """Apply ``doc`` (newer than ours) to the local state and set ``_synced`` to it."""
        raise NotImplementedError

    def _outgoing(self, absent: bool) -> tuple[dict, Any] | None:
        """(document to write, ``_synced`` once written), or None when the cluster holds everything of
        ours. ``absent``: etcd holds no such document yet."""
        raise NotImplementedError

    def _pending(self) -> bool:
        """State listener's question (any thread): does the local state hold something to write?"""
        raise NotImplementedError

    # --- the loop -------------------------------------------------------------------------------------
    def _changed(self) -> None:
        """State listener (any thread): only note it; the agent's thread talks to etcd."""
        if self._pending():
            self.wake()

    def sync(self) -> int:
        """Adopt a newer revision, then write what we hold that it lacks. Returns the revision now in
        force here. Raises the coordinator's errors (etcd unreachable)."""
        with self._lock:
            got = self.coord.get_doc(self.name)
            if got is not None and got[0] > self.revision:
                self.revision = got[0]
                self._adopt(*got)
            out = self._outgoing(got is None)
            if out is None:
                return self.revision
            doc, synced = out
            rev = self.coord.put_doc(self.name, doc, got[0] if got is not None else 0)
            if rev is None:
                log.info("%s: a newer cluster revision was written first; %s", self.name, self.on_conflict)
                self.wake()
                return self.revision
            self.revision, self._synced = rev, synced
            self._written()
            log.info("%s revision %d written", self.name, rev)
            return rev

    def _written(self) -> None:
        """Hook after our write succeeded."""
