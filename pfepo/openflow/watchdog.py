"""Liveness of the OpenFlow side: is the event loop alive, are ticks and switch events being handled?

Pure bookkeeping with ``now`` passed in (monotonic seconds); the adapter feeds it and /api/v1/health asks
it. It exists because os-ken's native hub ends an app's event loop silently on a handler exception
(measured on os-ken 4.2.2): without it the daemon would answer "ok" while no switch event is handled any more.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Watchdog:
    """``stall_s``: how long a posted tick or a connected switch may go unhandled before we call it dead."""

    def __init__(self, stall_s: float):
        self.stall_s = stall_s
        self._lock = threading.Lock()  # written by the OpenFlow and poll threads, read by the API thread
        self._tick_pending_since: float | None = None
        self._last_event: dict[int, float] = {}  # dpid -> when its last event was handled (or it connected)
        self.ticks_posted = 0
        self.ticks_handled = 0

    def tick_posted(self, now: float) -> None:
        with self._lock:
            self.ticks_posted += 1
            if self._tick_pending_since is None:
                self._tick_pending_since = now

    def tick_handled(self) -> None:
        with self._lock:
            self.ticks_handled += 1
            self._tick_pending_since = None

    def switch_event(self, dpid: int, now: float) -> None:
        with self._lock:
            self._last_event[dpid] = now

    def switch_gone(self, dpid: int) -> None:
        with self._lock:
            self._last_event.pop(dpid, None)

    def problem(self, now: float, loop_alive: bool, poller_alive: bool, connected: Iterable[int],
                queued: int = 0) -> str | None:
        """None when healthy, else one sentence saying what stopped."""
        if not loop_alive:
            return "OpenFlow event loop has stopped: switch events are no longer handled"
        if not poller_alive:
            return "OpenFlow poll thread has stopped: no stats, read-back or probes"
        with self._lock:
            pending = self._tick_pending_since
            last = dict(self._last_event)
        if pending is not None and now - pending > self.stall_s:
            return (f"OpenFlow event loop stalled: a poll tick has waited {now - pending:.1f} s "
                    f"({queued} events queued)")
        for dpid in connected:
            seen = last.get(dpid)
            if seen is not None and now - seen > self.stall_s:
                return f"no event from connected switch dpid={dpid:#x} handled for {now - seen:.1f} s"
        return None
