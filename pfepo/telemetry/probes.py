"""Link latency and loss from controller probe packets (pure: encoding and bookkeeping, no I/O).

The controller sends a probe as a packet-out on one end of a link and gets it back as a packet-in from
the switch at the other end. ``t_in - t_out`` also contains the controller->switch and switch->controller
legs, so we subtract half of each switch's OpenFlow echo round trip:
``latency = (t_in - t_out) - rtt_src/2 - rtt_dst/2`` (clamped at 0). Loss is the share of probes not back
within ``timeout_s``. Probes are numbered, so duplicates and late arrivals are not counted twice.

Probes measure the network, not the controller: the adapter passes the time the packet-in left the
socket (not when a busy event loop got to it), and a probe answered or lost while the controller was
overloaded is *discarded* (``trusted=False``): it counts neither as latency nor as loss, so our own load
can never make a link look slow or lossy and shift traffic.
"""

from __future__ import annotations

import statistics
import struct
from collections import deque
from dataclasses import dataclass, field

ETH_TYPE = 0x88B5  # IEEE 802 local experimental ethertype: never leaves our network
MAGIC = b"PFEP"
_FMT = "!4sQIIId"  # magic, src dpid, src port, link id, seq, send time
_SIZE = struct.calcsize(_FMT)


def encode(src_dpid: int, src_port: int, link_id: int, seq: int, t_out: float) -> bytes:
    return struct.pack(_FMT, MAGIC, src_dpid, src_port, link_id, seq, t_out)


def decode(payload: bytes) -> tuple[int, int, int, int, float] | None:
    """(src dpid, src port, link id, seq, send time) or None if this is not our probe."""
    if len(payload) < _SIZE or payload[:4] != MAGIC:
        return None
    _m, dpid, port, link_id, seq, t_out = struct.unpack_from(_FMT, payload)
    return dpid, port, link_id, seq, t_out


@dataclass
class LinkStats:
    latency_ms: float | None
    loss_pct: float
    sent: int
    received: int
    discarded: int = 0  # untrusted (taken while the controller was overloaded): not in latency or loss


@dataclass
class ProbeTracker:
    """Outstanding probes per link direction; ``collect`` summarises and forgets what it reported."""

    timeout_s: float = 1.0
    _seq: int = 0
    _pending: dict[int, tuple[str, float]] = field(default_factory=dict)  # seq -> (link, t_out)
    _done: dict[str, deque] = field(default_factory=dict)  # link -> (t_out, latency or None)
    _discarded: dict[str, int] = field(default_factory=dict)

    def next_seq(self, link: str, t_out: float) -> int:
        self._seq = (self._seq + 1) % 2**32
        self._pending[self._seq] = (link, t_out)
        return self._seq

    def received(self, seq: int, t_in: float, rtt_src_s: float, rtt_dst_s: float,
                 trusted: bool = True) -> tuple[str, float] | None:
        """Record an arrival; returns (link, one-way latency s) or None for unknown/late/duplicate probes
        and for untrusted ones (discarded)."""
        entry = self._pending.pop(seq, None)
        if entry is None:
            return None
        link, t_out = entry
        if not trusted:
            self._discarded[link] = self._discarded.get(link, 0) + 1
            return None
        if t_in - t_out > self.timeout_s:
            self._done.setdefault(link, deque()).append((t_out, None))
            return None
        lat = max(0.0, (t_in - t_out) - rtt_src_s / 2 - rtt_dst_s / 2)
        self._done.setdefault(link, deque()).append((t_out, lat))
        return link, lat

    def collect(self, now: float, trusted: bool = True) -> dict[str, LinkStats]:
        """Per link: median latency and loss of probes that are settled (answered or timed out).

        ``trusted=False`` (the controller is overloaded now): probes that timed out are discarded, not
        lost -- their replies may be sitting in our own queues. A link with only discarded probes is
        left out: no measurement rather than a wrong one.
        """
        for seq, (link, t_out) in list(self._pending.items()):
            if now - t_out > self.timeout_s:
                del self._pending[seq]
                if trusted:
                    self._done.setdefault(link, deque()).append((t_out, None))
                else:
                    self._discarded[link] = self._discarded.get(link, 0) + 1
        out = {}
        discarded, self._discarded = self._discarded, {}
        for link, done in self._done.items():
            if not done:
                continue
            lats = [lat for _t, lat in done if lat is not None]
            out[link] = LinkStats(
                latency_ms=1000 * statistics.median(lats) if lats else None,
                loss_pct=100.0 * (len(done) - len(lats)) / len(done),
                sent=len(done) + discarded.get(link, 0),
                received=len(lats),
                discarded=discarded.get(link, 0),
            )
            done.clear()
        return out


@dataclass
class EchoRtt:
    """Smoothed OpenFlow echo round trip per switch (EWMA, like TCP's SRTT)."""

    alpha: float = 0.3
    rtt: dict[int, float] = field(default_factory=dict)

    def update(self, dpid: int, sample_s: float) -> float:
        prev = self.rtt.get(dpid)
        self.rtt[dpid] = sample_s if prev is None else (1 - self.alpha) * prev + self.alpha * sample_s
        return self.rtt[dpid]

    def get(self, dpid: int) -> float:
        return self.rtt.get(dpid, 0.0)
