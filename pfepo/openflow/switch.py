"""The pure OpenFlow side: per-datapath sync (SwitchSync) and the fabric of switches (Fabric).

Faucet's valve.py is the model: every ``on_*`` handler takes plain data and ``now`` and RETURNS what to
do (an ``Out``: messages per dpid, samples, events, observed port state and sync status). Nothing here
imports os-ken, opens sockets, sleeps or reads the clock; app.py is the thin adapter that calls these
handlers on the OpenFlow thread and sends what comes back, and tests/openflow/fakeswitch.py plays the
switch in unit tests.

Sync per switch, in OpenFlow order so a flow never references a missing meter or group:
connect -> port desc + meter config read -> meters fixed -> group desc read -> groups fixed ->
flow stats read (our cookie) -> flows fixed. Every poll reads meters, groups and flows again and repairs
drift with the same diff (reconcile.py) that a desired-state change uses.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pfepo.config import PfepoConfig
from pfepo.openflow import frames
from pfepo.openflow.desired import Flow, Group, Meter, SwitchState, switch_state
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
from pfepo.openflow.reconcile import FlowKey, flow_changes, flow_key, group_changes, meter_changes
from pfepo.telemetry import probes
from pfepo.telemetry.pollgate import PollGate
from pfepo.telemetry.ports import PortNames
from pfepo.telemetry.portstats import PortRateBatch, PortStatsBatcher
from pfepo.telemetry.rates import PortRates
from pfepo.telemetry.samples import Sample, SampleBatch

READ_BACK = ("meter_config", "group_desc", "flow_stats")
# Read-back of meters/groups/flows (the audit) runs on connect, after every change we send, and
# periodically: every poll for a small fleet, but at most AUDITS_PER_S switches a second overall (each
# switch every N / AUDITS_PER_S s, staggered) -- at hundreds of switches the read-back replies were most
# of the OpenFlow work, and a big fleet's drift needs no sub-second detection.
AUDITS_PER_S = 20.0
# Probe rounds whose echoes came back more than this above the switch's baseline RTT measured our own
# queueing (a busy controller, a congested control channel): discarded, never a latency or a loss.
SELF_DELAY_LIMIT_S = 0.02
ROUND_ECHO = b"PFPR"


@dataclass(frozen=True)
class SyncStatus:
    """What one switch holds compared with what it should hold (last read-back, not what was sent)."""

    groups: dict[int, dict[str, int]]  # desired group id -> {label: weight} as read back
    meters: dict[int, Meter]
    groups_ok: bool
    meters_ok: bool
    flows_ok: bool

    @property
    def in_sync(self) -> bool:
        return self.groups_ok and self.meters_ok and self.flows_ok


@dataclass
class Out:
    """Everything a handler wants done; the adapter applies it in this order: state, then messages."""

    msgs: list[tuple[int, Message]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    batches: list[SampleBatch] = field(default_factory=list)  # columnar port rates, one per stats reply
    events: list[tuple[str, dict]] = field(default_factory=list)
    ports: list[tuple[int, int, bool]] = field(default_factory=list)  # (dpid, port, up)
    rates: list[tuple[int, int, PortRates]] = field(default_factory=list)
    switch_rates: list[tuple[int, PortRateBatch]] = field(default_factory=list)  # a whole reply's ports
    status: dict[int, SyncStatus] = field(default_factory=dict)
    rejected_probes: list[str] = field(default_factory=list)  # reasons probe frames were ignored

    def send(self, dpid: int, msg: Message) -> None:
        self.msgs.append((dpid, msg))

    def record(self, state) -> None:
        """Apply what the switches reported to ``state`` (a ControllerState): port state, rates, sync status.

        May notify state listeners (an uplink went down): the adapter then pushes the new desired state.
        """
        for dpid, port, up in self.ports:
            state.set_port_up(dpid, port, up)
        for dpid, port, rates in self.rates:
            state.set_port_rates(dpid, port, rates)
        for dpid, status in self.status.items():
            state.set_sync_status(dpid, status)

    def to(self, dpid: int) -> list[Message]:
        return [m for d, m in self.msgs if d == dpid]


class SwitchSync:
    """One connected datapath: what it should hold, what it reported, and the connect sequence.

    ``have_*`` is the last read-back plus what was sent since, so a change right after a change never
    re-ADDs a group the switch already has. A read-back requested before our latest mods of its kind is
    stale (replies on one connection come in order) and is ignored, so it cannot undo what we just sent.
    """

    def __init__(self, dpid: int, name: str, want: SwitchState):
        self.dpid, self.name, self.want = dpid, name, want
        self.seen_meters: dict[int, Meter] | None = None
        self.seen_groups: dict[int, Group] | None = None
        self.seen_flows: dict[FlowKey, Flow] | None = None
        self.have_meters: dict[int, Meter] = {}
        self.have_groups: dict[int, Group] = {}
        self.have_flows: dict[FlowKey, Flow] = {}
        self.meters_ready = self.groups_ready = self.flows_ready = False
        self._epoch = dict.fromkeys(READ_BACK, 0)
        self._asked: dict[str, deque[int]] = {k: deque(maxlen=64) for k in READ_BACK}
        self._ok = {"meters": False, "groups": False, "flows": False}  # last read-back matched, nothing since
        self._reported: SyncStatus | None = None

    # --- requests and stale replies ------------------------------------------------------------------
    def ask(self, kind: str, out: Out) -> None:
        if kind in self._asked:
            self._asked[kind].append(self._epoch[kind])
        out.send(self.dpid, StatsRequest(kind))

    def _stale(self, kind: str) -> bool:
        asked = self._asked[kind]
        epoch = asked.popleft() if asked else self._epoch[kind]
        return epoch < self._epoch[kind]

    def _sent(self, kind: str, out: Out) -> None:
        """Mods of ``kind`` went out: replies to earlier requests are stale; read back what applies now."""
        self._epoch[kind] += 1
        self.ask(kind, out)

    # --- the three reconciled tables ----------------------------------------------------------------
    def _settle(self, table: str, changes: list, read_back: bool, was_ready: bool, out: Out) -> None:
        """Track whether ``table`` matches: a read-back says so; mods sent since make it unconfirmed.

        A read-back that finds differences after the table was in step means someone changed the switch
        behind our back: reported as a ``drift_repaired`` event.
        """
        if read_back:
            self._ok[table] = not changes
            if changes and was_ready:
                out.events.append(("drift_repaired", {"switch": self.name, "table": table,
                                                      "changes": len(changes)}))
        elif changes:
            self._ok[table] = False

    def _fix_meters(self, out: Out, read_back: bool = False) -> None:
        changes = meter_changes(self.want.meters, self.have_meters)
        for command, meter in changes:
            out.send(self.dpid, MeterMod(meter, command))
            self.have_meters[meter.meter_id] = meter
        if changes:
            self._sent("meter_config", out)
        self._settle("meters", changes, read_back, self.meters_ready, out)

    def _fix_groups(self, out: Out, read_back: bool = False) -> None:
        changes = group_changes(self.want.groups, self.have_groups)
        for ch in changes:
            out.send(self.dpid, GroupMod(ch.group, ch.command))
            self.have_groups[ch.group.group_id] = ch.group
        if changes:
            self._sent("group_desc", out)
        self._settle("groups", changes, read_back, self.groups_ready, out)

    def _fix_flows(self, out: Out, read_back: bool = False) -> None:
        changes = flow_changes(self.want.flows, self.have_flows.values())
        for command, flow in changes:
            out.send(self.dpid, FlowMod(flow, command))
            if command == "add":
                self.have_flows[flow_key(flow)] = flow
            else:
                self.have_flows.pop(flow_key(flow), None)
        if changes:
            self._sent("flow_stats", out)
        self._settle("flows", changes, read_back, self.flows_ready, out)

    # --- handlers ------------------------------------------------------------------------------------
    def on_connect(self, out: Out) -> None:
        out.send(self.dpid, StatsRequest("port_desc"))
        self.ask("meter_config", out)

    def on_meter_config(self, meters: Mapping[int, Meter], out: Out) -> None:
        if self._stale("meter_config"):
            return
        self.seen_meters = dict(meters)
        self.have_meters = dict(meters)
        self._fix_meters(out, read_back=True)
        if not self.meters_ready:
            self.meters_ready = True
            self.ask("group_desc", out)

    def on_group_desc(self, groups: Mapping[int, Group], out: Out) -> None:
        if self._stale("group_desc") or not self.meters_ready:
            return
        self.seen_groups = dict(groups)
        self.have_groups = dict(groups)
        self._fix_groups(out, read_back=True)
        if not self.groups_ready:
            self.groups_ready = True
            self.ask("flow_stats", out)

    def on_flow_stats(self, flows: Iterable[Flow], out: Out) -> None:
        if self._stale("flow_stats") or not self.groups_ready:
            return
        self.seen_flows = {flow_key(f): f for f in flows}
        self.have_flows = dict(self.seen_flows)
        self._fix_flows(out, read_back=True)
        self.flows_ready = True

    def on_desired(self, want: SwitchState, out: Out) -> None:
        """New desired state: change at once whatever has passed its step of the connect sequence."""
        self.want = want
        if self.meters_ready:
            self._fix_meters(out)
        if self.groups_ready:
            self._fix_groups(out)
        if self.flows_ready:
            self._fix_flows(out)

    def on_poll(self, out: Out) -> None:
        out.send(self.dpid, StatsRequest("port_stats"))

    def on_audit(self, out: Out) -> None:
        """Read meters, groups and flows back (drift repair uses the same diff as a change)."""
        for kind in READ_BACK:
            self.ask(kind, out)

    def status(self) -> SyncStatus:
        """Cheap (no diff): the diffs already ran when the read-back or the desired state arrived."""
        groups = self.seen_groups or {}
        meters = self.seen_meters or {}
        return SyncStatus(
            groups={gid: groups[gid].weights() for gid in self.want.groups if gid in groups},
            meters={mid: meters[mid] for mid in self.want.meters if mid in meters},
            groups_ok=self._ok["groups"], meters_ok=self._ok["meters"], flows_ok=self._ok["flows"],
        )

    def status_if_changed(self) -> SyncStatus | None:
        st = self.status()
        if st == self._reported:
            return None
        self._reported = st
        return st


class Fabric:
    """All switches of the config: desired state per switch, syncs of connected ones, probes and ARP."""

    def __init__(self, cfg: PfepoConfig, weights: Mapping[str, Mapping[str, int]] | None = None,
                 bandwidth: Mapping[str, Mapping[str, float | None]] | None = None,
                 evicted: Mapping[str, frozenset[str]] | None = None, probe_key: bytes = b"", slots: int = 1):
        """``probe_key``: the secret that authenticates probe frames (the daemon passes a random one).
        ``slots``: ticks per poll interval; each switch is polled on its own slot, so a large fleet's
        requests and replies are spread over the interval instead of arriving in one burst (and no single
        tick handler holds the event thread for long)."""
        self.cfg = cfg
        self.probe_key = probe_key
        self.slots = max(1, slots)
        self._tick = 0
        self.names = {s.dpid: s.name for s in cfg.switches}
        self.syncs: dict[int, SwitchSync] = {}
        self._want: dict[int, tuple[tuple, SwitchState]] = {}
        roles: dict[str, tuple[list[str], list[str]]] = {}
        for svc in cfg.services:
            for r in cfg.regions:
                if r.name in svc.weights:
                    roles.setdefault(r.uplink.switch, ([], []))[0].append(svc.name)
                    roles.setdefault(r.switch, ([], []))[1].append(svc.name)
        self._roles = {k: (tuple(dict.fromkeys(a)), tuple(dict.fromkeys(b))) for k, (a, b) in roles.items()}
        # the only switches whose desired state can change (ingress or region switches of a service)
        self._role_dpids = tuple(s.dpid for s in cfg.switches if s.name in self._roles)
        self.weights: Mapping[str, Mapping[str, int]] = weights or {}
        self.bandwidth: Mapping[str, Mapping[str, float | None]] = bandwidth or {}
        self.evicted: Mapping[str, frozenset[str]] = evicted or {}  # regions emptied per service (affinity)
        self.port_names = PortNames(cfg)
        self.batcher = PortStatsBatcher(cfg, self.port_names, max_gap_s=max(30.0, 10 * cfg.poll_interval_s))
        self.gate = PollGate(cfg.poll_interval_s, stale_after_s=max(10.0, 10 * cfg.poll_interval_s))
        self._next_audit: dict[int, float] = {}
        self.audit_s = max(cfg.poll_interval_s, len(cfg.switches) / AUDITS_PER_S)  # per switch
        self._round_switches: set[int] = set()
        self._round_excess: dict[int, float] = {}
        self._round_t = 0.0
        self.probe_rounds_discarded = 0
        self.vips = {s.vip: s for s in cfg.services}
        self.probes = probes.ProbeTracker(timeout_s=cfg.probes.timeout_s)
        self.echo = probes.EchoRtt()
        # Probed links, per direction: (src dpid, src port, dst dpid). The region side's port is learnt
        # from the first forward probe that arrives there (the config only names the client-side port).
        dpids = {s.name: s.dpid for s in cfg.switches}
        self.links: dict[str, tuple[int, int | None, int]] = {}
        self.link_ids: dict[int, str] = {}
        for i, r in enumerate(cfg.regions):
            core, edge = dpids[r.uplink.switch], dpids[r.switch]
            self.links[f"uplink:{r.name}>"] = (core, r.uplink.port, edge)
            self.links[f"uplink:{r.name}<"] = (edge, None, core)
            self.link_ids[2 * i], self.link_ids[2 * i + 1] = f"uplink:{r.name}>", f"uplink:{r.name}<"
        self._link_index = {v: k for k, v in self.link_ids.items()}

    @property
    def failover_dpids(self) -> tuple[int, ...]:
        """The switches whose port events move traffic: ingress (uplink) and region switches of a service."""
        return self._role_dpids

    def _inputs(self, dpid: int) -> tuple:
        """What this switch's desired state depends on besides the config: the weights and evicted regions of
        the services it is the ingress of, the bandwidth of those it serves a region of (``switch_state``).
        Most switches have neither: their desired state never changes."""
        ingress, regional = self._roles.get(self.names[dpid], ((), ()))
        return (tuple(tuple(sorted(self.weights.get(svc, {}).items())) for svc in ingress),
                tuple(tuple(sorted(self.evicted.get(svc, ()))) for svc in ingress),
                tuple(tuple(sorted(self.bandwidth.get(svc, {}).items())) for svc in regional))

    def want(self, dpid: int) -> SwitchState:
        """Desired state of ``dpid``, rebuilt only when its inputs changed (a change costs O(switches it
        touches), not O(all switches) -- the rebuild for every switch on every change was O(N^2) per poll)."""
        key = self._inputs(dpid)
        hit = self._want.get(dpid)
        if hit is not None and hit[0] == key:
            return hit[1]
        st = switch_state(self.cfg, self.names[dpid], self.weights, self.bandwidth, self.evicted)
        self._want[dpid] = (key, st)
        return st

    def _status(self, sync: SwitchSync, out: Out) -> Out:
        st = sync.status_if_changed()
        if st is not None:
            out.status[sync.dpid] = st
        return out

    # --- connection ----------------------------------------------------------------------------------
    def on_connect(self, dpid: int, now: float) -> Out | None:
        """A switch finished the handshake; None when it is not in the config (it is left alone)."""
        name = self.names.get(dpid)
        if name is None:
            return None
        sync = self.syncs[dpid] = SwitchSync(dpid, name, self.want(dpid))
        for direction, (src, _port, dst) in self.links.items():  # a region switch may come back rewired
            if direction.endswith("<") and src == dpid:
                self.links[direction] = (src, None, dst)
        # the connect sequence reads everything back; the periodic audits are staggered across switches
        # (a small fleet is audited on every poll, as if there were no audit interval at all)
        stagger = (dpid * 0x9E3779B1 % 1000) / 1000 if self.audit_s > self.cfg.poll_interval_s else 0.0
        self._next_audit[dpid] = now + self.audit_s * stagger
        out = Out()
        sync.on_connect(out)
        return self._status(sync, out)

    def on_disconnect(self, dpid: int) -> bool:
        self.gate.forget(dpid)
        self.batcher.forget(dpid)
        self._next_audit.pop(dpid, None)
        return self.syncs.pop(dpid, None) is not None

    # --- read-back -----------------------------------------------------------------------------------
    def on_meter_config(self, dpid: int, meters: Mapping[int, Meter]) -> Out:
        out = Out()
        if sync := self.syncs.get(dpid):
            sync.on_meter_config(meters, out)
            self._status(sync, out)
        return out

    def on_group_desc(self, dpid: int, groups: Mapping[int, Group]) -> Out:
        out = Out()
        if sync := self.syncs.get(dpid):
            sync.on_group_desc(groups, out)
            self._status(sync, out)
        return out

    def on_flow_stats(self, dpid: int, flows: Iterable[Flow]) -> Out:
        out = Out()
        if sync := self.syncs.get(dpid):
            sync.on_flow_stats(flows, out)
            self._status(sync, out)
        return out

    def on_desired(self, weights: Mapping[str, Mapping[str, int]],
                   bandwidth: Mapping[str, Mapping[str, float | None]],
                   evicted: Mapping[str, frozenset[str]] | None = None) -> Out:
        """Bucket weights, bandwidth or evicted regions changed: every connected switch gets the differing
        mods now."""
        self.weights, self.bandwidth = weights, bandwidth
        if evicted is not None:
            self.evicted = evicted
        out = Out()
        for dpid in self._role_dpids:  # a plain switch's desired state never changes: not O(all switches)
            sync = self.syncs.get(dpid)
            if sync is None:
                continue
            want = self.want(dpid)
            if want is sync.want:
                continue  # nothing this switch holds depends on what changed
            sync.on_desired(want, out)
            self._status(sync, out)
        return out

    # --- ports ---------------------------------------------------------------------------------------
    def on_port_desc(self, dpid: int, ports: Iterable[tuple[int, bool]]) -> Out:
        out = Out()
        if dpid in self.names:
            out.ports.extend((dpid, no, up) for no, up in ports)
        return out

    def on_port_status(self, dpid: int, port: int, up: bool) -> Out:
        out = Out()
        name = self.names.get(dpid)
        if name is not None:
            out.ports.append((dpid, port, up))
            out.events.append(("port_status", {"switch": name, "port": port, "up": up}))
        return out

    def on_port_stats(self, dpid: int, stats: Iterable[PortStat], now: float, handled: float | None = None) -> Out:
        """Counters -> rates of every port at once (none on the first reading, a reset or a gap) -> one
        columnar batch. ``now``: when the reply arrived; ``handled``: now (frees the switch for its next poll).
        """
        out = Out()
        name = self.names.get(dpid)
        if name is None:
            return out
        self.gate.handled(dpid, now if handled is None else handled)
        got = self.batcher.reply(dpid, name, now, stats)
        if got is not None:
            self.gate.reply(len(got.batch))
            out.switch_rates.append((dpid, got))  # kept as arrays: no PortRates object per port
            out.batches.append(got.batch)
        return out

    # --- periodic work, echo and probes -------------------------------------------------------------
    def on_tick(self, now: float, hold_polls: bool = False, cpu_s: float | None = None,
                wake_lags: list[float] = (), history: tuple[int, int] | None = None) -> Out:
        """Every poll interval / ``slots``: poll this slot's switches whose last reply was handled
        (backpressure), time the control channel with the poll, audit the switches whose turn it is;
        once per interval report and send probes. ``hold_polls``: a later stage (history) is behind:
        no counters are asked for this tick (the effective interval grows; nothing is dropped).
        ``cpu_s``: the process's CPU time so far, ``wake_lags``: how late the poll thread woke since the last
        tick; past their budgets, polls are stretched (PollGate.load). ``history``: (samples queued in the
        history writer, the most it may hold with the replies in flight): polls that would pass it wait for
        a later tick, and a tick polls at most 1.5x its slot's share (PollGate.pick)."""
        out = Out()
        if cpu_s is not None:
            self.gate.load(now, cpu_s, wake_lags)
        # Echo and probes first: their replies then come back ahead of the stats replies, so the time a
        # probe waits in our own event queue (counted as link latency) stays small.
        audit_s = self.audit_s
        slot = self._tick % self.slots
        self._tick += 1
        # Stretched (CPU budget), a switch may go on any slot once its longer interval passed, so the
        # interval stretches smoothly, not in whole intervals.
        stretched = self.gate.stretch > 1.0 or self.gate.behind
        due = []
        for dpid in self.syncs:
            own = self.slots == 1 or (dpid * 0x9E3779B1 >> 7) % self.slots == slot
            if (own or stretched) and self.gate.due(dpid, now, count_skip=own):
                due.append(dpid)
        if history is not None:
            self.gate.history(*history)
        if hold_polls:
            self.gate.hold(due, now)
            due = []
        else:
            due = self.gate.pick(due, now, -(-3 * len(self.syncs) // (2 * self.slots)) if self.slots > 1 else None)
        for dpid in due:
            out.send(dpid, EchoRequest(struct.pack("!d", now)))
        if self.cfg.probes.enabled and slot == 0:
            self._probe_round(now, out)
        for dpid in due:
            self.syncs[dpid].on_poll(out)
            self.gate.sent(dpid, now)
        for dpid, sync in self.syncs.items():
            if now >= self._next_audit.get(dpid, now) - 0.05 * self.cfg.poll_interval_s and sync.flows_ready:
                sync.on_audit(out)
                self._next_audit[dpid] = now + audit_s
        return out

    def poll_status(self) -> dict:
        return self.gate.status()

    def on_echo_reply(self, dpid: int, data: bytes, now: float, sent_at: float | None = None) -> Out:
        """An echo came back. ``sent_at``: when the request left our socket, if the adapter knows (wire
        time); else the time stamped in its payload when it was built."""
        round_echo = data[:4] == ROUND_ECHO
        if round_echo:
            data = data[4:]
        if len(data) >= 8:
            (t_sent,) = struct.unpack("!d", data[:8])
            rtt = now - (t_sent if sent_at is None else sent_at)
            if 0 <= rtt < 60:
                if round_echo and t_sent == self._round_t:  # this probe round's own control-channel delay
                    self._round_excess[dpid] = self.echo.excess(dpid, rtt, now)
                self.echo.update(dpid, rtt, now)
        return Out()

    def _round_trusted(self) -> bool:
        """The last probe round measured the links, not us: every echo sent with it came back, none more
        than SELF_DELAY_LIMIT_S above its switch's baseline RTT."""
        return all(self._round_excess.get(d, math.inf) < SELF_DELAY_LIMIT_S for d in self._round_switches)

    def _probe_round(self, now: float, out: Out) -> None:
        """Report what the last round measured, then send this round's probes.

        While polls are being stretched (overloaded), probes that time out are discarded rather than lost
        and no new probes go out: their answers would wait in our own queues and measure us.
        """
        overloaded = self.gate.overloaded()
        trusted = not overloaded and self._round_trusted()
        self.probe_rounds_discarded += not trusted
        out.samples.extend(probes.link_samples(self.probes.collect(now, trusted=trusted), now))
        self._round_switches, self._round_excess, self._round_t = set(), {}, now
        if overloaded:
            return
        for direction, (src, port, dst) in self.links.items():
            a, b = self.syncs.get(src), self.syncs.get(dst)
            # Both ends must hold the probe flow, or a probe sent during connect would count as lost.
            if a is None or b is None or port is None or not (a.flows_ready and b.flows_ready):
                continue
            for d in (src, dst):  # an echo rides with the probes: it times our own part of their trip
                if d not in self._round_switches:
                    self._round_switches.add(d)
                    out.send(d, EchoRequest(ROUND_ECHO + struct.pack("!d", now)))
            for _ in range(self.cfg.probes.per_interval):
                seq = self.probes.next_seq(direction, now)
                out.send(src, ProbeOut(port, self._link_index[direction], seq))

    def probe_left_socket(self, seq: int, t_wire: float) -> None:
        """The adapter saw probe ``seq`` leave the socket at ``t_wire``: its latency is timed from there."""
        self.probes.left_socket(seq, t_wire)

    def probe_frame(self, dpid: int, probe: ProbeOut, t_out: float) -> bytes:
        """The authenticated frame of ``probe``, stamped with the time the adapter sends it."""
        self.probes.sent(probe.seq, t_out)
        payload = probes.encode(dpid, probe.port, probe.link_id, probe.seq, t_out, self.probe_key)
        return frames.probe_frame(payload, probes.ETH_TYPE)

    def on_packet_in(self, dpid: int, in_port: int, data: bytes, now: float, trusted: bool = True) -> Out:
        """A probe coming back, or an ARP request for a VIP (answered from the controller).

        ``now``: when the packet-in left the socket; ``trusted=False`` when the adapter saw it wait in our
        own queues (the probe then counts neither as latency nor as loss).
        """
        out = Out()
        etype = frames.ethertype(data)
        if etype == probes.ETH_TYPE:
            reason = self._probe_in(dpid, in_port, data[14:], now, trusted and not self.gate.overloaded())
            if reason is not None:
                out.rejected_probes.append(reason)
            return out
        req = frames.parse_arp(data)
        if req is None or req[0] != frames.ARP_REQUEST or req[4] not in self.vips:
            return out
        svc = self.vips[req[4]]
        out.send(dpid, PacketOut(in_port, frames.arp_reply(req, svc.vip, svc.vip_mac)))
        return out

    def _expected_in_port(self, direction: str) -> int | None:
        """The port a probe of ``direction`` must arrive on: the link's port at the receiving end."""
        other = direction[:-1] + ("<" if direction.endswith(">") else ">")
        return self.links[other][1]  # None until learnt (region side)

    def _probe_in(self, dpid: int, in_port: int, payload: bytes, now: float,
                  trusted: bool = True) -> str | None:
        """Account an authentic probe; return why a frame was rejected (None when accepted)."""
        got = probes.verify(payload, self.probe_key)
        if isinstance(got, str):
            return got
        src_dpid, src_port, link_id, seq, t_out = got
        direction = self.link_ids.get(link_id)
        if direction is None:
            return "unknown_link"
        src, port, dst = self.links[direction]
        if (dst, src) != (dpid, src_dpid) or port != src_port:
            return "wrong_switch"
        expected = self._expected_in_port(direction)
        if expected is not None and in_port != expected:
            return "wrong_port"
        if not now - self.cfg.probes.timeout_s <= t_out <= now + 1.0:
            return "outside_window"
        if not self.probes.expects(seq, direction, t_out):
            return "replay"
        if expected is None:  # first authentic forward probe: the region side's port of this link
            rev = direction[:-1] + "<"
            rsrc, _none, rdst = self.links[rev]
            self.links[rev] = (rsrc, in_port, rdst)
        self.probes.received(seq, now, self.echo.get(src_dpid), self.echo.get(dpid), trusted)
        return None
