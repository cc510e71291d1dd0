"""Garbage-collector pauses: measured, and kept short, because a pause stops every thread.

A full (generation 2) collection walks every tracked object of the process while holding the GIL: any
PortStatus arriving meanwhile waits that long. ``install`` times every collection, for /metrics.

``freeze_startup`` (the daemon calls it once the OpenFlow app runs) moves what start-up left alive out of
the collector's reach: modules, the model, the config, about 200k objects. A full collection of those took
290-330 ms on the loaded bench machine (16:20 UTC, niced, load 7); after the freeze a full collection
walks only what was made since. An earlier freeze at app start made no difference at 1,000 switches
while 2,000 os-ken threads stretched every pause (docs/scale.md); with one I/O thread (ioloop.py) it
does. Not done in unit tests: frozen objects are invisible to ``gc.get_referrers``.

``Refreezer`` does it again once the switches have connected: what a switch's connection leaves alive
(os-ken's datapath, its sync, per-port state) is made after start-up, and at 1,000 switches a full
collection still walked it for 140 ms (22:32 UTC, niced, load 6). Frozen once the connect wave has been
quiet for ``quiet_s``; a later wave (reconnects, new switches) is frozen again the same way.
"""

from __future__ import annotations

import collections
import gc
import threading
import time

_lock = threading.Lock()
_installed: GcPauses | None = None
_startup_frozen = False


class GcPauses:
    """``gc.callbacks`` hook: the duration of the last 100 collections, per generation."""

    def __init__(self) -> None:
        self._started = 0.0
        self.recent: dict[int, collections.deque[float]] = {g: collections.deque(maxlen=100) for g in (0, 1, 2)}

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.recent[info.get("generation", 2)].append(time.perf_counter() - self._started)

    def stats(self) -> dict[int, tuple[int, float]]:
        """generation -> (collections seen, longest pause s) over the last 100 of that generation."""
        return {g: (len(d), max(d, default=0.0)) for g, d in self.recent.items()}


def install() -> GcPauses:
    """Time every collection from here on (once per process)."""
    global _installed
    with _lock:
        if _installed is None:
            _installed = GcPauses()
            gc.callbacks.append(_installed)
        return _installed


def freeze_startup() -> int:
    """Collect once, then exempt every object alive now from later collections; returns how many."""
    global _startup_frozen
    _startup_frozen = True
    gc.collect()
    gc.freeze()
    if _installed is not None:  # that collection walked everything once, at start: not a steady-state pause
        for d in _installed.recent.values():
            d.clear()
    return gc.get_freeze_count()


class Refreezer:
    """Freeze again what a wave of switch connections left alive, once the wave has been quiet for
    ``quiet_s`` (pure timing; the caller passes the clock). Only in a process that froze at start-up
    (the daemon): unit tests keep every object visible to ``gc.get_referrers``."""

    def __init__(self, quiet_s: float = 10.0, freeze=None):
        self.quiet_s = quiet_s
        self._freeze = freeze or _refreeze
        self._wave_at: float | None = None  # last connection of a wave not yet frozen
        self.frozen_total = 0  # objects frozen by this refreezer (reported in the log)

    def connected(self, now: float) -> None:
        self._wave_at = now

    def tick(self, now: float) -> int | None:
        """Freeze if a wave ended ``quiet_s`` ago; how many objects are frozen now (None: nothing done)."""
        if self._wave_at is None or now - self._wave_at < self.quiet_s:
            return None
        self._wave_at = None
        return self._freeze()


def _refreeze() -> int | None:
    if not _startup_frozen:
        return None
    gc.collect(1)  # the young generations only: a full collection here would be the very pause we avoid
    gc.freeze()
    if _installed is not None:  # pauses from here on are the steady state's (the connect wave's are gone)
        for d in _installed.recent.values():
            d.clear()
    return gc.get_freeze_count()
