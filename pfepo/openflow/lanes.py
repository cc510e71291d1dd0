"""The OpenFlow app's event queue with an urgent lane: failover never waits behind stats or probes.

os-ken gives each app one FIFO queue of 128 events; a full queue blocks every switch connection's
receive thread, so a PortStatus on the client-side switch waited behind hundreds of stats replies and
probe packet-ins (seconds at 300 switches, never at 1000). Here port-status events and the desired-state
change they cause go to an unbounded urgent lane (their rate is bounded by the number of ports) that the
event thread always serves first; everything else goes to a normal lane whose bound the caller sizes to
what polling backpressure allows to be outstanding, so receive threads do not block in normal operation.
"""

from __future__ import annotations

import collections
import threading
import time


class TwoLaneQueue:
    """``put``/``get`` like ``queue.Queue``; ``urgent=True`` items jump ahead of every normal item."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._urgent: collections.deque = collections.deque()
        self._normal: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self.blocked_puts = 0  # normal puts that had to wait for room (receive threads stalled)
        self.rejected = 0  # non-blocking normal puts refused on a full lane
        self.urgent_total = 0

    def put(self, item, block: bool = True, urgent: bool = False) -> bool:
        with self._cv:
            if urgent:
                self._urgent.append(item)
                self.urgent_total += 1
            else:
                if len(self._normal) >= self.maxsize:
                    if not block:
                        self.rejected += 1
                        return False
                    self.blocked_puts += 1
                    while len(self._normal) >= self.maxsize:
                        self._cv.wait()
                self._normal.append(item)
            self._cv.notify_all()
        return True

    def put_nowait(self, item) -> None:
        if not self.put(item, block=False):
            raise OverflowError("event queue full")

    def get(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._urgent and not self._normal:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("no event")
                self._cv.wait(left)
            item = self._urgent.popleft() if self._urgent else self._normal.popleft()
            self._cv.notify_all()
            return item

    def get_urgent(self, when=None):
        """The next urgent item, or None at once if there is none or ``when(item)`` is false for it (never
        waits, never takes a normal one)."""
        with self._cv:
            if not self._urgent or (when is not None and not when(self._urgent[0])):
                return None
            item = self._urgent.popleft()
            self._cv.notify_all()
            return item

    def qsize(self) -> int:
        return len(self._urgent) + len(self._normal)

    def urgent_size(self) -> int:
        return len(self._urgent)

    def empty(self) -> bool:
        return not self._urgent and not self._normal
