"""Turning cumulative switch counters into rates, safely.

A counter that goes backwards means the switch restarted, the port was re-created or a 64-bit counter
wrapped (practically never). Either way the true delta is unknown, so we emit no rate for that interval
and restart from the new value, rather than a negative rate or a huge wrap-around rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COUNTERS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_dropped", "tx_dropped", "rx_errors", "tx_errors")


@dataclass(frozen=True, slots=True)
class PortCounters:
    ts: float
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    tx_packets: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0


@dataclass(frozen=True, slots=True)
class PortRates:
    ts: float
    interval_s: float
    rx_bps: float
    tx_bps: float
    rx_pps: float
    tx_pps: float
    drops_ps: float
    errors_ps: float
    utilization_pct: float

    def as_metrics(self) -> dict[str, float]:
        return {
            "rx_bps": self.rx_bps,
            "tx_bps": self.tx_bps,
            "rx_pps": self.rx_pps,
            "tx_pps": self.tx_pps,
            "drops_ps": self.drops_ps,
            "errors_ps": self.errors_ps,
            "utilization_pct": self.utilization_pct,
        }


def rates(prev: PortCounters, cur: PortCounters, capacity_bps: float, max_gap_s: float = 300.0) -> PortRates | None:
    """Rates between two readings, or None when they cannot be trusted.

    None for: non-increasing time, a gap longer than ``max_gap_s`` (an average over a long outage would
    hide what happened), or any counter that went backwards (reset/wrap).
    """
    dt = cur.ts - prev.ts
    if dt <= 0 or dt > max_gap_s:
        return None
    d = {}
    for name in COUNTERS:
        delta = getattr(cur, name) - getattr(prev, name)
        if delta < 0:
            return None
        d[name] = delta / dt
    rx_bps = d["rx_bytes"] * 8
    tx_bps = d["tx_bytes"] * 8
    util = 100.0 * max(rx_bps, tx_bps) / capacity_bps if capacity_bps > 0 else 0.0
    return PortRates(
        ts=cur.ts,
        interval_s=dt,
        rx_bps=rx_bps,
        tx_bps=tx_bps,
        rx_pps=d["rx_packets"],
        tx_pps=d["tx_packets"],
        drops_ps=d["rx_dropped"] + d["tx_dropped"],
        errors_ps=d["rx_errors"] + d["tx_errors"],
        utilization_pct=util,
    )


@dataclass
class RateTracker:
    """Keeps the last reading per key and yields rates for each new one."""

    max_gap_s: float = 300.0
    _last: dict[object, PortCounters] = field(default_factory=dict)

    def update(self, key: object, cur: PortCounters, capacity_bps: float) -> PortRates | None:
        prev = self._last.get(key)
        self._last[key] = cur
        if prev is None:
            return None
        return rates(prev, cur, capacity_bps, self.max_gap_s)

    def forget(self, key: object) -> None:
        self._last.pop(key, None)
