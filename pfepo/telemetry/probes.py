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

Authenticated: each probe carries an HMAC-SHA256 (first 16 bytes) over its fields, keyed with a secret
only this daemon process knows. A frame is accepted only if its MAC verifies, its sequence number is one
we sent and still wait for (no replay, no duplicate), its send time is within the timeout window, and it
came in on the port the link uses; anything else is counted and ignored, so forged frames cannot fake
latency/loss or teach the controller a wrong return port.
"""

from __future__ import annotations

import hmac
import statistics
import struct
from collections import deque
from dataclasses import dataclass, field
from hashlib import sha256

from pfepo.telemetry.samples import Sample

ETH_TYPE = 0x88B5  # IEEE 802 local experimental ethertype: never leaves our network
MAGIC = b"PFEP"
_FMT = "!4sQIIId"  # magic, src dpid, src port, link id, seq, send time
_SIZE = struct.calcsize(_FMT)
MAC_LEN = 16


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, sha256).digest()[:MAC_LEN]


def encode(src_dpid: int, src_port: int, link_id: int, seq: int, t_out: float, key: bytes = b"") -> bytes:
    body = struct.pack(_FMT, MAGIC, src_dpid, src_port, link_id, seq, t_out)
    return body + _mac(key, body)


def verify(payload: bytes, key: bytes = b"") -> tuple[int, int, int, int, float] | str:
    """(src dpid, src port, link id, seq, send time), or why the frame is rejected."""
    if len(payload) < _SIZE + MAC_LEN or payload[:4] != MAGIC:
        return "malformed"
    if not hmac.compare_digest(payload[_SIZE:_SIZE + MAC_LEN], _mac(key, payload[:_SIZE])):
        return "bad_mac"
    _m, dpid, port, link_id, seq, t_out = struct.unpack_from(_FMT, payload)
    return dpid, port, link_id, seq, t_out


def decode(payload: bytes, key: bytes = b"") -> tuple[int, int, int, int, float] | None:
    """(src dpid, src port, link id, seq, send time) or None if this is not our (authentic) probe."""
    got = verify(payload, key)
    return None if isinstance(got, str) else got


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
    _wire: dict[int, float] = field(default_factory=dict)  # seq -> when it left our socket (if known)

    def next_seq(self, link: str, t_out: float) -> int:
        self._seq = (self._seq + 1) % 2**32
        self._pending[self._seq] = (link, t_out)
        return self._seq

    def sent(self, seq: int, t_out: float) -> None:
        """The probe actually left at ``t_out`` (later than when its number was taken)."""
        entry = self._pending.get(seq)
        if entry is not None:
            self._pending[seq] = (entry[0], t_out)

    def left_socket(self, seq: int, t_wire: float) -> None:
        """The probe's packet-out left our socket at ``t_wire`` (the adapter's wire time). Latency is then
        timed from there: the frame's own stamp (checked against replays) was taken before os-ken's send
        thread got to it."""
        if seq in self._pending:
            self._wire[seq] = t_wire

    def expects(self, seq: int, link: str, t_out: float) -> bool:
        """True if ``seq`` is a probe we sent on ``link`` at ``t_out`` and still wait for (not a replay)."""
        return self._pending.get(seq) == (link, t_out)

    def received(self, seq: int, t_in: float, rtt_src_s: float, rtt_dst_s: float,
                 trusted: bool = True) -> tuple[str, float] | None:
        """Record an arrival; returns (link, one-way latency s) or None for unknown/late/duplicate probes
        and for untrusted ones (discarded)."""
        entry = self._pending.pop(seq, None)
        t_wire = self._wire.pop(seq, None)
        if entry is None:
            return None
        link, t_out = entry
        t_out = t_out if t_wire is None else t_wire
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

        ``trusted=False`` (the controller was overloaded or slow on its own control channel during the
        round): every settled probe of the round is discarded -- answered ones measured our queues, lost
        ones may still sit in them -- and nothing is reported: no measurement rather than a wrong one.
        """
        if not trusted:
            for link, done in self._done.items():
                self._discarded[link] = self._discarded.get(link, 0) + len(done)
                done.clear()
        for seq, (link, t_out) in list(self._pending.items()):
            if now - t_out > self.timeout_s:
                del self._pending[seq]
                self._wire.pop(seq, None)
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
    # Baseline: the lowest RTT seen, creeping up 1 ms per second so a real change of the control path is
    # followed. RTT above it is our own (or the channel's) queueing, not the link's.
    floor: dict[int, tuple[float, float]] = field(default_factory=dict)  # dpid -> (min rtt, when)

    def update(self, dpid: int, sample_s: float, now: float | None = None) -> float:
        prev = self.rtt.get(dpid)
        self.rtt[dpid] = sample_s if prev is None else (1 - self.alpha) * prev + self.alpha * sample_s
        if now is not None:
            base = self.baseline(dpid, now)
            if base is None or sample_s <= base:
                self.floor[dpid] = (sample_s, now)
        return self.rtt[dpid]

    def baseline(self, dpid: int, now: float) -> float | None:
        got = self.floor.get(dpid)
        return None if got is None else got[0] + 0.001 * max(0.0, now - got[1])

    def excess(self, dpid: int, sample_s: float, now: float) -> float:
        """How much of this RTT sample is above the switch's baseline (0 without a baseline)."""
        base = self.baseline(dpid, now)
        return 0.0 if base is None else max(0.0, sample_s - base)

    def get(self, dpid: int) -> float:
        return self.rtt.get(dpid, 0.0)


def link_samples(stats: dict[str, LinkStats], now: float) -> list[Sample]:
    """Per link direction ``uplink:R>``/``uplink:R<`` stats -> samples for link ``uplink:R``.

    Each direction gives ``latency_out_ms``/``latency_in_ms`` and ``loss_out_pct``/``loss_in_pct``; the
    link's ``latency_ms`` and ``loss_pct`` are the means over the directions that reported.
    """
    by_link: dict[str, dict[str, float]] = {}
    for direction, st in stats.items():
        link, way = direction[:-1], "out" if direction.endswith(">") else "in"
        m = by_link.setdefault(link, {})
        m[f"loss_{way}_pct"] = st.loss_pct
        if st.latency_ms is not None:
            m[f"latency_{way}_ms"] = st.latency_ms
    samples = []
    for link, m in by_link.items():
        lats = [v for k, v in m.items() if k.startswith("latency_")]
        losses = [v for k, v in m.items() if k.startswith("loss_")]
        if lats:
            m["latency_ms"] = sum(lats) / len(lats)
        m["loss_pct"] = sum(losses) / len(losses)
        tags = (("kind", "uplink"), ("region", link.split(":", 1)[1]), ("source", "probe"))
        samples.extend(Sample(now, link, k, v, tags) for k, v in m.items())
    return samples
