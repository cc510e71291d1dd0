"""Backpressure for switch polling (pure: no I/O, the caller passes the clock).

A switch is asked for its counters again only once its last reply was handled. An overloaded controller
therefore polls less often -- a longer effective interval, reported in /metrics and /api/v1/health --
instead of queueing replies without bound and blocking every connection's receive thread. A reply that
never comes (lost, a hung switch) frees the switch after ``stale_after_s``.

CPU headroom by construction: the caller reports the process's CPU time (``load``). While the process
uses more than ``cpu_budget`` of a core, the poll interval is stretched (``stretch``), so polling never
takes the whole of the one core a Python process effectively has. A port-status event then never waits
for a saturated GIL: an overloaded controller polls less, it does not fail over late.

History is the last stage of a poll (``history``, ``pick``): the samples waiting in the history writer plus
those the replies already asked for will make must stay under ``history_limit``. Polls that would pass it
wait for a later tick (the longest-waiting switch first), so a writer slower than the fleet stretches the
effective interval instead of dropping samples. A tick also polls at most ``per_tick`` switches: a burst
of every held switch at once made one tick send thousands of requests (175 ms at 1,000 switches, a
PortStatus waiting behind it) and their replies overflow the writer (docs/scale.md).
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
    cpu_budget: float = 0.7  # of one core; above it, polls are stretched
    max_stretch: float = 30.0
    stretch: float = 1.0  # the poll interval is interval_s * stretch
    cpu_fraction: float = 0.0  # the process's CPU over the last measured interval, in cores
    wake_lag_p90_s: float = 0.0  # over the last measured interval
    _cpu_at: tuple[float, float] | None = None  # (when, process CPU s) of the last load measurement
    _lags: list[float] = field(default_factory=list)
    history_queued: int = 0  # samples waiting in the history writer, as last reported
    history_limit: int = 0  # queued + in flight may not pass it (0: no history gate)
    reply_samples: float = 0.0  # samples one port-stats reply makes (largest recent, slowly forgotten)
    capped: int = 0  # polls deferred to a later tick by the per-tick cap
    behind: bool = False  # the last tick deferred due polls (history or cap): any slot may take them
    _held_at: float | None = None  # when polls were last held for history
    _now: float = 0.0  # the last tick's time

    def load(self, now: float, cpu_s: float, wake_lags: list[float] = ()) -> None:
        """The process has used ``cpu_s`` CPU seconds by ``now``; ``wake_lags``: how late a sleeping thread
        of the process got to run since the last call (reported, the wait a port-status event's threads see).

        Once per interval: over the CPU budget, the poll interval is stretched (proportionally, by at most
        1.5x per interval); under 85 % of it, relaxed by 1.25x per interval; in between, held. The wake lag
        does not stretch: on this shared machine it followed the machine's load, not ours, and stretching
        for it cost half the polls at 300 switches without shortening failover (docs/scale.md).
        """
        self._lags.extend(wake_lags)
        if self._cpu_at is None:
            self._cpu_at = (now, cpu_s)
            return
        dt = now - self._cpu_at[0]
        if dt < self.interval_s:
            return
        self.cpu_fraction = cpu = max(0.0, cpu_s - self._cpu_at[1]) / dt
        self._cpu_at = (now, cpu_s)
        lags = sorted(self._lags)
        self._lags = []
        self.wake_lag_p90_s = lags[int(0.9 * (len(lags) - 1))] if lags else 0.0
        if cpu > self.cpu_budget:
            self.stretch = min(self.max_stretch, self.stretch * min(1.5, cpu / self.cpu_budget))
        elif cpu < 0.85 * self.cpu_budget:
            self.stretch = max(1.0, self.stretch / 1.25)

    def history(self, queued: int, limit: int) -> None:
        """The history writer holds ``queued`` samples; queued plus in flight may not pass ``limit``."""
        self.history_queued, self.history_limit = queued, limit

    def reply(self, samples: int) -> None:
        """A port-stats reply made ``samples`` history samples (what one poll costs the writer)."""
        self.reply_samples = max(float(samples), self.reply_samples * 0.99)

    def in_flight(self) -> float:
        """Samples the replies already asked for will make."""
        return self.outstanding() * self.reply_samples

    def history_room(self) -> int | None:
        """How many more polls history takes now (None: no history gate)."""
        if not self.history_limit:
            return None
        room = self.history_limit - self.history_queued - self.in_flight()
        if room <= 0:
            return 0
        return int(room // self.reply_samples) if self.reply_samples > 0 else None

    def pick(self, due: list[int], now: float, per_tick: int | None = None) -> list[int]:
        """The switches to poll this tick out of ``due``: at most ``per_tick`` and what history takes, the
        longest-waiting first. The rest wait for a later tick (counted in ``held`` for history, else
        ``capped``) and may then go on any slot (``behind``)."""
        self._now = now
        room = self.history_room()
        budget = len(due) if per_tick is None else min(per_tick, len(due))
        history_bound = room is not None and room < budget
        if history_bound:
            budget = room
            self._held_at = now
        rest = len(due) - budget
        if rest > 0:
            due = sorted(due, key=lambda d: self._last_sent.get(d, -1e18))[:budget]
            if history_bound:
                self.held += rest
            else:
                self.capped += rest
        self.behind = rest > 0
        return due

    def hold(self, due: list[int], now: float) -> None:
        """A later stage asked for no polls at all this tick: ``due`` wait (counted as held for history)."""
        self._now = now
        if due:
            self.held += len(due)
            self._held_at = now
            self.behind = True

    def history_bound(self) -> bool:
        """Polls were held for history within the last two intervals: the writer sets the pace."""
        return self._held_at is not None and self._now - self._held_at < 2 * self.interval_s

    def due(self, dpid: int, now: float, count_skip: bool = True) -> bool:
        """True if ``dpid`` may be polled now (its interval passed and nothing is outstanding).
        ``count_skip``: count it in ``skipped`` when a reply is still outstanding (its own turn)."""
        out = self._outstanding.get(dpid)
        if out is not None:
            if now - out < self.stale_after_s:
                self.skipped += count_skip
                return False
            del self._outstanding[dpid]  # the reply is not coming: ask again
            self.stale_total += 1
        last = self._last_sent.get(dpid)
        return last is None or now - last >= 0.95 * self.interval_s * self.stretch

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
        or replies take longer than an interval to be handled, or the CPU budget stretches the interval,
        or the history writer sets the pace (polls held for it lately)."""
        med, _mx = self.effective_interval_s()
        return (med > factor * self.interval_s or self.reply_lag_s() > self.interval_s
                or self.stretch >= factor or self.history_bound())

    def status(self) -> dict:
        med, mx = self.effective_interval_s()
        return {"poll_interval_s": self.interval_s, "effective_interval_p50_s": round(med, 3),
                "effective_interval_max_s": round(mx, 3), "reply_lag_p50_s": round(self.reply_lag_s(), 4),
                "outstanding": self.outstanding(), "skipped_total": self.skipped, "stale_total": self.stale_total,
                "held_for_history_total": self.held, "cpu_cores": round(self.cpu_fraction, 3),
                "cpu_budget_cores": self.cpu_budget, "stretch": round(self.stretch, 3),
                "wake_lag_p90_s": round(self.wake_lag_p90_s, 4),
                "history_queued": self.history_queued, "history_in_flight": int(self.in_flight()),
                "history_limit": self.history_limit, "history_bound": self.history_bound(),
                "capped_total": self.capped, "overloaded": self.overloaded()}
