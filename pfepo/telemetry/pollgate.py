"""Backpressure for switch polling (pure: no I/O, the caller passes the clock).

A switch is asked for its counters again only once its last reply was handled. An overloaded controller
therefore polls less often -- a longer effective interval, reported in /metrics and /api/v1/health --
instead of queueing replies without bound and blocking every connection's receive thread. A reply that
never comes (lost, a hung switch) frees the switch after ``stale_after_s``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class PollGate:
    interval_s: float
    stale_after_s: float = 30.0
    alpha: float = 0.2  # EWMA weight of the newest effective interval
    _outstanding: dict[int, float] = field(default_factory=dict)  # dpid -> when the request went out
    _last_sent: dict[int, float] = field(default_factory=dict)
    _effective: dict[int, float] = field(default_factory=dict)  # dpid -> EWMA of send-to-send interval
    _lag: dict[int, float] = field(default_factory=dict)  # dpid -> EWMA of send-to-handled time
    skipped: int = 0  # polls not sent because the previous reply was still being waited for / handled
    sent_total: int = 0
    stale_total: int = 0
    held: int = 0  # polls held back because a later stage (history) was behind

    def due(self, dpid: int, now: float) -> bool:
        """True if ``dpid`` may be polled now (its interval passed and nothing is outstanding)."""
        out = self._outstanding.get(dpid)
        if out is not None:
            if now - out < self.stale_after_s:
                self.skipped += 1
                return False
            del self._outstanding[dpid]  # the reply is not coming: ask again
            self.stale_total += 1
        last = self._last_sent.get(dpid)
        return last is None or now - last >= 0.95 * self.interval_s

    def sent(self, dpid: int, now: float) -> None:
        last = self._last_sent.get(dpid)
        if last is not None:
            gap = now - last
            prev = self._effective.get(dpid)
            self._effective[dpid] = gap if prev is None else (1 - self.alpha) * prev + self.alpha * gap
        self._last_sent[dpid] = now
        self._outstanding[dpid] = now
        self.sent_total += 1

    def handled(self, dpid: int, now: float) -> None:
        """The reply was processed (all parts): the switch may be asked again at its next turn."""
        out = self._outstanding.pop(dpid, None)
        if out is not None:
            lag = now - out
            prev = self._lag.get(dpid)
            self._lag[dpid] = lag if prev is None else (1 - self.alpha) * prev + self.alpha * lag
        else:
            self._outstanding.pop(dpid, None)

    def forget(self, dpid: int) -> None:
        for d in (self._outstanding, self._last_sent, self._effective, self._lag):
            d.pop(dpid, None)

    def outstanding(self) -> int:
        return len(self._outstanding)

    def effective_interval_s(self) -> tuple[float, float]:
        """(median, max) over switches of the smoothed interval between polls; the configured one if none."""
        vals = list(self._effective.values())
        if not vals:
            return self.interval_s, self.interval_s
        return statistics.median(vals), max(vals)

    def reply_lag_s(self) -> float:
        """Median smoothed time from a poll to its reply being handled (our own queueing included)."""
        vals = list(self._lag.values())
        return statistics.median(vals) if vals else 0.0

    def overloaded(self, factor: float = 1.5) -> bool:
        """Polls are being stretched: the median effective interval is ``factor`` x the configured one,
        or replies take longer than an interval to be handled."""
        med, _mx = self.effective_interval_s()
        return med > factor * self.interval_s or self.reply_lag_s() > self.interval_s

    def status(self) -> dict:
        med, mx = self.effective_interval_s()
        return {"poll_interval_s": self.interval_s, "effective_interval_p50_s": round(med, 3),
                "effective_interval_max_s": round(mx, 3), "reply_lag_p50_s": round(self.reply_lag_s(), 4),
                "outstanding": self.outstanding(), "skipped_total": self.skipped, "stale_total": self.stale_total,
                "held_for_history_total": self.held,
                "overloaded": self.overloaded()}
