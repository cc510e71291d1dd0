"""One switch's PortStats reply -> rates of all its ports -> one columnar history batch (no os-ken here).

The per-port work of the old path (counters object, rate object, seven ``Sample`` objects, seven queue
puts, seven latest-value updates) was what saturated the daemon at ~60-90 switches. Here a reply is one
numpy array from parse to store; names, tags and capacities are worked out once per switch and port set.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from pfepo.telemetry.ports import PortNames
from pfepo.telemetry.rates import COUNTERS, PORT_METRICS, PortRates, RateArrays
from pfepo.telemetry.samples import SampleBatch

OFPP_MAX = 0xFFFFFF00  # highest physical port number in OpenFlow 1.3
_FIELDS = operator.attrgetter("port_no", *COUNTERS)


@dataclass(frozen=True)
class PortRateBatch:
    """The rates of one reply: ``ports[i]`` has ``rates[i]`` (``PORT_METRICS`` columns)."""

    ts: float
    interval_s: float
    ports: np.ndarray
    rates: np.ndarray
    batch: SampleBatch

    def port_rates(self) -> dict[int, PortRates]:
        """Per-port ``PortRates`` (for the state the API shows)."""
        out = {}
        for p, r in zip(self.ports.tolist(), self.rates.tolist(), strict=True):
            out[p] = PortRates(self.ts, self.interval_s, *r)
        return out


def counters_array(body) -> tuple[np.ndarray, np.ndarray]:
    """(ports, uint64 counters in ``COUNTERS`` order) of a parsed PortStats body, physical ports only.

    ``body``: entries with the counters as attributes, or one structured array with them as fields (the
    adapter parses replies straight into one, ofmsg.PORT_STATS_DTYPE)."""
    if isinstance(body, np.ndarray) and body.dtype.names:
        body = body[body["port_no"] <= OFPP_MAX]
        counters = np.empty((len(body), len(COUNTERS)), dtype=np.uint64)
        for i, name in enumerate(COUNTERS):
            counters[:, i] = body[name]
        return body["port_no"].astype(np.int64), counters
    rows = [_FIELDS(st) for st in body if st.port_no <= OFPP_MAX]
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, len(COUNTERS)), dtype=np.uint64)
    arr = np.array(rows, dtype=np.uint64)
    return arr[:, 0].astype(np.int64), arr[:, 1:]


class PortStatsBatcher:
    """Keeps the last counters per switch and the names of its ports; ``reply`` turns a reply into rates."""

    def __init__(self, cfg, names: PortNames, max_gap_s: float = 300.0):
        self.cfg = cfg
        self.names = names
        self.rates = RateArrays(max_gap_s=max_gap_s)
        self._meta: dict[tuple[str, bytes], tuple[tuple, tuple, np.ndarray]] = {}

    def _port_meta(self, switch: str, ports: np.ndarray) -> tuple[tuple, tuple, np.ndarray]:
        key = (switch, ports.tobytes())
        meta = self._meta.get(key)
        if meta is None:
            named = [self.names.name(switch, int(p)) for p in ports]
            caps = np.array([self.cfg.capacity_mbps(switch, int(p)) * 1e6 for p in ports], dtype=np.float64)
            meta = (tuple(n[0] for n in named), tuple(n[1] for n in named), caps)
            if len(self._meta) > 100_000:  # port sets churning without end: do not grow forever
                self._meta.clear()
            self._meta[key] = meta
        return meta

    def reply(self, dpid: int, switch: str, ts: float, body) -> PortRateBatch | None:
        """Rates since this switch's previous reply (None on the first one or if no port has a rate)."""
        ports, counters = counters_array(body)
        _s, _t, caps = self._port_meta(switch, ports)
        got_ports, rates, dt = self.rates.update(dpid, ts, ports, counters, caps)
        if not len(got_ports):
            return None
        subjects, tags, _c = self._port_meta(switch, got_ports)
        batch = SampleBatch(ts, subjects, tags, PORT_METRICS, rates)
        return PortRateBatch(ts, dt, got_ports, rates, batch)

    def forget(self, dpid: int) -> None:
        self.rates.forget(dpid)
