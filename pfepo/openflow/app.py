"""The os-ken application: a thin adapter between switches and the pure Fabric (switch.py).

Each handler turns an os-ken event into plain data, calls the Fabric with the time, applies what comes
back to ControllerState and sends the messages (ofmsg.to_osken). It decides nothing itself.

One owner of switch I/O: every send happens on this app's event thread. The poll thread and state
changes (REST override, decision loop) only post events here and never block on a switch.

Supervised: os-ken's native hub ends the app's event loop silently on any handler exception, so every
handler is wrapped by ``guarded`` (traceback logged, counted in pfepo_openflow_handler_errors_total, the
loop goes on), and a Watchdog lets /api/v1/health answer 503 if events stop being handled.
"""

from __future__ import annotations

import collections
import functools
import gc
import logging
import threading
import time
from typing import TYPE_CHECKING

from os_ken.base import app_manager
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp

from pfepo.openflow import gcpause, ioloop, ofmsg
from pfepo.openflow.lanes import TwoLaneQueue
from pfepo.openflow.messages import (
    EchoRequest,
    FlowMod,
    GroupMod,
    Message,
    MeterMod,
    PacketOut,
    ProbeOut,
    RoleRequest,
    StatsRequest,
    allowed_as,
)
from pfepo.openflow.switch import Fabric, Out
from pfepo.openflow.watchdog import Watchdog
from pfepo.openflow.wiretime import WireSocket

if TYPE_CHECKING:
    from pfepo.daemon import Runtime

log = logging.getLogger("pfepo.openflow")

OUTBOX_MAX = 10_000  # messages per switch waiting for its connection; beyond, dropped and counted


class EventTick(event.EventBase):
    """Posted by the poll thread every ``poll_interval_s``: read back, poll stats, send probes."""


class EventRolesChanged(event.EventBase):
    """The cluster agent (pfepo.cluster.agent) saw new switch owners: send role requests."""


class EventDesiredChanged(event.EventBase):
    """Posted when desired weights/bandwidth changed (REST, decision loop, port state)."""


# Failover first: these jump ahead of stats replies, probes and ticks in the event queue (lanes.py);
# a role change too (a handover's OFPT_ROLE_REQUEST; also never dropped by a full normal lane).
URGENT = (ofp_event.EventOFPPortStatus, EventDesiredChanged, EventRolesChanged)
# While sending this many read-only requests in a row, look for an urgent event between every chunk.
URGENT_CHECK_EVERY = 16
_REQUESTS = (StatsRequest, EchoRequest, ProbeOut)


def _failover_event(item) -> bool:
    return isinstance(item[0], (ofp_event.EventOFPPortStatus, EventDesiredChanged))


# A probe/echo that waited longer than this in our own queues measured us, not the link: untrusted.
PROBE_QUEUE_LIMIT_S = 0.05


def guarded(fn):
    """Run a handler so that an exception is logged and counted and the event loop goes on."""

    @functools.wraps(fn)
    def handler(self: PfepoApp, ev) -> None:
        try:
            fn(self, ev)
        except Exception:
            self._failed(fn.__name__, ev)
        try:
            self._after_event(ev)
        except Exception:
            self._failed("after_event", ev)

    handler.pfepo_guarded = True
    return handler


class PfepoApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, pfepo: Runtime | None = None, **kwargs):
        """``pfepo``: the daemon's Runtime, passed by AppManager.instantiate_apps like any os-ken context."""
        super().__init__(*args, **kwargs)
        ofmsg.install_fast_port_stats()  # port-stats replies as one array, not an object per port
        ioloop.install()  # one selector thread serves every switch socket, not two threads per switch
        if pfepo is None:
            raise RuntimeError("PfepoApp needs the daemon Runtime: instantiate_apps(..., pfepo=runtime)")
        self.rt = pfepo
        self.cfg = pfepo.cfg
        self.state = pfepo.state
        # Fleets past ~40 switches are polled in up to 10 slots per interval (see Fabric).
        self.fabric = Fabric(self.cfg, self.state.bucket_weights(), self.state.bandwidth_snapshot(),
                             self.state.evicted_snapshot(), probe_key=pfepo.probe_key,
                             slots=max(1, min(10, len(self.cfg.switches) // 20)))
        ioloop.set_priority(self.fabric.failover_dpids)  # their sockets are read first (failover first)
        # Polling backpressure bounds what can be outstanding per switch (a stats reply, an echo, a few
        # read-backs, probes): size the normal lane for that, so receive threads do not block on it.
        self.events = TwoLaneQueue(maxsize=256 + 8 * len(self.cfg.switches))
        pfepo.metrics.add_collector(self._metric_families)
        self.datapaths: dict[int, object] = {}
        self._multipart: dict[tuple[int, int], list] = {}
        self._outbox: dict[int, collections.deque] = {}  # per dpid: built messages not yet sent, in order
        self._backlog: set[int] = set()  # dpids whose outbox still holds messages (send queue was full)
        # Probes handed to os-ken, (dpid, xid, seq, when), until their wire send time is known (wiretime.py).
        self._probes_in_flight: collections.deque = collections.deque(maxlen=4096)
        self.watchdog = Watchdog(stall_s=max(5.0, 10 * self.cfg.poll_interval_s))
        self._desired_pending = threading.Event()
        self._wake_lags: collections.deque[float] = collections.deque(maxlen=256)  # poll thread -> ticks
        # per uplink port-status: (s from the socket to its handler, s from there to the GroupMods queued
        # for sending, s from the socket to the event queue), the daemon's own part of failover
        self.port_status_timing: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=50)
        self._in_urgent = False  # handling urgent events from inside _apply (never nested twice)
        self._handler_took: dict[str, collections.deque] = {}  # event type -> (wall s, CPU s) per event, last 200
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self.roles: dict[int, tuple[str, int]] = {}  # cluster only: dpid -> (role, generation) requested
        self.sends_refused_as_slave = 0
        # cluster only: dpid -> (generation, reason) of a MASTER claim the switch refused (a stale generation:
        # another controller claimed it with a newer one); cleared when the cluster agent's role for it changes
        self.role_refusals: dict[int, tuple[int, str]] = {}
        self.state.add_listener(self._on_state_change)
        pfepo.app = self

    def start(self):
        self.gc = gcpause.install()  # every garbage collection is timed (a full one stops every thread)
        self.refreezer = gcpause.Refreezer()  # freeze what switch connections left alive, once they settle
        t = super().start()
        self._poller = hub.spawn(self._poll_loop)
        self.threads.append(self._poller)
        return t

    def stop(self):
        self._stop.set()
        super().stop()

    # --- supervision -----------------------------------------------------------------------------------
    def _failed(self, name: str, ev) -> None:
        self.rt.metrics.handler_errors.labels(name).inc()
        log.exception("OpenFlow handler %s failed on %s; the event loop goes on", name, type(ev).__name__)

    def _after_event(self, ev) -> None:
        dp = getattr(getattr(ev, "msg", None), "datapath", None) or getattr(ev, "datapath", None)
        if dp is not None and dp.id in self.datapaths:
            self.watchdog.switch_event(dp.id, time.monotonic())
        if self._desired_pending.is_set():
            self._push_desired()
        for dpid in list(self._backlog):  # only switches whose send queue was full: not O(switches) per event
            self._flush(dpid)

    @staticmethod
    def _arrived(ev) -> float:
        return getattr(ev, "pfepo_received", None) or time.time()

    def _post(self, ev) -> bool:
        """Queue an event for this app without ever blocking the caller; False if the queue is full.

        os-ken's own send_event blocks on a full queue, which would stall a REST request or the
        decision loop behind a slow switch.
        """
        return self.events.put((ev, None), block=False, urgent=isinstance(ev, URGENT))

    def _send_event(self, ev, state):
        """os-ken delivers every switch message here, on that connection's receive thread: stamp the
        arrival time there (probe and echo timings then exclude our own event queue), then queue it in
        its lane (port status ahead of everything else)."""
        now = time.time()
        rx = getattr(getattr(getattr(getattr(ev, "msg", None), "datapath", None), "socket", None), "last_rx", None)
        ev.pfepo_received = rx if rx is not None and rx <= now else now  # kernel arrival time when known
        ev.pfepo_queued = now  # when the I/O thread had read and parsed it
        self.events.put((ev, state), urgent=isinstance(ev, URGENT))

    def _event_loop(self):
        """os-ken's loop, on the two-lane queue (no semaphore: the lanes bound themselves)."""
        while self.is_active or not self.events.empty():
            ev, state = self.events.get()
            if ev == self._event_stop:
                continue
            self._handle(ev, state)

    def _handle(self, ev, state) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        for handler in self.get_handlers(ev, state):
            try:
                handler(ev)
            except hub.TaskExit:
                raise
            except Exception:  # handlers are guarded; this is the last line
                log.exception("unguarded handler %s failed", getattr(handler, "__name__", handler))
        # what holds the event thread (an urgent event waits for the one in hand): last 200 per type
        took = self._handler_took.get(type(ev).__name__)
        if took is None:
            took = self._handler_took[type(ev).__name__] = collections.deque(maxlen=200)
        took.append((time.perf_counter() - started, time.thread_time() - cpu))  # (wall, this thread's CPU)

    def _urgent_now(self) -> None:
        """Handle the failover events waiting now, in the middle of sending a tick's requests (see _apply).
        A role change waits for the tick's end: it may stop polling switches the tick is asking."""
        self._in_urgent = True
        try:
            while (item := self.events.get_urgent(when=_failover_event)) is not None:
                self._handle(*item)
        finally:
            self._in_urgent = False

    def poll_status(self) -> dict:
        """Effective poll interval and overload, for /api/v1/health."""
        out = {**self.fabric.poll_status(), "events_queued": self.events.qsize(),
               "receive_threads_blocked_total": self.events.blocked_puts}
        if self.role_refusals:
            out["master_claims_refused"] = {f"{d:#x}": {"generation": g, "reason": r}
                                            for d, (g, r) in sorted(self.role_refusals.items())}
        return out

    def _metric_families(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self.fabric.poll_status()
        eff = GaugeMetricFamily("pfepo_poll_effective_interval_seconds",
                                "smoothed interval between polls of a switch (backpressure stretches it)",
                                labels=["stat"])
        eff.add_metric(["p50"], st["effective_interval_p50_s"])
        eff.add_metric(["max"], st["effective_interval_max_s"])
        yield eff
        yield GaugeMetricFamily("pfepo_poll_configured_interval_seconds", "poll_interval_s", value=st["poll_interval_s"])
        yield GaugeMetricFamily("pfepo_poll_overloaded", "1 while polls are stretched (controller overloaded)",
                                value=1.0 if st["overloaded"] else 0.0)
        yield GaugeMetricFamily("pfepo_poll_reply_lag_seconds", "median time from a poll to its reply handled",
                                value=st["reply_lag_p50_s"])
        yield GaugeMetricFamily("pfepo_poll_stretch", "poll interval multiplier from the CPU budget (1 = as configured)",
                                value=st["stretch"])
        yield GaugeMetricFamily("pfepo_wake_lag_p90_seconds",
                                "how late a ready thread of the daemon gets to run (GIL and CPU wait), p90",
                                value=st["wake_lag_p90_s"])
        yield GaugeMetricFamily("pfepo_process_cpu_cores", "the daemon's CPU use over the last interval, in cores",
                                value=st["cpu_cores"])
        yield CounterMetricFamily("pfepo_poll_skipped", "polls skipped: the previous reply was not handled yet",
                                  value=st["skipped_total"])
        yield CounterMetricFamily("pfepo_poll_held_for_history", "polls deferred to a later tick because the "
                                  "history writer would not take their samples (the interval grows instead)",
                                  value=st["held_for_history_total"])
        yield CounterMetricFamily("pfepo_poll_capped", "polls deferred to a later tick by the per-tick cap",
                                  value=st["capped_total"])
        yield GaugeMetricFamily("pfepo_poll_history_bound", "1 while the history writer sets the poll pace "
                                "(polls held for it within the last two intervals)",
                                value=1.0 if st["history_bound"] else 0.0)
        hq = GaugeMetricFamily("pfepo_poll_history_samples", "the poll gate's view of history: samples queued in "
                               "the writer, expected from the replies in flight, and the limit of both",
                               labels=["kind"])
        hq.add_metric(["queued"], st["history_queued"])
        hq.add_metric(["in_flight"], st["history_in_flight"])
        hq.add_metric(["limit"], st["history_limit"])
        yield hq
        timing = list(self.port_status_timing)
        ps = GaugeMetricFamily("pfepo_port_status_seconds", "uplink port-status events, last 50: from the socket "
                               "to the handler (queued), from there to the GroupMods sent (handled), and from the "
                               "socket to the event queue, read and parsed by the I/O thread (read; part of queued)",
                               labels=["stage", "stat"])
        for i, stage in enumerate(("queued", "handled", "read")):
            vals = sorted(t[i] for t in timing) or [0.0]
            ps.add_metric([stage, "p50"], vals[len(vals) // 2])
            ps.add_metric([stage, "max"], vals[-1])
        yield ps
        gcs = getattr(self, "gc", None)
        if gcs is not None:
            pause = GaugeMetricFamily("pfepo_gc_pause_max_seconds", "longest of the last 100 garbage collections "
                                      "per generation (every thread waits)", labels=["generation"])
            for gen, (_n, longest) in gcs.stats().items():
                pause.add_metric([str(gen)], longest)
            yield pause
            yield GaugeMetricFamily("pfepo_gc_frozen_objects", "objects no collection walks (frozen after "
                                    "start-up and after each wave of switch connections)",
                                    value=gc.get_freeze_count())
        took = GaugeMetricFamily("pfepo_openflow_handler_seconds_max", "longest of the last 200 events of "
                                 "each type on the event thread (an urgent event waits for the one in hand): "
                                 "wall time, and the thread's own CPU time (the rest is waiting for the GIL "
                                 "or a CPU)", labels=["event", "clock"])
        for name, d in list(self._handler_took.items()):
            vals = list(d)
            took.add_metric([name, "wall"], max((w for w, _c in vals), default=0.0))
            took.add_metric([name, "cpu"], max((c for _w, c in vals), default=0.0))
        yield took
        loop = ioloop.current()
        if loop is not None:
            rounds = list(loop.rounds)
            io = GaugeMetricFamily("pfepo_openflow_io_round_seconds_max", "longest of the last 500 rounds of the "
                                   "switch-socket I/O thread (reading, parsing, queueing): wall and its CPU time",
                                   labels=["clock"])
            io.add_metric(["wall"], max((w for w, _c in rounds), default=0.0))
            io.add_metric(["cpu"], max((c for _w, c in rounds), default=0.0))
            yield io
        q = GaugeMetricFamily("pfepo_openflow_events_queued", "OpenFlow events waiting, per lane", labels=["lane"])
        q.add_metric(["urgent"], self.events.urgent_size())
        q.add_metric(["normal"], self.events.qsize() - self.events.urgent_size())
        yield q

    def liveness(self) -> str | None:
        """None when the OpenFlow side works, else why it does not (for /api/v1/health)."""
        loop = self.threads[0] if self.threads else None
        return self.watchdog.problem(
            time.monotonic(), loop_alive=loop is not None and loop.is_alive(),
            poller_alive=self._poller is not None and self._poller.is_alive(),
            connected=list(self.fabric.syncs), queued=self.events.qsize())  # a SLAVE's switches are not polled

    # --- applying what the Fabric returns --------------------------------------------------------------
    def _apply(self, out: Out | None) -> None:
        if out is None:
            return
        out.record(self.state)
        for dpid, rates in out.switch_rates:
            self.state.set_switch_rates(dpid, rates)
        for kind, fields in out.events:
            self.rt.record_event(kind, **fields)
        if out.samples:
            self.rt.ingest(out.samples)
        for reason in out.rejected_probes:
            self.rt.metrics.probes_rejected.labels(reason).inc()
        for batch in out.batches:
            self.rt.ingest_batch(batch)
        flows = 0
        # A tick at 1,000 switches sends hundreds of requests (54 ms of CPU at most in the 16:40 run): a
        # PortStatus arriving meanwhile is handled between chunks, not after the whole tick. Only for
        # read-only requests: a newer GroupMod must never be overtaken by an older one still in hand.
        yields = (not self._in_urgent and len(out.msgs) > URGENT_CHECK_EVERY
                  and all(isinstance(m, _REQUESTS) for _d, m in out.msgs))
        for i, (dpid, msg) in enumerate(out.msgs):
            if yields and i and i % URGENT_CHECK_EVERY == 0 and self.events.urgent_size():
                self._urgent_now()
            flows += isinstance(msg, FlowMod)
            self._send(dpid, msg)
        if flows:
            log.info("sent %d flow mods", flows)

    def _send(self, dpid: int, msg: Message) -> None:
        """Queue a message for ``dpid`` in order and send what the switch's connection takes now."""
        dp = self.datapaths.get(dpid)
        if dp is None:
            return
        if not allowed_as(self._role(dpid), msg):  # a SLAVE never changes a switch another controller owns
            self.sends_refused_as_slave += 1
            return
        box = self._outbox.setdefault(dpid, collections.deque())
        if len(box) >= OUTBOX_MAX:  # the switch has not read for a long time: read-back will repair later
            self.rt.metrics.sends_dropped.inc()
            return
        if isinstance(msg, GroupMod):
            self.rt.metrics.group_mods.inc()
            log.info("group %d on dpid=%#x: %s weights %s", msg.group.group_id, dpid, msg.command,
                     msg.group.weights())
        elif isinstance(msg, MeterMod):
            log.info("meter %d on dpid=%#x: %s %d kbit/s", msg.meter.meter_id, dpid, msg.command,
                     msg.meter.rate_kbps)
        # A probe waits in the box as is and is stamped in _flush, as it leaves: a probe queued behind a
        # burst of stats requests would otherwise measure our own outbox as link latency.
        box.append(msg if isinstance(msg, ProbeOut) else ofmsg.to_osken(dp, msg))
        self._flush(dpid)

    def _flush(self, dpid: int) -> None:
        """Send queued messages while the connection's send queue has room; never block this thread.

        os-ken's Datapath.send blocks while its 16-message send queue is full. Blocking here would stop
        every switch's handling behind one slow switch (and can deadlock: that switch stops reading while
        its replies wait in our event queue). We are the only sender of our messages, so a free slot seen
        now is still free when send_msg takes it.
        """
        dp, box = self.datapaths.get(dpid), self._outbox.get(dpid)
        if dp is None or not box:
            self._backlog.discard(dpid)
            return
        sem = getattr(dp, "_send_q_sem", None)  # os-ken internal; without it, plain (blocking) sends
        while box:
            if sem is not None:
                if not sem.acquire(blocking=False):
                    self._backlog.add(dpid)
                    return  # full: the rest goes out after the next handled event
                sem.release()
            out = box.popleft()
            probe = out if isinstance(out, ProbeOut) else None
            if probe is not None:
                out = ofmsg.to_osken(dp, PacketOut(out.port, self.fabric.probe_frame(dpid, out, time.time())))
            dp.send_msg(out)
            if probe is not None and isinstance(dp.socket, WireSocket):
                self._probes_in_flight.append((dpid, out.xid, probe.seq, time.time()))
        self._backlog.discard(dpid)

    def _on_state_change(self) -> None:
        """ControllerState listener; runs on the caller's thread (REST, decision loop): post, never send."""
        if not self._desired_pending.is_set():
            self._desired_pending.set()
            self._post(EventDesiredChanged())  # if the queue is full, the next handled event pushes

    def _push_desired(self) -> None:
        self._desired_pending.clear()
        self._apply(self.fabric.on_desired(self.state.bucket_weights(), self.state.bandwidth_snapshot(),
                                           self.state.evicted_snapshot()))

    # --- events from this process ----------------------------------------------------------------------
    @set_ev_cls(EventDesiredChanged)
    @guarded
    def _desired_changed(self, ev):
        pass  # _after_event pushes when the change is still pending

    @set_ev_cls(EventTick)
    @guarded
    def _tick(self, ev):
        self.watchdog.tick_handled()
        self.rt.metrics.polls.inc()
        refreezer = getattr(self, "refreezer", None)
        if refreezer is not None and (frozen := refreezer.tick(time.monotonic())) is not None:
            log.info("switch connections settled: %d objects frozen, full collections skip them", frozen)
        self._sync_roles()  # also pulled every tick, so a role change whose event was dropped still lands
        # History is the last stage of a poll: the writer's queue plus what the replies already asked for
        # will add stays under half its bound, so polling waits for the writer (a longer effective
        # interval) rather than producing samples it would have to drop (PollGate.pick). At 1,000 switches a
        # tick that polled every held switch at once overflowed it (343k samples dropped, 18:14 UTC).
        w = self.rt.writer
        lags = [self._wake_lags.popleft() for _ in range(len(self._wake_lags))]
        self._apply(self.fabric.on_tick(time.time(), history=(w.queued, w.queue_max // 2),
                                        cpu_s=time.process_time(), wake_lags=lags))

    def _poll_loop(self) -> None:
        period = self.cfg.poll_interval_s / self.fabric.slots
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                self.watchdog.tick_posted(time.monotonic())
                self._post(EventTick())
            except Exception:
                log.exception("posting the poll tick failed")
            due = max(due + period, time.monotonic() - period)  # on schedule; no catch-up bursts
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            # how late this thread ran after its timer: the wait for the GIL and a CPU that a port-status
            # event's receive, event and send threads see too (backpressure keeps it small, PollGate.load)
            self._wake_lags.append(max(0.0, time.monotonic() - due))

    # --- connection lifecycle --------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _features(self, ev):
        dp = ev.msg.datapath
        # The id from the message, not ``dp.id``: os-ken's own OFPHandler sets ``dp.id`` from this same field,
        # but on its own thread; our event loop can run first (seen under load in CI: dp.id None, the
        # switch "not in the config" and never mastered). Set here too (the same value) for later readers.
        dpid = ev.msg.datapath_id
        if dp.id is None:
            dp.id = dpid
        wire = WireSocket.wrap(dp.socket)  # kernel receive and wire send times for echoes and probes
        if wire is not None:
            dp.socket = wire
        sw = self.state.switch_connected(dpid, True)
        out = self.fabric.on_connect(dpid, time.time()) if sw is not None else None
        if out is None:
            log.warning("switch dpid=%#x is not in the config: left alone", dpid)
            return
        log.info("switch %s (dpid=%#x) connected", sw.name, dpid)
        if getattr(self, "refreezer", None) is not None:
            self.refreezer.connected(time.monotonic())
        self._outbox.pop(dpid, None)  # anything queued for an earlier connection is void
        self.datapaths[dpid] = dp
        if self._clustered():
            self._send_role(dpid)  # before any mod: the switch must know our role first
            out = self._unless_master(dpid, out)
        self.watchdog.switch_event(dpid, time.monotonic())
        self._apply(out)

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _state_change(self, ev):
        dp = ev.datapath
        if ev.state == DEAD_DISPATCHER and dp.id is not None and self.datapaths.get(dp.id) is dp:
            del self.datapaths[dp.id]
            self._outbox.pop(dp.id, None)
            self.fabric.on_disconnect(dp.id)
            self.watchdog.switch_gone(dp.id)
            self.state.set_sync_status(dp.id, None)
            sw = self.state.switch_connected(dp.id, False)
            if sw:
                log.warning("switch %s disconnected", sw.name)

    def _collect(self, ev) -> list | None:
        """Join multipart replies; None until the last part arrived or if the switch is not ours."""
        msg = ev.msg
        key = (msg.datapath.id, msg.xid)
        parts = self._multipart.setdefault(key, [])
        parts.append(msg.body)
        if not ofmsg.is_last_part(msg):
            return None
        body = ofmsg.join_parts(self._multipart.pop(key))
        return body if msg.datapath.id in self.datapaths else None

    # --- read-back of meters, groups, flows ------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    @guarded
    def _meter_config(self, ev):
        body = self._collect(ev)
        if body is not None:
            self._apply(self.fabric.on_meter_config(ev.msg.datapath.id, ofmsg.parse_meter_config(body)))

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _group_desc(self, ev):
        body = self._collect(ev)
        if body is not None:
            dpid = ev.msg.datapath.id
            want = self.fabric.want(dpid).groups  # bucket labels are ours: copied by position
            self._apply(self.fabric.on_group_desc(dpid, ofmsg.parse_group_desc(body, want)))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _flow_stats(self, ev):
        body = self._collect(ev)
        if body is not None:
            self._apply(self.fabric.on_flow_stats(ev.msg.datapath.id, ofmsg.parse_flow_stats(body)))

    # --- ports -----------------------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _port_desc(self, ev):
        body = self._collect(ev)
        if body is not None:
            self._apply(self.fabric.on_port_desc(ev.msg.datapath.id, ofmsg.parse_port_desc(body)))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _port_status(self, ev):
        started = time.time()
        port, up = ofmsg.parse_port_status(ev.msg)
        self._apply(self.fabric.on_port_status(ev.msg.datapath.id, port, up))
        if self._desired_pending.is_set():  # an uplink changed: its GroupMods go out now, timed
            self._push_desired()
            arrived = self._arrived(ev)
            self.port_status_timing.append((started - arrived, time.time() - started,
                                            max(0.0, getattr(ev, "pfepo_queued", arrived) - arrived)))

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    @guarded
    def _port_stats(self, ev):
        body = self._collect(ev)
        if body is not None:
            # counters as of receipt; the switch may be polled again now that this reply is handled
            self._apply(self.fabric.on_port_stats(ev.msg.datapath.id, body, self._arrived(ev), time.time()))

    # --- echo, probes, ARP -----------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPEchoReply, MAIN_DISPATCHER)
    @guarded
    def _echo_reply(self, ev):
        sock = ev.msg.datapath.socket
        sent_at = sock.sent_at(ev.msg.xid) if isinstance(sock, WireSocket) else None
        self._apply(self.fabric.on_echo_reply(ev.msg.datapath.id, bytes(ev.msg.data or b""), self._arrived(ev),
                                              sent_at))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _packet_in(self, ev):
        msg = ev.msg
        self._probe_wire_times()
        # received: when the kernel received it (or os-ken's receive thread read it), before our event queue.
        received = self._arrived(ev)
        trusted = time.time() - received < PROBE_QUEUE_LIMIT_S
        self._apply(self.fabric.on_packet_in(msg.datapath.id, msg.match["in_port"], bytes(msg.data), received,
                                             trusted))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def _switch_error(self, ev):
        """A switch refused one of our messages. Counted by type and code and logged; read-back repairs a
        refused GroupMod or FlowMod at the next poll. A MASTER claim refused as stale means another controller
        holds the switch at a newer generation: we act as SLAVE there (send nothing that changes it) until the
        cluster agent's roles change again, instead of believing we own it while every write is refused."""
        msg = ev.msg
        dpid = msg.datapath.id
        etype, code = ofmsg.error_names(msg)
        self.rt.metrics.switch_errors.labels(etype, code).inc()
        log.warning("switch dpid=%s refused message xid=%s: %s/%s", f"{dpid:#x}" if dpid else "?", msg.xid,
                    etype, code)
        if etype == "role_request_failed" and self._role(dpid) == "master":
            gen = self.roles[dpid][1]
            log.error("MASTER claim on dpid=%#x at generation %d refused (%s): another controller holds it; "
                      "acting as SLAVE there until the cluster's roles change", dpid, gen, code)
            self.role_refusals[dpid] = (gen, code)
            self.roles[dpid] = ("slave", gen)
            self._apply(self._unless_master(dpid, None))

    def _probe_wire_times(self) -> None:
        """Tell the Fabric when each probe handed to os-ken actually left the socket (its send thread
        stamps it); entries still unsent stay, entries of a gone connection are dropped."""
        now = time.time()
        for _ in range(len(self._probes_in_flight)):
            dpid, xid, seq, handed = self._probes_in_flight.popleft()
            sock = getattr(self.datapaths.get(dpid), "socket", None)
            if not isinstance(sock, WireSocket):
                continue
            t = sock.sent_at(xid)
            if t is not None:
                self.fabric.probe_left_socket(seq, t)
            elif now - handed < 2.0:  # not sent yet; older than any probe timeout: forget it
                self._probes_in_flight.append((dpid, xid, seq, handed))

    # --- multi-controller roles (pfepo.cluster; nothing here runs without a cluster: section) ----------
    def _clustered(self) -> bool:
        return getattr(self.rt, "cluster", None) is not None

    def _role(self, dpid: int) -> str:
        """Our role on ``dpid``: EQUAL (as OVS defaults) without a cluster; SLAVE until etcd says MASTER."""
        if not self._clustered():
            return "equal"
        return self.roles.get(dpid, ("slave", 0))[0]

    def set_roles(self) -> None:
        """Any thread (the cluster agent): roles changed; handled on the OpenFlow thread, never blocks."""
        self._post(EventRolesChanged())

    @set_ev_cls(EventRolesChanged)
    @guarded
    def _roles_changed(self, ev):
        self._sync_roles()

    def _sync_roles(self) -> None:
        """Adopt the agent's roles; send OFPT_ROLE_REQUEST where they changed; a new MASTER re-reads the
        switch from scratch and reconciles it (the switch kept forwarding with its groups meanwhile)."""
        if not self._clustered():
            return
        for dpid, (role, gen) in dict(self.rt.cluster.roles).items():
            was = self.roles.get(dpid)
            if was == (role, gen):
                continue
            refused = self.role_refusals.get(dpid)
            if role == "master" and refused is not None and refused[0] == gen:
                continue  # the switch refused this very claim (every tick would repeat it): wait for a newer one
            self.roles[dpid] = (role, gen)
            self.role_refusals.pop(dpid, None)
            if dpid in self.datapaths:
                self._send_role(dpid)
                if role == "master" and (was is None or was[0] != "master"):
                    log.info("MASTER of dpid=%#x at generation %d: reconciling", dpid, gen)
                    self._apply(self.fabric.on_connect(dpid, time.time()))
                elif role != "master" and dpid in self.fabric.syncs:
                    self._apply(self._unless_master(dpid, None))

    def _unless_master(self, dpid: int, out: Out | None) -> Out | None:
        """Scale-out: we poll, read back and reconcile only the switches we master. For another's switch
        the Fabric keeps no sync (no port stats, echo, audit, probes, desired-state diffs); we read its port
        states once (port-status events keep them current) and start its sync when we become MASTER."""
        if self._role(dpid) == "master":
            return out
        self.fabric.on_disconnect(dpid)
        self.state.set_sync_status(dpid, None)
        return Out(msgs=[(dpid, StatsRequest("port_desc"))])

    def _send_role(self, dpid: int) -> None:
        dp = self.datapaths.get(dpid)
        if dp is None:
            return
        role, gen = self.roles.get(dpid, ("slave", 0))
        log.info("role request %s to dpid=%#x generation %d", role.upper(), dpid, gen)
        self._outbox.setdefault(dpid, collections.deque()).append(ofmsg.role_request(dp, RoleRequest(role, gen)))
        self._flush(dpid)
