"""An in-memory OpenFlow switch for unit tests, modelled on Faucet's clib/fakeoftable.py.

A fake, because no real switch can run inside a millisecond unit test; tests/integration covers what
only OVS shows. It applies the pure sync's messages (pfepo.openflow.messages) the way OVS 3.1 does:
- FlowMod ADD replaces a flow with the same table, priority and match; DELETE_STRICT removes it; a flow
  that references a missing group or meter is rejected (OFPBAC_BAD_OUT_GROUP / OFPMMFC_UNKNOWN_METER);
- GroupMod ADD of an existing group and MODIFY of a missing one are rejected (OFPGMFC_GROUP_EXISTS /
  OFPGMFC_UNKNOWN_GROUP); deleting groups also deletes the flows that use them, as OVS does;
- stats requests are answered from the tables (flow stats only for our cookie: all flows here are ours).
``forward`` answers "where does this packet go" for given headers and a bucket choice. It follows the
affinity pipeline (desired.py): ``ct`` looks the connection up (its ``ct_mark``) and continues in the
given table, ``ct`` with commit stores the mark, ``resubmit`` and ``group`` actions, fast-failover groups
(first live bucket; ``watch_group`` is live while that group has a live bucket). Actions it does not
know are recorded in ``unknown_actions`` and in the path, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pfepo.openflow import frames
from pfepo.openflow.desired import CONTROLLER, NORMAL, Bucket, Flow, Group, Meter
from pfepo.openflow.messages import (
    EchoRequest,
    FlowMod,
    GroupMod,
    Message,
    MeterMod,
    PacketOut,
    PortStat,
    ProbeOut,
    StatsRequest,
)
from pfepo.openflow.reconcile import FlowKey, flow_key
from pfepo.telemetry import probes
from pfepo.telemetry.samples import expand


@dataclass
class Path:
    """What happened to a packet: outputs (port numbers or "normal"/"controller") and final headers."""

    outputs: list[object] = field(default_factory=list)
    headers: dict[str, object] = field(default_factory=dict)
    flow: Flow | None = None
    groups: list[tuple[int, str]] = field(default_factory=list)  # (group id, chosen bucket label)
    meter: int | None = None
    unknown: list[tuple] = field(default_factory=list)
    dropped: str | None = None


def _norm(v: object) -> object:
    return v.lower() if isinstance(v, str) else v


class FakeSwitch:
    def __init__(self, dpid: int, ports: Mapping[int, bool] | None = None):
        self.dpid = dpid
        self.ports: dict[int, bool] = dict(ports or {})
        self.flows: dict[FlowKey, Flow] = {}
        self.groups: dict[int, Group] = {}
        self.meters: dict[int, Meter] = {}
        self.counters: dict[int, PortStat] = {}
        self.errors: list[str] = []
        self.unknown_actions: list[tuple] = []
        self.packet_outs: list[PacketOut] = []
        self.mods: list[Message] = []  # every mod applied or rejected, in order
        self.conntrack: dict[tuple, int] = {}  # connection -> ct_mark (the affinity pipeline's pin)

    # --- applying messages -----------------------------------------------------------------------------
    def apply(self, msg: Message):
        """Apply one message; returns the reply body for requests (None for mods)."""
        if isinstance(msg, FlowMod | GroupMod | MeterMod):
            self.mods.append(msg)
        if isinstance(msg, FlowMod):
            return self._flow_mod(msg)
        if isinstance(msg, GroupMod):
            return self._group_mod(msg)
        if isinstance(msg, MeterMod):
            return self._meter_mod(msg)
        if isinstance(msg, StatsRequest):
            return self.stats(msg.kind)
        if isinstance(msg, EchoRequest):
            return msg.data
        if isinstance(msg, PacketOut):
            self.packet_outs.append(msg)
            return None
        raise TypeError(f"fake switch cannot apply {msg!r}")

    def _flow_mod(self, msg: FlowMod) -> None:
        f = msg.flow
        if msg.command == "delete_strict":
            self.flows.pop(flow_key(f), None)
            return
        if f.group is not None and f.group not in self.groups:
            self.errors.append(f"BAD_OUT_GROUP: flow prio {f.priority} references missing group {f.group}")
            return
        if f.meter is not None and f.meter not in self.meters:
            self.errors.append(f"UNKNOWN_METER: flow prio {f.priority} references missing meter {f.meter}")
            return
        self.flows[flow_key(f)] = f

    def _group_mod(self, msg: GroupMod) -> None:
        gid = msg.group.group_id
        if msg.command == "add" and gid in self.groups:
            self.errors.append(f"GROUP_EXISTS: ADD of group {gid}")
            return
        if msg.command == "modify" and gid not in self.groups:
            self.errors.append(f"UNKNOWN_GROUP: MODIFY of group {gid}")
            return
        self.groups[gid] = msg.group

    def _meter_mod(self, msg: MeterMod) -> None:
        mid = msg.meter.meter_id
        if msg.command == "add" and mid in self.meters:
            self.errors.append(f"METER_EXISTS: ADD of meter {mid}")
            return
        if msg.command == "modify" and mid not in self.meters:
            self.errors.append(f"UNKNOWN_METER: MODIFY of meter {mid}")
            return
        self.meters[mid] = msg.meter

    def stats(self, kind: str):
        if kind == "port_desc":
            return sorted(self.ports.items())
        if kind == "port_stats":
            return [self.counters.get(p, PortStat(p, 0, 0)) for p in sorted(self.ports)]
        if kind == "meter_config":
            return dict(self.meters)
        if kind == "group_desc":
            return dict(self.groups)
        if kind == "flow_stats":
            return list(self.flows.values())
        raise ValueError(f"unknown stats request {kind!r}")

    # --- what an operator does behind our back (ovs-ofctl) ---------------------------------------------
    def del_flows(self) -> None:
        self.flows.clear()

    def del_groups(self) -> None:
        """Like ``ovs-ofctl del-groups``: groups go, and so do the flows that use them."""
        self.groups.clear()
        self.flows = {k: f for k, f in self.flows.items() if f.group is None}

    def mod_group(self, group: Group) -> None:
        self.groups[group.group_id] = group

    # --- forwarding ------------------------------------------------------------------------------------
    def lookup(self, headers: Mapping[str, object], table_id: int = 0) -> Flow | None:
        best = None
        for (table, _prio, _m), f in self.flows.items():
            if table != table_id:
                continue
            if all(_norm(headers.get(k)) == _norm(v) for k, v in f.match):
                if best is None or f.priority > best.priority:
                    best = f
        return best

    def forward(self, headers: Mapping[str, object],
                choose: Callable[[Group, list[Bucket]], Bucket] | None = None) -> Path:
        """Where a packet with ``headers`` (incl. ``in_port``) goes. ``choose`` picks a SELECT bucket among
        the live ones (weight > 0 and watch port up); default: the first live bucket."""
        path = Path(headers=dict(headers))
        flow = self.lookup(path.headers)
        path.flow = flow
        if flow is None:
            path.dropped = "table miss without a flow"
            return path
        self._run(flow, path, choose, 0)
        return path

    def _run(self, flow: Flow, path: Path, choose, depth: int) -> None:
        if depth > 8:
            path.dropped = "resubmit loop"
            return
        if flow.meter is not None:
            path.meter = flow.meter
        self._actions(flow.actions, path, choose, depth)
        if flow.group is not None:
            self._group(flow.group, path, choose, depth)

    def _conn(self, h: Mapping[str, object]) -> tuple:
        ends = sorted([(h.get("ipv4_src"), h.get("tcp_src") or h.get("udp_src")),
                       (h.get("ipv4_dst"), h.get("tcp_dst") or h.get("udp_dst"))], key=str)
        return (h.get("ip_proto"), *ends)

    def _live(self, b: Bucket, kind: str) -> bool:
        if b.watch_port is not None and not self.ports.get(b.watch_port, False):
            return False
        if b.watch_group is not None:
            g = self.groups.get(b.watch_group)
            if g is None or not any(self._live(x, g.kind) for x in g.buckets):
                return False
        return kind != "select" or b.weight > 0

    def _group(self, gid: int, path: Path, choose, depth: int = 0) -> None:
        g = self.groups.get(gid)
        if g is None:
            path.dropped = f"group {gid} missing"
            return
        live = [b for b in g.buckets if self._live(b, g.kind)]
        if not live:
            path.dropped = f"group {gid} has no live bucket"
            return
        bucket = (choose or (lambda _g, bs: bs[0]))(g, live) if g.kind == "select" else live[0]
        path.groups.append((gid, bucket.label))
        self._actions(bucket.actions, path, choose, depth)

    def _goto(self, table: int, path: Path, choose, depth: int) -> None:
        flow = self.lookup(path.headers, table)
        if flow is None:
            path.dropped = f"table {table} miss"
            return
        self._run(flow, path, choose, depth + 1)

    def _actions(self, actions, path: Path, choose=None, depth: int = 0) -> None:
        for a in actions:
            if a[0] == "output":
                path.outputs.append(a[1] if a[1] in (NORMAL, CONTROLLER) else int(a[1]))
            elif a[0] == "set_field":
                path.headers[a[1]] = a[2]
            elif a[0] == "group":
                self._group(a[1], path, choose, depth)
            elif a[0] == "resubmit":
                self._goto(a[1], path, choose, depth)
            elif a[0] == "ct" and len(a) == 5:
                _, commit, _zone, table, mark = a
                key = self._conn(path.headers)
                if commit and mark is not None:
                    self.conntrack[key] = mark
                path.headers["ct_mark"] = self.conntrack.get(key, 0)
                if table is not None:
                    self._goto(table, path, choose, depth)
            else:
                path.unknown.append(tuple(a))
                self.unknown_actions.append(tuple(a))


class FakeController:
    """Plays app.py's part without os-ken, for unit tests of the pure Fabric against fake switches.

    Applies each ``Out`` like the adapter does (state first, then messages in order), lets each fake
    switch apply its messages at once and queues the replies, then feeds replies back to the Fabric one
    at a time, as the OpenFlow thread would. A state change sets ``pending``; it is pushed after the
    current reply, as app.py pushes after the current event.
    """

    def __init__(self, cfg, state=None, now: float = 1000.0):
        from collections import deque

        from pfepo.controller.state import ControllerState
        from pfepo.openflow.switch import Fabric

        self.cfg = cfg
        self.state = state or ControllerState(cfg)
        self.fabric = Fabric(cfg, self.state.bucket_weights(), self.state.bandwidth_snapshot(),
                             probe_key=b"test-probe-key-0123456789abcdef!")
        self.now = now
        self.samples: list = []
        self.events: list[tuple[str, dict]] = []
        self.rejected_probes: list[str] = []
        self.inbox: deque = deque()
        self.pending = False
        self.state.add_listener(self._changed)
        dpids = {s.name: s.dpid for s in cfg.switches}
        ports: dict[int, dict[int, bool]] = {s.dpid: {} for s in cfg.switches}
        for r in cfg.regions:
            ports[dpids[r.uplink.switch]][r.uplink.port] = True
            ports[dpids[r.switch]][1] = True  # the region switch's side of the uplink
            for e in r.endpoints:
                ports[dpids[r.switch]][e.port] = True
        self.switches = {dpid: FakeSwitch(dpid, p) for dpid, p in ports.items()}
        self.connected: set[int] = set()

    def _changed(self) -> None:
        self.pending = True

    def dpid(self, name: str) -> int:
        return next(s.dpid for s in self.cfg.switches if s.name == name)

    # --- driving ---------------------------------------------------------------------------------------
    def connect(self, *dpids: int) -> None:
        for dpid in dpids or tuple(self.switches):
            self.connected.add(dpid)
            self.state.switch_connected(dpid, True)
            self.run(self.fabric.on_connect(dpid, self.now))

    def disconnect(self, dpid: int) -> None:
        self.connected.discard(dpid)
        self.fabric.on_disconnect(dpid)
        self.state.set_sync_status(dpid, None)
        self.state.switch_connected(dpid, False)

    def tick(self, dt: float | None = None) -> None:
        self.now += self.cfg.poll_interval_s if dt is None else dt
        self.run(self.fabric.on_tick(self.now))

    def port_status(self, dpid: int, port: int, up: bool) -> None:
        self.switches[dpid].ports[port] = up
        self.run(self.fabric.on_port_status(dpid, port, up))

    def packet_in(self, dpid: int, in_port: int, data: bytes) -> None:
        self.run(self.fabric.on_packet_in(dpid, in_port, data, self.now))

    def deliver_probes(self, src: FakeSwitch, src_port: int, dst_dpid: int, dst_port: int, delay: float) -> int:
        """Carry the probes ``src`` sent out of ``src_port`` across the link, ``delay`` s later."""
        sent = [p for p in src.packet_outs if frames.ethertype(p.data) == probes.ETH_TYPE and p.port == src_port]
        src.packet_outs.clear()
        self.now += delay
        for p in sent:
            self.packet_in(dst_dpid, dst_port, p.data)
        self.now -= delay
        return len(sent)

    def run(self, out, limit: int = 10_000) -> None:
        self._apply(out)
        for _ in range(limit):
            if self.pending:
                self.pending = False
                self._apply(self.fabric.on_desired(self.state.bucket_weights(), self.state.bandwidth_snapshot()))
            elif self.inbox:
                self._apply(self._reply(*self.inbox.popleft()))
            else:
                return
        raise AssertionError("controller and switches never went quiet")

    def _reply(self, dpid: int, kind: str, body):
        f = self.fabric
        if kind == "port_desc":
            return f.on_port_desc(dpid, body)
        if kind == "port_stats":
            return f.on_port_stats(dpid, body, self.now)
        if kind == "meter_config":
            return f.on_meter_config(dpid, body)
        if kind == "group_desc":
            return f.on_group_desc(dpid, body)
        if kind == "flow_stats":
            return f.on_flow_stats(dpid, body)
        if kind == "echo":
            return f.on_echo_reply(dpid, body, self.now)
        raise AssertionError(kind)

    def _apply(self, out) -> None:
        if out is None:
            return
        out.record(self.state)
        for dpid, rates in out.switch_rates:
            self.state.set_switch_rates(dpid, rates)
        self.events.extend(out.events)
        self.samples.extend(out.samples)
        self.rejected_probes.extend(out.rejected_probes)
        self.samples.extend(expand(out.batches))
        for dpid, msg in out.msgs:
            if dpid not in self.connected:
                continue
            if isinstance(msg, ProbeOut):  # as app.py does: stamped when sent
                msg = PacketOut(msg.port, self.fabric.probe_frame(dpid, msg, self.now))
            body = self.switches[dpid].apply(msg)
            if isinstance(msg, StatsRequest):
                self.inbox.append((dpid, msg.kind, body))
            elif isinstance(msg, EchoRequest):
                self.inbox.append((dpid, "echo", body))
