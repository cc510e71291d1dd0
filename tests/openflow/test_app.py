"""The os-ken adapter's supervision: a raising handler is logged and counted and the next event is
handled; a stopped event loop makes /api/v1/health answer 503. Runs the real PfepoApp event loop (os-ken
native hub threads) with no switch connected."""

from __future__ import annotations

import time

import httpx
import pytest
from os_ken.controller import handler, ofp_event

from pfepo.api.auth import single_token
from pfepo.api.server import ApiServer, create_app
from pfepo.daemon import build_runtime
from pfepo.openflow.app import EventTick, PfepoApp
from pfepo.openflow.watchdog import Watchdog
from tests.waiting import wait_until


class _BrokenMsg:
    """A message whose every attribute access fails, like a reply os-ken could not fully parse."""

    def __getattr__(self, name):
        raise ValueError(f"broken message: no {name}")


@pytest.fixture
def app(cfg):
    rt = build_runtime(cfg)
    a = PfepoApp(pfepo=rt)
    handler.register_instance(a)  # what AppManager does for a loaded app
    a.start()
    yield a
    a.stop()
    rt.writer.close()


def _errors(app, name: str) -> float:
    return app.rt.metrics.registry.get_sample_value("pfepo_openflow_handler_errors_total", {"handler": name}) or 0


def test_raising_handler_does_not_stop_the_next_event(app):
    handled = app.watchdog.ticks_handled
    assert app._post(ofp_event.EventOFPPortStatus(_BrokenMsg()))
    assert app._post(EventTick())
    wait_until(lambda: app.watchdog.ticks_handled > handled, 5, "tick handled after the failing handler")
    assert _errors(app, "_port_status") == 1
    assert app.threads[0].is_alive() and app.liveness() is None
    # And again: the loop survives any number of failures.
    for _ in range(3):
        app._post(ofp_event.EventOFPPortStatus(_BrokenMsg()))
    wait_until(lambda: _errors(app, "_port_status") == 4, 5, "three more failures counted")


def test_every_event_handler_is_guarded():
    handlers = [m for m in vars(PfepoApp).values() if hasattr(m, "callers")]
    assert len(handlers) >= 12
    assert all(getattr(h, "pfepo_guarded", False) for h in handlers), [h.__name__ for h in handlers]


def test_state_change_posts_instead_of_sending_and_never_blocks(app):
    """A REST/decision-loop change only queues an event, even when the app's queue is full."""
    while app._events_sem.acquire(blocking=False):  # fill the queue's slots without running handlers
        pass
    app.state.set_baseline("web", {"eu": 1, "us": 1, "ap": 1}, source="operator")  # must return at once
    assert app._desired_pending.is_set()
    app._events_sem.release()


def test_stopped_event_loop_makes_health_answer_503(app):
    token = "read-token-for-health-test"
    srv = ApiServer(create_app(app.rt, tokens=single_token("test", "read", token)), "127.0.0.1", 0)
    srv.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{srv.bound_port}", timeout=5,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            assert c.get("/api/v1/health").status_code == 200
            app.is_active = False  # what an unguarded exception does in os-ken's native hub: the loop ends
            app._post(EventTick())
            wait_until(lambda: not app.threads[0].is_alive(), 5, "event loop ended")
            r = c.get("/api/v1/health")
            assert r.status_code == 503 and "event loop has stopped" in r.json()["problem"]
    finally:
        srv.stop()


def test_watchdog_sees_a_stall_and_a_silent_switch():
    w = Watchdog(stall_s=5)
    ok = {"loop_alive": True, "poller_alive": True}
    w.tick_posted(100.0)
    assert w.problem(104.0, connected=[], **ok) is None
    assert "stalled" in w.problem(106.0, connected=[], queued=128, **ok)
    w.tick_handled()
    w.switch_event(1, 100.0)
    assert w.problem(104.0, connected=[1], **ok) is None
    assert "dpid=0x1" in w.problem(106.0, connected=[1], **ok)
    assert "poll thread" in w.problem(100.0, loop_alive=True, poller_alive=False, connected=[])


class _SlowDatapath:
    """A connection whose send queue has 2 free slots and a send loop that does not drain (a switch that
    stopped reading); send_msg blocks like os-ken's when no slot is free."""

    def __init__(self):
        import threading

        from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

        self.id = 1
        self.ofproto, self.ofproto_parser = ofproto_v1_3, ofproto_v1_3_parser
        self._send_q_sem = threading.BoundedSemaphore(2)
        self.sent: list = []

    def send_msg(self, msg):
        assert self._send_q_sem.acquire(timeout=2), "the OpenFlow thread blocked on a full send queue"
        self.sent.append(msg)


def test_a_switch_that_stops_reading_never_blocks_the_openflow_thread(app):
    from pfepo.openflow.messages import EchoRequest

    dp = _SlowDatapath()
    app.datapaths[1] = dp
    for i in range(5):
        app._send(1, EchoRequest(bytes([i]) * 8))  # returns at once although only 2 fit
    assert [m.data[0] for m in dp.sent] == [0, 1] and len(app._outbox[1]) == 3
    dp._send_q_sem.release()  # the switch read one message: the rest follow in order as room appears
    dp._send_q_sem.release()
    app._flush(1)
    assert [m.data[0] for m in dp.sent] == [0, 1, 2, 3] and len(app._outbox[1]) == 1
    del app.datapaths[1]


def test_event_handling_time_is_reported_per_event_type(app):
    """What holds the event thread (an urgent PortStatus waits for the event in hand) is in /metrics."""
    handled = app.watchdog.ticks_handled
    app._post(EventTick())
    wait_until(lambda: app.watchdog.ticks_handled > handled, 5, "tick handled")
    fams = {f.name: f for f in app._metric_families()}
    took = {(s.labels["event"], s.labels["clock"]): s.value for s in fams["pfepo_openflow_handler_seconds_max"].samples}
    assert 0 < took[("EventTick", "wall")] < 5 and 0 <= took[("EventTick", "cpu")] < 5


class _RecordingDatapath(_SlowDatapath):
    """Takes every message (room for all) and notes how many port-status failures were counted by then."""

    def __init__(self, app):
        import threading

        super().__init__()
        self._send_q_sem = threading.BoundedSemaphore(10_000)
        self.app = app
        self.errors_seen: list[float] = []

    def send_msg(self, msg):
        self.errors_seen.append(_errors(self.app, "_port_status"))
        super().send_msg(msg)


@pytest.fixture
def idle_app(cfg):
    """An app whose event thread is not started: the test thread is the only one handling events."""
    rt = build_runtime(cfg)
    a = PfepoApp(pfepo=rt)
    handler.register_instance(a)
    yield a
    rt.writer.close()


def _tick_with_arrival(app, msgs, arrives=None):
    """Apply ``msgs`` as a tick would, with ``arrives`` (default: an unparsable PortStatus) arriving after
    the first send; returns the datapath (what was sent, and the failure count at each send)."""
    from pfepo.openflow.switch import Out

    dp = _RecordingDatapath(app)
    app.datapaths[1] = dp
    orig_send = app._send

    def send_then_arrive(dpid, msg):
        orig_send(dpid, msg)
        if len(dp.sent) == 1:
            ev = arrives or ofp_event.EventOFPPortStatus(_BrokenMsg())
            app.events.put((ev, handler.MAIN_DISPATCHER), urgent=True)

    app._send = send_then_arrive
    try:
        app._apply(Out(msgs=[(1, m) for m in msgs]))
    finally:
        app._send = orig_send
    return dp


def test_an_urgent_event_is_handled_between_chunks_of_a_big_tick_not_after_it(idle_app):
    """A PortStatus arriving while a tick's requests are sent waits for one chunk, not for all of them."""
    from pfepo.openflow.app import URGENT_CHECK_EVERY
    from pfepo.openflow.messages import StatsRequest

    n = 4 * URGENT_CHECK_EVERY
    dp = _tick_with_arrival(idle_app, [StatsRequest("port_stats")] * n)
    assert len(dp.sent) == n
    assert dp.errors_seen.index(1) == URGENT_CHECK_EVERY  # handled right after the first chunk
    assert idle_app.events.urgent_size() == 0


def test_messages_that_change_a_switch_are_never_interrupted(idle_app):
    """Only read-only requests yield: a newer GroupMod must never overtake an older one still being sent."""
    from pfepo.openflow.app import URGENT_CHECK_EVERY
    from pfepo.openflow.messages import PacketOut, StatsRequest

    msgs = [StatsRequest("port_stats")] * (4 * URGENT_CHECK_EVERY) + [PacketOut(1, b"x" * 60)]
    dp = _tick_with_arrival(idle_app, msgs)
    assert len(dp.sent) == len(msgs) and set(dp.errors_seen) == {0}
    assert idle_app.events.urgent_size() == 1  # left for the event loop, after this Out


def test_a_role_change_waits_for_the_end_of_the_tick(idle_app):
    """Only failover events are taken mid-tick: a role change may stop polling switches the tick asks."""
    from pfepo.openflow.app import URGENT_CHECK_EVERY, EventRolesChanged
    from pfepo.openflow.messages import StatsRequest

    dp = _tick_with_arrival(idle_app, [StatsRequest("port_stats")] * (4 * URGENT_CHECK_EVERY), EventRolesChanged())
    assert len(dp.sent) == 4 * URGENT_CHECK_EVERY
    assert idle_app.events.urgent_size() == 1  # still queued for the event loop


class _StuckStore:
    """A history store that does not finish writing until told (a slow disk)."""

    def __init__(self):
        import threading

        self.go = threading.Event()

    def write(self, samples):
        self.go.wait(10)

    def close(self):
        pass


def test_a_writer_that_falls_behind_holds_polls_and_health_and_metrics_say_so(cfg):
    """The writer's queue depth is part of the poll gate: with history full, the switch due is not asked
    for counters (its interval grows, nothing is dropped), and /api/v1/health and /metrics say why."""
    from pfepo.store.writer import BatchWriter
    from pfepo.telemetry.samples import Sample

    rt = build_runtime(cfg)
    rt.writer.close()
    store = _StuckStore()
    rt.writer = BatchWriter(store, batch_size=1000, queue_max=20_000)
    a = PfepoApp(pfepo=rt)
    handler.register_instance(a)
    a.start()
    token = "read-token-for-history-gate"
    srv = ApiServer(create_app(rt, tokens=single_token("test", "read", token)), "127.0.0.1", 0)
    srv.start()
    try:
        for k in range(13):  # one entry of 1,000 goes to the stuck store, 12,000 stay queued: over half of 20k
            rt.writer.put([Sample(1.0, "x", "m", float(i), {}) for i in range(1000 * k, 1000 * (k + 1))])
        wait_until(lambda: rt.writer.queued == 12_000, 5, "the writer holding its queue")
        dpid = cfg.switches[0].dpid
        a.fabric.gate.reply(336)  # a reply makes 336 samples
        a.fabric.on_connect(dpid, 0.0)  # a switch whose turn it is (pure sync; no socket to send to)
        handled = a.watchdog.ticks_handled
        a._post(EventTick())
        wait_until(lambda: a.watchdog.ticks_handled > handled, 5, "tick handled")
        with httpx.Client(base_url=f"http://127.0.0.1:{srv.bound_port}", timeout=5,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            polling = c.get("/api/v1/health").json()["polling"]
            metrics = c.get("/metrics").text
        assert polling["history_bound"] and polling["overloaded"], str(polling)
        assert polling["held_for_history_total"] >= 1 and polling["history_limit"] == 10_000
        assert polling["history_queued"] == 12_000
        assert "pfepo_poll_history_bound 1.0" in metrics
        assert 'pfepo_poll_history_samples{kind="limit"} 10000.0' in metrics
        assert rt.writer.dropped == 0
    finally:
        store.go.set()
        srv.stop()
        a.stop()
        rt.writer.close()


class _ConfiguringDatapath(_SlowDatapath):
    """A connection as os-ken hands over its features reply: ``id`` not set yet (os-ken's own OFPHandler sets
    it from the same message, but on its own thread) and no socket to stamp."""

    def __init__(self):
        import threading

        super().__init__()
        self.id = None
        self.socket = None
        self._send_q_sem = threading.BoundedSemaphore(64)


def test_a_switch_is_taken_by_the_features_message_s_id_even_before_os_ken_sets_the_datapath_s(app):
    """Seen in CI under load: our event loop ran the features reply before os-ken's handler had set
    ``dp.id``; the switch was logged "not in the config" and never mastered. Real os-ken event and parser."""
    from os_ken.controller.handler import CONFIG_DISPATCHER
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    dp = _ConfiguringDatapath()
    dpid = app.rt.cfg.switches[0].dpid
    msg = parser.OFPSwitchFeatures(dp, datapath_id=dpid, n_buffers=0, n_tables=254, auxiliary_id=0, capabilities=0)
    app._send_event(ofp_event.EventOFPSwitchFeatures(msg), CONFIG_DISPATCHER)
    wait_until(lambda: app.datapaths.get(dpid) is dp, 5, "the switch registered under the message's id")
    assert dp.id == dpid and _errors(app, "_features") == 0
    wait_until(lambda: dp.sent, 5, "the first requests sent to the switch")
    del app.datapaths[dpid]


def _switch_errors(app, etype: str, code: str) -> float:
    return app.rt.metrics.registry.get_sample_value(
        "pfepo_openflow_switch_errors_total", {"type": etype, "code": code}) or 0


def test_a_switch_s_error_is_counted_by_its_names(app):
    """Before, OFPT_ERROR had no handler: a refused message left no trace. Real os-ken event and parser."""
    from os_ken.controller.handler import MAIN_DISPATCHER
    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    dp = _ConfiguringDatapath()
    dp.id = app.rt.cfg.switches[0].dpid
    msg = parser.OFPErrorMsg(dp, type_=ofp.OFPET_GROUP_MOD_FAILED, code=ofp.OFPGMFC_GROUP_EXISTS)
    app._send_event(ofp_event.EventOFPErrorMsg(msg), MAIN_DISPATCHER)
    wait_until(lambda: _switch_errors(app, "group_mod_failed", "group_exists") == 1, 5, "the error counted")
    assert _errors(app, "_switch_error") == 0


def test_a_master_claim_refused_as_stale_makes_us_act_as_slave_on_that_switch(app):
    """A switch refuses our MASTER claim as stale (another controller claimed it at a newer generation; the
    real switch's refusal is tested in tests/cluster/test_roles_ovs.py). We must stop acting as its master,
    not keep sending writes it refuses. The cluster agent is a stand-in here (no etcd in this unit test)."""
    import types

    from os_ken.controller.handler import MAIN_DISPATCHER
    from os_ken.ofproto import ofproto_v1_3 as ofp
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    from pfepo.openflow.desired import Flow
    from pfepo.openflow.messages import FlowMod

    dp = _ConfiguringDatapath()
    dpid = dp.id = app.rt.cfg.switches[0].dpid
    app.rt.cluster = types.SimpleNamespace(roles={})
    app.roles[dpid] = ("master", 7)
    app.datapaths[dpid] = dp
    try:
        assert app._role(dpid) == "master"
        msg = parser.OFPErrorMsg(dp, type_=ofp.OFPET_ROLE_REQUEST_FAILED, code=ofp.OFPRRFC_STALE)
        app._send_event(ofp_event.EventOFPErrorMsg(msg), MAIN_DISPATCHER)
        wait_until(lambda: app._role(dpid) == "slave", 5, "demoted to SLAVE on that switch")
        assert _switch_errors(app, "role_request_failed", "stale") == 1
        assert app.poll_status()["master_claims_refused"] == {f"{dpid:#x}": {"generation": 7, "reason": "stale"}}
        wait_until(lambda: any(isinstance(m, parser.OFPPortDescStatsRequest) for m in dp.sent), 5, "a read")
        refused = app.sends_refused_as_slave
        app._send(dpid, FlowMod(Flow(10, (("eth_type", 0x0800),), (("output", 1),))))  # a write: not sent
        assert app.sends_refused_as_slave == refused + 1
        assert not any(isinstance(m, parser.OFPFlowMod) for m in dp.sent)
        assert _errors(app, "_switch_error") == 0
        # every tick pulls the agent's roles: the refused claim is not repeated, a newer generation is made
        app.rt.cluster.roles = {dpid: ("master", 7)}
        app._post(EventTick())
        wait_until(lambda: app.watchdog.ticks_handled > 0, 5, "a tick handled")
        sent = len(dp.sent)
        app._post(EventTick())
        time.sleep(0.3)
        assert app._role(dpid) == "slave"
        assert not any(isinstance(m, parser.OFPRoleRequest) for m in dp.sent[sent:])
        app.rt.cluster.roles = {dpid: ("master", 9)}
        app.set_roles()
        wait_until(lambda: app._role(dpid) == "master", 5, "MASTER again at the newer generation")
        assert "master_claims_refused" not in app.poll_status()
        wait_until(lambda: any(isinstance(m, parser.OFPRoleRequest) and m.generation_id == 9 for m in dp.sent),
                   5, "the new claim sent")
    finally:
        app.datapaths.pop(dpid, None)
        app.rt.cluster = None
