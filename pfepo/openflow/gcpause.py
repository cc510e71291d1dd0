"""Garbage-collector pauses: measured, and kept short, because a pause stops every thread.

A full (generation 2) collection walks every tracked object of the process. In the daemon most of them
are long-lived and never garbage (modules, the config, the model, os-ken's tables), and a walk of them
held the GIL for tens of ms: any PortStatus arriving meanwhile waited that long. ``install`` freezes what
exists once the daemon is set up (``gc.freeze``: never scanned again) and times every collection.
"""

from __future__ import annotations

import collections
import gc
import threading
import time

_lock = threading.Lock()
_installed: GcPauses | None = None


class GcPauses:
    """``gc.callbacks`` hook: the duration of the last 100 collections, per generation."""

    def __init__(self) -> None:
        self._started = 0.0
        self.recent: dict[int, collections.deque[float]] = {g: collections.deque(maxlen=100) for g in (0, 1, 2)}
        self.frozen = 0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.recent[info.get("generation", 2)].append(time.perf_counter() - self._started)

    def stats(self) -> dict[int, tuple[int, float]]:
        """generation -> (collections seen, longest pause s) over the last 100 of that generation."""
        return {g: (len(d), max(d, default=0.0)) for g, d in self.recent.items()}


def install() -> GcPauses:
    """Freeze the objects alive now and time every collection from here on (once per process)."""
    global _installed
    with _lock:
        if _installed is None:
            gc.collect()
            gc.freeze()
            _installed = GcPauses()
            _installed.frozen = gc.get_freeze_count()
            gc.callbacks.append(_installed)
        return _installed
