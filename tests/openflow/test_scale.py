"""Scale behaviour of the pure Fabric: polling backpressure, slots, audit interval, desired-state cache,
and probe rounds that measured our own queueing (no os-ken, no sockets)."""

from __future__ import annotations

import struct

import pytest

from pfepo.config import PfepoConfig
from pfepo.openflow.messages import GroupMod, PortStat, StatsRequest
from pfepo.openflow.switch import AUDITS_PER_S, ROUND_ECHO, Fabric
from tests.openflow.fakeswitch import FakeController


def _kinds(out, dpid):
    return [m.kind for m in out.to(dpid) if isinstance(m, StatsRequest)]


def big(cfg_dict, extra: int) -> PfepoConfig:
    d = dict(cfg_dict)
    d["switches"] = list(d["switches"]) + [{"name": f"x{i}", "dpid": 0x5000 + i} for i in range(extra)]
    return PfepoConfig.model_validate(d)


def test_a_switch_is_polled_again_only_after_its_reply_was_handled(cfg):
    net = FakeController(cfg)
    net.connect()
    core = net.dpid("pfc0")
    f: Fabric = net.fabric
    out = f.on_tick(net.now + 1)
    assert "port_stats" in _kinds(out, core)
    assert "port_stats" not in _kinds(f.on_tick(net.now + 2), core)  # no reply yet: not asked again
    assert f.poll_status()["skipped_total"] >= 1
    f.on_port_stats(core, [PortStat(1, 10, 10)], net.now + 2.5)
    assert "port_stats" in _kinds(f.on_tick(net.now + 3), core)
    assert f.poll_status()["effective_interval_p50_s"] == 2.0 and f.gate.overloaded()


def test_slots_spread_a_fleet_over_the_interval(cfg_dict):
    cfg = big(cfg_dict, 96)
    net = FakeController(cfg, now=0.0)
    net.fabric = Fabric(cfg, net.state.bucket_weights(), net.state.bandwidth_snapshot(), slots=10)
    net.connect()
    polled = []
    for k in range(10):
        out = net.fabric.on_tick(1.0 + k * 0.1)
        got = {d for d, m in out.msgs if isinstance(m, StatsRequest) and m.kind == "port_stats"}
        polled.append(got)
        for d in got:
            net.fabric.on_port_stats(d, [], 1.0 + k * 0.1)
    assert all(len(p) < 30 for p in polled)  # ~10 per tick, not 100 at once
    assert sorted(d for p in polled for d in p) == sorted(s.dpid for s in cfg.switches)  # each once


def test_a_big_fleet_is_audited_at_a_bounded_rate_not_every_poll(cfg_dict):
    cfg = big(cfg_dict, 196)
    net = FakeController(cfg)
    net.connect()
    f = net.fabric
    assert f.audit_s == len(cfg.switches) / AUDITS_PER_S == 10.0
    audits = 0
    for k in range(1, 21):  # 20 s of 1 s ticks, every reply handled
        out = f.on_tick(net.now + k)
        audits += sum(1 for d in f.syncs if "group_desc" in _kinds(out, d))
        for d in f.syncs:
            f.on_port_stats(d, [], net.now + k)
    assert 2 * 200 * 0.8 <= audits <= 2 * 200 * 1.2  # each switch about every 10 s, not every second


def test_a_weight_change_touches_only_the_switches_it_concerns(cfg_dict):
    cfg = big(cfg_dict, 50)
    net = FakeController(cfg)
    net.connect()
    plain = net.fabric.syncs[0x5000]
    want_before = plain.want
    net.state.set_baseline("web", {"eu": 1, "us": 1, "ap": 2}, source="operator")
    out = net.fabric.on_desired(net.state.bucket_weights(), net.state.bandwidth_snapshot())
    assert {d for d, m in out.msgs if isinstance(m, GroupMod)} == {net.dpid("pfc0")}
    assert set(out.status) == {net.dpid("pfc0")}  # no other switch was even looked at
    assert plain.want is want_before


def test_a_probe_round_whose_echoes_came_back_slow_is_discarded(net_probing):
    net, core, eu = net_probing
    f = net.fabric
    # A trusted round: echoes instant (the fake answers at once), probes 10 ms across the link.
    net.tick()
    net.deliver_probes(core, 1, eu.dpid, 1, 0.010)
    net.samples.clear()
    net.tick(net.cfg.probes.timeout_s + 0.1)
    lat = [s.value for s in net.samples if s.subject == "uplink:eu" and s.metric == "latency_out_ms"]
    assert lat == [pytest.approx(10.0, abs=0.5)]
    # The next round's echoes come back 80 ms late: our own queueing, so its probes measured us.
    kept = f.probe_rounds_discarded
    for d in f._round_switches:
        f.on_echo_reply(d, ROUND_ECHO + struct.pack("!d", f._round_t), f._round_t + 0.080)
    net.deliver_probes(core, 1, eu.dpid, 1, 0.200)
    net.samples.clear()
    net.tick(net.cfg.probes.timeout_s + 0.1)
    assert f.probe_rounds_discarded == kept + 1
    assert not [s for s in net.samples if s.subject == "uplink:eu" and s.metric.startswith(("latency", "loss"))]



def test_an_echo_timed_on_the_wire_is_not_slowed_by_our_own_send_queue(net_probing):
    """The adapter passes when the request really left the socket: the RTT excludes the time it waited
    to be sent, so a round is not discarded for our own send delay (wiretime.py)."""
    net, core, eu = net_probing
    f = net.fabric
    net.tick()
    kept = f.probe_rounds_discarded
    for d in f._round_switches:  # built at _round_t, left the socket 79 ms later, back 1 ms after that
        f.on_echo_reply(d, ROUND_ECHO + struct.pack("!d", f._round_t), f._round_t + 0.080,
                        sent_at=f._round_t + 0.079)
        assert f.echo.get(d) <= 0.001 + 1e-9  # smoothed with the instant echoes before: never the 80 ms
    net.deliver_probes(core, 1, eu.dpid, 1, 0.010)
    net.samples.clear()
    net.tick(net.cfg.probes.timeout_s + 0.1)
    assert f.probe_rounds_discarded == kept
    lat = [s.value for s in net.samples if s.subject == "uplink:eu" and s.metric == "latency_out_ms"]
    assert lat == [pytest.approx(10.0, abs=1.0)]


@pytest.fixture
def net_probing(cfg):
    net = FakeController(cfg)
    net.connect()
    core, eu = net.switches[net.dpid("pfc0")], net.switches[net.dpid("pfr1")]
    return net, core, eu


def test_polls_are_held_while_history_is_behind(cfg):
    net = FakeController(cfg)
    net.connect()
    f = net.fabric
    core = net.dpid("pfc0")
    out = f.on_tick(net.now + 1, hold_polls=True)
    assert "port_stats" not in _kinds(out, core) and f.poll_status()["held_for_history_total"] >= 1
    assert "port_stats" in _kinds(f.on_tick(net.now + 2), core)  # history caught up: polled again


def test_a_daemon_over_its_cpu_budget_polls_less_and_says_so(cfg):
    net = FakeController(cfg)
    net.connect()
    core = net.dpid("pfc0")
    f: Fabric = net.fabric
    t, cpu = net.now, 0.0
    for _ in range(4):  # one core busy (over the 0.7 budget): every reply handled at once, yet stretched
        t, cpu = t + 1.0, cpu + 1.0
        out = f.on_tick(t, cpu_s=cpu)
        if "port_stats" in _kinds(out, core):
            f.on_port_stats(core, [PortStat(1, 10, 10)], t + 0.01)
    st = f.poll_status()
    assert st["stretch"] > 1.5 and st["overloaded"] and st["cpu_cores"] == 1.0
    polled = 0
    for _ in range(6):  # polling less, the CPU is just under budget: held, asked less than once per interval
        t, cpu = t + 1.0, cpu + 0.65
        if "port_stats" in _kinds(f.on_tick(t, cpu_s=cpu), core):
            polled += 1
            f.on_port_stats(core, [PortStat(1, 10, 10)], t + 0.01)
    assert 1 <= polled <= 4
    for _ in range(12):  # idle again: back to every interval
        t, cpu = t + 1.0, cpu + 0.05
        out = f.on_tick(t, cpu_s=cpu)
        if "port_stats" in _kinds(out, core):
            f.on_port_stats(core, [PortStat(1, 10, 10)], t + 0.01)
    assert f.poll_status()["stretch"] == 1.0
    assert "port_stats" in _kinds(f.on_tick(t + 1.0, cpu_s=cpu), core)


def test_a_writer_slower_than_the_fleet_stretches_the_interval_and_drops_nothing(cfg_dict):
    """200 switches x 48 ports polled every second make 67k samples/s; the writer here stores 20k/s. The
    gate polls only what history takes (its queue plus the replies in flight under the limit), so the
    interval stretches, no tick polls more than its cap, and the writer never has to drop."""
    cfg = big(cfg_dict, 196)
    net = FakeController(cfg, now=0.0)
    f = net.fabric = Fabric(cfg, net.state.bucket_weights(), net.state.bandwidth_snapshot(), slots=10)
    net.connect()
    queued, limit, queue_max, drain_per_tick = 0, 20_000, 40_000, 2_000
    dropped, per_tick, counter = 0, [], 0
    t = 1.0
    for _ in range(300):  # 30 s of 0.1 s ticks; replies are handled within the tick
        out = f.on_tick(t, history=(queued, limit))
        polled = [d for d, m in out.msgs if isinstance(m, StatsRequest) and m.kind == "port_stats"]
        per_tick.append(len(polled))
        counter += 1000
        for d in polled:
            got = f.on_port_stats(d, [PortStat(p, counter, counter) for p in range(1, 49)], t + 0.05)
            n = sum(len(b) for b in got.batches)
            if queued + n > queue_max:
                dropped += n
            else:
                queued += n
        queued = max(0, queued - drain_per_tick)
        t = round(t + 0.1, 3)
    st = f.poll_status()
    assert dropped == 0
    assert max(per_tick) <= 30  # 1.5x a slot's share of 200 switches
    assert st["effective_interval_p50_s"] > 2.5  # 67k/s produced, 20k/s stored: about 3.4x the interval
    assert st["history_bound"] and st["overloaded"] and st["held_for_history_total"] > 0
    polled_each = f.gate.sent_total / len(cfg.switches)
    assert polled_each > 5  # every switch still polled, fairly (longest-waiting first)


def test_after_polls_were_deferred_a_tick_does_not_poll_every_waiting_switch_at_once(cfg_dict):
    """Released after being held, 1,000 switches used to be polled in one tick (2,000+ requests, 175 ms
    on the event thread, and their replies overflowed the writer)."""
    cfg = big(cfg_dict, 296)
    net = FakeController(cfg, now=0.0)
    f = net.fabric = Fabric(cfg, net.state.bucket_weights(), net.state.bandwidth_snapshot(), slots=10)
    net.connect()
    for k in range(20):  # 2 s held: every switch is due
        f.on_tick(1.0 + k * 0.1, hold_polls=True)
    out = f.on_tick(3.0)
    polled = [d for d, m in out.msgs if isinstance(m, StatsRequest) and m.kind == "port_stats"]
    assert 0 < len(polled) <= 45 and f.gate.capped == len(cfg.switches) - len(polled)
