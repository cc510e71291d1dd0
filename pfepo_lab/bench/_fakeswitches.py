"""Fake OpenFlow 1.3 switches on asyncio, for ``pfepo bench controller`` (no OVS can run hundreds).

A fake, because a real switch per point of the curve is what we cannot run here: 1,000 OVS bridges
would eat the machine the daemon is measured on. The wire format is real: every message is packed with
the ``os_ken.ofproto.ofproto_v1_3`` struct formats and the daemon parses it with os-ken like it parses
OVS. Each switch answers what PF-EPO asks (features, port desc/stats, group desc, meter config, echo,
barrier, role), keeps the groups and meters it is sent, and loops probe packet-outs back instantly as a
packet-in on the switch at the other end of a ``Fabric`` link. The bench drives failures with
``port_status`` and times the GroupMod that answers at the switch (what a data plane would feel).
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_common
from os_ken.ofproto import ofproto_v1_3 as ofp

HEADER = struct.Struct(ofproto_common.OFP_HEADER_PACK_STR)
_MP_REPLY = struct.Struct(ofp.OFP_MULTIPART_REPLY_PACK_STR)
_MP_REQ = struct.Struct(ofp.OFP_MULTIPART_REQUEST_PACK_STR)
_PORT = struct.Struct(ofp.OFP_PORT_PACK_STR)
_PORT_STATS = struct.Struct(ofp.OFP_PORT_STATS_PACK_STR)
_PORT_STATUS = struct.Struct(ofp.OFP_PORT_STATUS_PACK_STR)
_FEATURES = struct.Struct(ofp.OFP_SWITCH_FEATURES_PACK_STR)
_GROUP_MOD = struct.Struct(ofp.OFP_GROUP_MOD_PACK_STR)
_GROUP_DESC = struct.Struct(ofp.OFP_GROUP_DESC_STATS_PACK_STR)
_BUCKET = struct.Struct(ofp.OFP_BUCKET_PACK_STR)
_METER_MOD = struct.Struct(ofp.OFP_METER_MOD_PACK_STR)
_METER_CONFIG = struct.Struct(ofp.OFP_METER_CONFIG_PACK_STR)
_PACKET_OUT = struct.Struct(ofp.OFP_PACKET_OUT_PACK_STR)
_ACTION_OUTPUT = struct.Struct(ofp.OFP_ACTION_OUTPUT_PACK_STR)
_PACKET_IN = struct.Struct(ofp.OFP_PACKET_IN_PACK_STR)
_SWITCH_CONFIG = struct.Struct(ofp.OFP_SWITCH_CONFIG_PACK_STR)
_FLOW_MOD = struct.Struct(ofp.OFP_FLOW_MOD_PACK_STR0)
_FLOW_STATS = struct.Struct(ofp.OFP_FLOW_STATS_0_PACK_STR)
_MP_CHUNK = 60  # entries per multipart reply part (OVS splits at 64 KiB; this exercises REPLY_MORE too)


def _msg(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    return HEADER.pack(ofp.OFP_VERSION, msg_type, ofp.OFP_HEADER_SIZE + len(body), xid) + body


def _in_port_match(port: int) -> bytes:
    """OXM match with only in_port, padded to 8 bytes (ofp_match)."""
    oxm = struct.pack("!II", (ofp.OFPXMC_OPENFLOW_BASIC << 16) | (ofp.OFPXMT_OFB_IN_PORT << 9) | 4, port)
    body = struct.pack("!HH", ofp.OFPMT_OXM, 4 + len(oxm)) + oxm
    return body + b"\0" * (-len(body) % 8)


def parse_buckets(buf: bytes) -> list[tuple[int, int, list[int]]]:
    """(weight, watch_port, output ports) per bucket of a GroupMod/GroupDesc bucket list."""
    out, off = [], 0
    while off + _BUCKET.size <= len(buf):
        length, weight, watch_port, _watch_group = _BUCKET.unpack_from(buf, off)
        if length < _BUCKET.size:
            break
        ports, a = [], off + _BUCKET.size
        while a + 4 <= off + length:
            atype, alen = struct.unpack_from("!HH", buf, a)
            if alen < 4:
                break
            if atype == ofp.OFPAT_OUTPUT:
                ports.append(_ACTION_OUTPUT.unpack_from(buf, a)[2])
            a += alen
        out.append((weight, watch_port, ports))
        off += length
    return out


@dataclass
class GroupEvent:
    ts: float  # perf_counter at receipt
    group_id: int
    command: int
    weights: dict[int, int]  # watch_port -> weight


@dataclass
class FakeSwitch:
    """One switch: 48 ports by default, counters that grow at a fixed per-port rate."""

    dpid: int
    fabric: Fabric
    n_ports: int = 48
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    groups: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # gid -> (type, raw buckets)
    meters: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # mid -> (flags, raw bands)
    port_down: set[int] = field(default_factory=set)
    poll_times: list[float] = field(default_factory=list)  # perf_counter of each PortStats request
    stats_replies: int = 0
    flow_mods: int = 0
    flows: dict[tuple[int, int, bytes], tuple] = field(default_factory=dict)  # (table, prio, match) -> entry
    group_events: list[GroupEvent] = field(default_factory=list)
    _waiters: list = field(default_factory=list)  # (predicate, future)

    def __post_init__(self):
        rnd = random.Random(self.dpid)
        # bytes/s per port, rx and tx: 1-40 Mbit/s (well under the 1 Gbit/s default capacity)
        self._rates = [(rnd.uniform(0.125e6, 5e6), rnd.uniform(0.125e6, 5e6)) for _ in range(self.n_ports)]
        self._t0 = time.time() - 1000.0

    # --- connection ----------------------------------------------------------------------------
    async def run(self, host: str, port: int, retry_s: float = 60.0) -> None:
        deadline = time.monotonic() + retry_s
        while True:  # like a real switch: keep trying until the controller listens
            try:
                self.reader, self.writer = await asyncio.open_connection(host, port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        self.writer.write(_msg(ofp.OFPT_HELLO, 0))
        try:
            while True:
                head = await self.reader.readexactly(ofp.OFP_HEADER_SIZE)
                _v, mtype, length, xid = HEADER.unpack(head)
                body = await self.reader.readexactly(length - ofp.OFP_HEADER_SIZE) if length > 8 else b""
                self._handle(mtype, xid, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.connected.clear()
            self.writer.close()

    def send(self, data: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # --- requests ------------------------------------------------------------------------------
    def _handle(self, mtype: int, xid: int, body: bytes) -> None:
        if mtype == ofp.OFPT_ECHO_REQUEST:
            self.send(_msg(ofp.OFPT_ECHO_REPLY, xid, body))
        elif mtype == ofp.OFPT_FEATURES_REQUEST:
            self.send(_msg(ofp.OFPT_FEATURES_REPLY, xid, _FEATURES.pack(self.dpid, 0, 254, 0, 0x4F, 0)))
            self.connected.set()
        elif mtype == ofp.OFPT_MULTIPART_REQUEST:
            self._multipart(xid, body)
        elif mtype == ofp.OFPT_GROUP_MOD:
            self._group_mod(body)
        elif mtype == ofp.OFPT_METER_MOD:
            command, flags, mid = _METER_MOD.unpack_from(body)
            if command == ofp.OFPMC_DELETE:
                self.meters.pop(mid, None)
            else:
                self.meters[mid] = (flags, body[_METER_MOD.size:])
        elif mtype == ofp.OFPT_FLOW_MOD:
            self._flow_mod(body)
        elif mtype == ofp.OFPT_PACKET_OUT:
            self._packet_out(body)
        elif mtype == ofp.OFPT_BARRIER_REQUEST:
            self.send(_msg(ofp.OFPT_BARRIER_REPLY, xid))
        elif mtype == ofp.OFPT_ROLE_REQUEST:
            self.send(_msg(ofp.OFPT_ROLE_REPLY, xid, body))
        elif mtype == ofp.OFPT_GET_CONFIG_REQUEST:
            self.send(_msg(ofp.OFPT_GET_CONFIG_REPLY, xid, _SWITCH_CONFIG.pack(0, 0xFFFF)))
        # HELLO, SET_CONFIG, SET_ASYNC, ECHO_REPLY: nothing to answer

    def _multipart(self, xid: int, body: bytes) -> None:
        mp_type, _flags = _MP_REQ.unpack_from(body, 0) if len(body) >= 8 else (None, 0)
        if mp_type == ofp.OFPMP_PORT_STATS:
            self.poll_times.append(time.perf_counter())
            self.stats_replies += 1
            entries = self._port_stats()
        elif mp_type == ofp.OFPMP_PORT_DESC:
            entries = [self._port_desc(p) for p in range(1, self.n_ports + 1)]
        elif mp_type == ofp.OFPMP_GROUP_DESC:
            entries = [_GROUP_DESC.pack(_GROUP_DESC.size + len(b), t, gid) + b for gid, (t, b) in self.groups.items()]
        elif mp_type == ofp.OFPMP_FLOW:
            entries = [self._flow_stats(k, v) for k, v in self.flows.items()]
        elif mp_type == ofp.OFPMP_METER_CONFIG:
            entries = [_METER_CONFIG.pack(_METER_CONFIG.size + len(b), f, mid) + b for mid, (f, b) in self.meters.items()]
        else:
            entries = []
        chunks = [entries[i:i + _MP_CHUNK] for i in range(0, len(entries), _MP_CHUNK)] or [[]]
        out = []
        for i, chunk in enumerate(chunks):
            more = ofp.OFPMPF_REPLY_MORE if i < len(chunks) - 1 else 0
            out.append(_msg(ofp.OFPT_MULTIPART_REPLY, xid, _MP_REPLY.pack(mp_type or 0, more) + b"".join(chunk)))
        self.send(b"".join(out))

    def _port_desc(self, port: int) -> bytes:
        state = ofp.OFPPS_LINK_DOWN if port in self.port_down else ofp.OFPPS_LIVE
        mac = struct.pack("!HI", 0x0270, (self.dpid << 8 | port) & 0xFFFFFFFF)
        return _PORT.pack(port, mac, f"p{port}".encode(), 0, state, 0x820, 0, 0, 0, 1_000_000, 1_000_000)

    def _port_stats(self) -> list[bytes]:
        el = time.time() - self._t0
        out = []
        for i, (rx, tx) in enumerate(self._rates):
            rxb, txb = int(rx * el), int(tx * el)
            out.append(_PORT_STATS.pack(i + 1, rxb // 800, txb // 800, rxb, txb, 0, 0, 0, 0, 0, 0, 0, 0,
                                        int(el), 0))
        return out

    def _flow_mod(self, body: bytes) -> None:
        """Keep flows by (table, priority, match) like a switch: ADD replaces, DELETE_STRICT removes."""
        self.flow_mods += 1
        (cookie, _mask, table, command, idle, hard, prio, _buf, _out_port, _out_group,
         flags) = _FLOW_MOD.unpack_from(body)
        off = _FLOW_MOD.size
        _mtype, mlen = struct.unpack_from("!HH", body, off)
        match = body[off:off + mlen + (-mlen % 8)]
        key = (table, prio, match)
        if command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            self.flows.pop(key, None)
        else:
            self.flows[key] = (cookie, idle, hard, flags, body[off + len(match):])

    @staticmethod
    def _flow_stats(key: tuple[int, int, bytes], entry: tuple) -> bytes:
        table, prio, match = key
        cookie, idle, hard, flags, instructions = entry
        length = _FLOW_STATS.size + len(match) + len(instructions)
        return _FLOW_STATS.pack(length, table, 1, 0, prio, idle, hard, flags, cookie, 0, 0) + match + instructions

    def _group_mod(self, body: bytes) -> None:
        command, gtype, gid = _GROUP_MOD.unpack_from(body)
        buckets = body[_GROUP_MOD.size:]
        if command == ofp.OFPGC_DELETE:
            self.groups.pop(gid, None)
            return
        self.groups[gid] = (gtype, buckets)
        ev = GroupEvent(time.perf_counter(), gid, command, {wp: w for w, wp, _p in parse_buckets(buckets)})
        self.group_events.append(ev)
        for pred, fut in list(self._waiters):
            if not fut.done() and pred(ev):
                fut.set_result(ev)
                self._waiters.remove((pred, fut))

    def _packet_out(self, body: bytes) -> None:
        _buf, _in_port, actions_len = _PACKET_OUT.unpack_from(body)
        acts = body[_PACKET_OUT.size:_PACKET_OUT.size + actions_len]
        data = body[_PACKET_OUT.size + actions_len:]
        off = 0
        while off + _ACTION_OUTPUT.size <= len(acts):
            atype, alen, port, _max = _ACTION_OUTPUT.unpack_from(acts, off)
            if atype == ofp.OFPAT_OUTPUT and port not in self.port_down:
                peer = self.fabric.links.get((self.dpid, port))
                if peer is not None:
                    sw = self.fabric.switches.get(peer[0])
                    if sw is not None and peer[1] not in sw.port_down:
                        sw.packet_in(peer[1], data)
            off += max(alen, 8)

    # --- what the switch sends on its own ------------------------------------------------------
    def packet_in(self, in_port: int, data: bytes) -> None:
        body = _PACKET_IN.pack(ofp.OFP_NO_BUFFER, len(data), ofp.OFPR_ACTION, 0, 0) + _in_port_match(in_port)
        self.send(_msg(ofp.OFPT_PACKET_IN, 0, body + b"\0\0" + data))

    def port_status(self, port: int, up: bool) -> None:
        (self.port_down.discard if up else self.port_down.add)(port)
        desc = _PORT.unpack(self._port_desc(port))
        self.send(_msg(ofp.OFPT_PORT_STATUS, 0, _PORT_STATUS.pack(ofp.OFPPR_MODIFY, *desc)))

    def wait_group(self, pred) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        return fut

    def bucket_weight(self, watch_port: int) -> int | None:
        """The weight of the (first) bucket watching ``watch_port`` in any group held, or None."""
        for _t, raw in self.groups.values():
            for w, wp, _p in parse_buckets(raw):
                if wp == watch_port:
                    return w
        return None


@dataclass
class Fabric:
    """All fake switches of one run and the links between their ports (probes cross these)."""

    switches: dict[int, FakeSwitch] = field(default_factory=dict)
    links: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def add(self, dpid: int, n_ports: int = 48) -> FakeSwitch:
        sw = FakeSwitch(dpid, self, n_ports)
        self.switches[dpid] = sw
        return sw

    def link(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        self.links[a] = b
        self.links[b] = a

    async def connect_all(self, host: str, port: int, per_s: float = 200.0, timeout_s: float = 120.0) -> None:
        """Connect every switch (staggered: a real fleet does not reconnect in the same millisecond)."""
        for sw in self.switches.values():
            self.tasks.append(asyncio.create_task(sw.run(host, port)))
            await asyncio.sleep(1.0 / per_s)
        try:
            await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in self.switches.values())), timeout_s)
        except TimeoutError:
            done = sum(s.connected.is_set() for s in self.switches.values())
            raise TimeoutError(f"{done} of {len(self.switches)} switches got a features request within "
                               f"{timeout_s:g} s") from None

    async def close(self) -> None:
        for sw in self.switches.values():
            sw.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def intervals(times: list[float], start: float, end: float) -> list[float]:
    """Gaps between consecutive events inside [start, end] (perf_counter seconds)."""
    inside = [t for t in times if start <= t <= end]
    return [b - a for a, b in zip(inside, inside[1:], strict=False)]

