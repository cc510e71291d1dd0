"""Alarm-quality metrics for failure prediction on replayed traces (used by ``pfepo evaluate``).

Definitions (per endpoint, then pooled over all endpoints of all traces):

- failure event: a row where ``up`` goes 1 -> 0; its start is that row's timestamp ``f``.
- alarm: the scored risk is above the policy's act threshold at a step. Steps while the endpoint is
  down, and for ``grace_s`` after it comes back, are ignored (the failure is known there; alarms then
  are neither early warnings nor false alarms).
- detected event: an alarm at some step in ``[f - window_s, f]``; lead = ``f`` - the first such alarm.
- alarm episode: consecutive alarm steps, with gaps shorter than ``merge_gap_s`` merged (a flickering
  alarm is one episode); the merge gap is at least 1.5 sampling intervals of the endpoint, so an alarm on
  consecutive rows of a slowly sampled series (60 s) is one episode, not one per row. An episode is true when a failure starts between its start and
  ``window_s`` after its end; precision = true episodes / all episodes.
- false alarms per endpoint-day = false episodes / (sum over endpoints of observed time in days).
- shifted share at failure: the failing endpoint's share of traffic already moved away when the failure
  starts, under the shift model driven by the alarms (``ShiftModel``), averaged over events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

KEYS = ("recall", "precision", "false_alarms_per_day", "median_lead_s", "p10_lead_s", "shifted_share_at_failure")


@dataclass(frozen=True)
class ShiftModel:
    """The documented ramp used when no planner drives the shift: while the alarm is on, move
    ``step_pct`` of the endpoint's traffic every ``interval_s`` up to ``max_pct``; while it is off and the
    endpoint is up, move it back at the same pace (fail-back)."""

    step_pct: float = 10.0
    interval_s: float = 10.0
    max_pct: float = 100.0

    def shifted(self, ts: np.ndarray, alarm: np.ndarray) -> np.ndarray:
        """Share shifted away (0..1) at each step, from the alarm state of the previous steps."""
        out = np.zeros(ts.size)
        cur, last = 0.0, -math.inf
        step, cap = self.step_pct / 100.0, self.max_pct / 100.0
        for k in range(ts.size):
            if ts[k] - last >= self.interval_s:
                if alarm[k]:
                    cur, last = min(cap, cur + step), ts[k]
                elif cur > 0:
                    cur, last = max(0.0, cur - step), ts[k]
            out[k] = cur
        return out


@dataclass
class Tally:
    """Counts pooled across endpoints and traces."""

    events: int = 0
    detected: int = 0
    leads: list[float] = field(default_factory=list)
    episodes: int = 0
    true_episodes: int = 0
    endpoint_days: float = 0.0
    shifted: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.events += other.events
        self.detected += other.detected
        self.leads += other.leads
        self.episodes += other.episodes
        self.true_episodes += other.true_episodes
        self.endpoint_days += other.endpoint_days
        self.shifted += other.shifted

    def summary(self) -> dict[str, float | None]:
        leads = np.array(self.leads)
        fa = self.episodes - self.true_episodes
        return {
            "recall": _r(self.detected / self.events) if self.events else None,
            "precision": _r(self.true_episodes / self.episodes) if self.episodes else None,
            "false_alarms_per_day": _r(fa / self.endpoint_days) if self.endpoint_days > 0 else None,
            "median_lead_s": _r(float(np.median(leads))) if leads.size else None,
            "p10_lead_s": _r(float(np.percentile(leads, 10))) if leads.size else None,
            "shifted_share_at_failure": _r(float(np.mean(self.shifted))) if self.shifted else None,
        }


def _r(v: float) -> float:
    return round(float(v), 4)


def failure_starts(ts: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Indices where ``up`` goes 1 -> 0."""
    return np.flatnonzero((up[:-1] == 1) & (up[1:] == 0)) + 1


def ignored(ts: np.ndarray, up: np.ndarray, grace_s: float) -> np.ndarray:
    """Steps while down or within ``grace_s`` after recovery."""
    down = up == 0
    out = down.copy()
    for k in np.flatnonzero((up[:-1] == 0) & (up[1:] == 1)) + 1:
        out |= (ts >= ts[k]) & (ts < ts[k] + grace_s)
    return out


def episodes(ts: np.ndarray, alarm: np.ndarray, merge_gap_s: float) -> list[tuple[float, float]]:
    """(start, end) timestamps of alarm episodes, merging gaps shorter than ``merge_gap_s``."""
    idx = np.flatnonzero(alarm)
    out: list[tuple[float, float]] = []
    for k in idx:
        t = float(ts[k])
        if out and t - out[-1][1] < merge_gap_s:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def score_endpoint(
    ts: np.ndarray,
    up: np.ndarray,
    alarm: np.ndarray,
    present: np.ndarray | None = None,
    window_s: float = 600.0,
    grace_s: float = 300.0,
    merge_gap_s: float = 60.0,
    shift: ShiftModel | None = None,
    shifted: np.ndarray | None = None,
) -> Tally:
    """Tally for one endpoint's series (``alarm`` already thresholded). ``shifted`` overrides the model."""
    alarm = np.asarray(alarm, dtype=bool) & ~ignored(ts, up, grace_s)
    if present is not None and present.any():
        seen = ts[present]
        days = float(seen[-1] - seen[0]) / 86_400
    else:
        days = float(ts[-1] - ts[0]) / 86_400 if ts.size else 0.0
    t = Tally(endpoint_days=days)
    seen_ts = ts[present] if present is not None and present.any() else ts
    if seen_ts.size > 1:
        merge_gap_s = max(merge_gap_s, 1.5 * float(np.median(np.diff(seen_ts))) + 1e-9)
    starts = ts[failure_starts(ts, up)]
    t.events = int(starts.size)
    if shifted is None:
        shifted = (shift or ShiftModel()).shifted(ts, alarm)
    for f in starts:
        w = alarm & (ts >= f - window_s) & (ts <= f)
        if w.any():
            t.detected += 1
            t.leads.append(float(f - ts[np.flatnonzero(w)[0]]))
        before = np.flatnonzero(ts < f)
        t.shifted.append(float(shifted[before[-1]]) if before.size else 0.0)
    for a, b in episodes(ts, alarm, merge_gap_s):
        t.episodes += 1
        if np.any((starts >= a) & (starts <= b + window_s)):
            t.true_episodes += 1
    return t
