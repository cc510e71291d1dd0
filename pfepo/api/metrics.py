"""Prometheus metrics of the daemon (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.group_mods = Counter("pfepo_group_mods", "GroupMod messages sent", registry=self.registry)
        self.overrides = Counter("pfepo_weight_overrides", "operator weight overrides accepted", registry=self.registry)
        self.overrides_rejected = Counter("pfepo_weight_overrides_rejected", "operator weight overrides rejected",
                                          registry=self.registry)
        self.events = Counter("pfepo_events", "controller events", ["kind"], registry=self.registry)
        self.signals = Counter("pfepo_signals", "pushed signals by outcome (accepted, rejected, "
                               "unauthorized, too_large, malformed, rate_limited, disabled)", ["outcome"],
                               registry=self.registry)
        self.handler_errors = Counter(
            "pfepo_openflow_handler_errors", "OpenFlow event handler exceptions (logged with traceback; the "
            "event loop went on)", ["handler"], registry=self.registry)
        self.polls = Counter("pfepo_openflow_polls", "poll ticks handled by the OpenFlow thread (read-back, "
                             "stats, probes)", registry=self.registry)
        self.probes_rejected = Counter(
            "pfepo_probe_frames_rejected", "probe frames ignored (malformed, bad_mac, unknown_link, wrong_switch, "
            "wrong_port, outside_window, replay)", ["reason"], registry=self.registry)
        self.sends_dropped = Counter("pfepo_openflow_sends_dropped", "messages dropped because a switch did "
                                     "not read its connection (the next read-back repairs)", registry=self.registry)
        self.switch_errors = Counter(
            "pfepo_openflow_switch_errors", "OFPT_ERROR messages from switches (a message they refused), by OpenFlow "
            "error type and code", ["type", "code"], registry=self.registry)
        self.up = Gauge("pfepo_up", "1 while the daemon runs", registry=self.registry)
        self.up.set(1)

    def add_collector(self, fn) -> None:
        """Register a callable yielding metric families on each scrape (live state, no caching)."""

        class _C:
            def collect(self_inner):
                yield from fn()

        self.registry.register(_C())


def state_families(rt) -> list:
    """Live gauges from the controller state and the history writer."""
    weights = GaugeMetricFamily("pfepo_service_weight", "bucket weight per service/region",
                                labels=["service", "region", "kind"])
    for svc in rt.state.snapshot_services():
        for region, w in svc["bucket_weights"].items():
            weights.add_metric([svc["name"], region, "desired"], w)
        for applied in svc["applied"].values():
            for region, w in applied.items():
                weights.add_metric([svc["name"], region, "applied"], w)
    connected = GaugeMetricFamily("pfepo_switch_connected", "1 if the switch is connected", labels=["switch"])
    util = GaugeMetricFamily("pfepo_port_utilization_pct", "port utilisation % of capacity", labels=["switch", "port"])
    rows = rt.state.switch_rows()  # not snapshot_switches: that copies every port under the state lock
    for name, is_connected, _sync, utilization in rows:
        connected.add_metric([name], 1 if is_connected else 0)
        for port, pct in utilization:
            util.add_metric([name, str(port)], pct)
    hist = GaugeMetricFamily("pfepo_history_samples", "history writer counters", labels=["kind"])
    hist.add_metric(["written"], rt.writer.written)
    hist.add_metric(["dropped"], rt.writer.dropped)
    hist.add_metric(["queued"], rt.writer.queued)
    in_sync = GaugeMetricFamily("pfepo_switch_in_sync", "1 if the switch's groups, meters and flows match "
                                "the desired state (read back)", labels=["switch"])
    for name, is_connected, sync, _ports in rows:
        if is_connected:
            in_sync.add_metric([name], 1 if sync else 0)
    families = [weights, connected, util, hist, in_sync]
    stats = getattr(rt.store, "stats", None)  # InfluxDB backend: spool and delivery counters
    if stats is not None:
        store = GaugeMetricFamily("pfepo_history_backend", "history backend counters (queued, replayed, dropped, ...)",
                                  labels=["kind"])
        for k, v in stats().items():
            if isinstance(v, int | float):
                store.add_metric([k], float(v))
        families.append(store)
    return families
