"""The flows and SELECT groups each switch should hold, as plain data (no os-ken).

Data plane, per service (VIP:port):
- On the switch where clients attach (a region's ``uplink.switch``), with connection affinity (the
  default, ``openflow.affinity``; OVN's load-balancer shape, see docs/affinity.md): VIP traffic goes
  through conntrack (``openflow.conntrack_zone``) into table 1. A connection already pinned
  (``ct_mark`` = region number) goes to its fast-failover group ``ff_group_id`` (the region's uplink
  while it is live and not evicted, else back to the SELECT group: a re-pick). A new connection enters
  SELECT group ``service_group_id``, whose bucket only sets ``reg0`` = region number and resubmits to
  table 3, where conntrack commits the region into ``ct_mark`` and the packet leaves by the uplink.
  Replies from the VIP pass the same zone (else entries stay SYN_SENT). A weight change therefore
  moves only new connections; live ones stay where they are (OVS would remap 56-88 % of them).
  Without affinity, a bucket outputs straight to the uplink (OVS remaps connections on every change).
  Bucket weights are the regions' traffic shares (integers summing to ``weight_slots``); ``watch_port``
  is the uplink, so OVS skips a bucket at once when that port loses carrier.
- On each region switch: VIP traffic enters group ``region_group_id`` that picks one of the region's
  endpoints (equal weights) and rewrites eth_dst/ipv4_dst to it; the reply path rewrites ipv4_src back
  to the VIP, so clients only ever see the VIP.
- ARP requests for the VIP go to the controller, which answers with the VIP MAC.
- Everything else: table-miss NORMAL (L2 learning switch); the topology is a tree, so no loops.
- Cluster (``cluster.ingress`` / ``cluster.inter_region_ports``, docs/coordination.md): every region's
  client-side switch splits the services; traffic arriving on an inter-region port is never steered
  again (one-hop rule): VIP requests go straight to the local region (committed with a transit ct_mark so
  their replies go back the port they came from), replies to our own clients pass, the rest is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pfepo.config import PfepoConfig, ServiceConfig
from pfepo.telemetry.probes import ETH_TYPE as PROBE_ETH_TYPE

PRIO_PROBE = 400
PRIO_ARP_VIP = 300
PRIO_VIP = 200
PRIO_MISS = 0
CONTROLLER = "controller"
NORMAL = "normal"

# Flow tables (affinity): 0 classify + conntrack, 1 pinned/new, 2 replies, 3 commit the chosen region.
T_CLASSIFY, T_STEER, T_REPLY, T_COMMIT = 0, 1, 2, 3
PRIO_PINNED = 110
PRIO_NEW = 100
PRIO_TRANSIT = 250  # one-hop rule: above the VIP steering, below ARP/probes
PRIO_TRANSIT_REPLY = 120
TRANSIT_MARK = 0x10000  # ct_mark of a connection that arrived on inter-region port P: TRANSIT_MARK + P

# An action is a tuple:
#   ("output", port) | ("output", "normal"/"controller") | ("set_field", name, value)
#   ("group", group_id) | ("resubmit", table)
#   ("ct", commit: bool, zone: int, table: int | None, mark: int | None)
#       conntrack in ``zone``; ``table``: continue there after the lookup (None: no recirculation);
#       ``mark``: with commit, store it in the connection's ct_mark.
Action = tuple


@dataclass(frozen=True)
class Bucket:
    weight: int
    watch_port: int | None
    actions: tuple[Action, ...]
    label: str = field(default="", compare=False)  # region/endpoint name, for people only
    watch_group: int | None = None


@dataclass(frozen=True)
class Group:
    group_id: int
    buckets: tuple[Bucket, ...]
    kind: str = "select"

    def weights(self) -> dict[str, int]:
        return {b.label: b.weight for b in self.buckets}


@dataclass(frozen=True)
class Meter:
    """A drop-band meter: traffic over ``rate_kbps`` (with ``burst_kb`` of slack) is dropped."""

    meter_id: int
    rate_kbps: int
    burst_kb: int


@dataclass(frozen=True)
class Flow:
    priority: int
    match: tuple[tuple[str, object], ...]
    actions: tuple[Action, ...] = ()
    group: int | None = None
    meter: int | None = None
    table_id: int = 0


@dataclass
class SwitchState:
    flows: list[Flow] = field(default_factory=list)
    groups: dict[int, Group] = field(default_factory=dict)
    meters: dict[int, Meter] = field(default_factory=dict)


def service_meter_id(index: int) -> int:
    return 1 + index


def meter_for(mbps: float, meter_id: int) -> Meter:
    """Rate in kbit/s; burst = 250 ms at that rate (at least 64 kbit) so TCP can reach the rate."""
    kbps = max(1, round(mbps * 1000))
    return Meter(meter_id, kbps, max(64, kbps // 4))


def service_group_id(index: int) -> int:
    return 1 + index


def region_group_id(index: int) -> int:
    return 1001 + index


def region_number(cfg: PfepoConfig, region: str) -> int:
    """1-based number of a region (its ct_mark and reg0 value; 0 means "not pinned")."""
    return 1 + [r.name for r in cfg.regions].index(region)


def ff_group_id(index: int, number: int) -> int:
    """Fast-failover group of (service ``index``, region ``number``): 2000 + 64 * index + number."""
    return 2000 + 64 * index + number


REPICK = "repick"  # label of the fast-failover bucket that hands a connection back to the SELECT group


def _vip_match(svc: ServiceConfig) -> tuple[tuple[str, object], ...]:
    proto, l4 = (6, "tcp_dst") if svc.protocol == "tcp" else (17, "udp_dst")
    return (("eth_type", 0x0800), ("ip_proto", proto), ("ipv4_dst", svc.vip), (l4, svc.port))


def _reply_match(svc: ServiceConfig) -> tuple[tuple[str, object], ...]:
    proto, l4 = (6, "tcp_src") if svc.protocol == "tcp" else (17, "udp_src")
    return (("eth_type", 0x0800), ("ip_proto", proto), ("ipv4_src", svc.vip), (l4, svc.port))


def conntrack_zone(cfg: PfepoConfig, switch_name: str) -> int:
    """The switch's conntrack zone: ``openflow.conntrack_zone``, plus the switch's index when a cluster
    has inter-region ports (switches on one userspace OVS share one conntrack table, so each client-side
    switch needs its own zone to keep its own view of a connection, as separate devices would)."""
    base = cfg.openflow.conntrack_zone
    if cfg.cluster is None or not cfg.cluster.inter_region_ports:
        return base
    return base + [s.name for s in cfg.switches].index(switch_name)


def _ingress_affinity(cfg: PfepoConfig, st: SwitchState, i: int, svc: ServiceConfig, ingress: list,
                      w: Mapping[str, int], evicted: set[str], zone: int) -> None:
    """Conntrack-pinned splitting for service ``i`` on its ingress switch (module docstring)."""
    gid = service_group_id(i)
    st.groups[gid] = Group(gid, tuple(
        Bucket(int(w.get(r.name, 0)), r.uplink.port,
               (("set_field", "reg0", region_number(cfg, r.name)), ("resubmit", T_COMMIT)), r.name)
        for r in ingress))
    repick = Bucket(0, None, (("group", gid),), REPICK, watch_group=gid)
    for r in ingress:
        n = region_number(cfg, r.name)
        ff = ff_group_id(i, n)
        own = () if r.name in evicted else (Bucket(0, r.uplink.port, (("output", r.uplink.port),), r.name),)
        st.groups[ff] = Group(ff, (*own, repick), kind="ff")
        st.flows.append(Flow(PRIO_PINNED, (*_vip_match(svc), ("ct_mark", n)), group=ff, table_id=T_STEER))
        commit = (("ct", True, zone, None, n), ("output", r.uplink.port))
        flow = Flow(PRIO_NEW, (("eth_type", 0x0800), ("reg0", n)), commit, table_id=T_COMMIT)
        if flow not in st.flows:  # one per region, shared by every service
            st.flows.append(flow)
    st.flows.append(Flow(PRIO_VIP, _vip_match(svc), (("ct", False, zone, T_STEER, None),)))
    st.flows.append(Flow(PRIO_NEW, _vip_match(svc), group=gid, table_id=T_STEER))
    st.flows.append(Flow(PRIO_VIP, _reply_match(svc), (("ct", False, zone, T_REPLY, None),)))
    reply = Flow(PRIO_MISS, (), (("output", NORMAL),), table_id=T_REPLY)
    if reply not in st.flows:
        st.flows.append(reply)


def _cluster_ingress(cfg: PfepoConfig, switch_name: str, regions: list) -> list:
    """Regions as seen from a further client-side switch (``cluster.ingress``: its port to each region)."""
    ports = cfg.cluster.ingress.get(switch_name, {}) if cfg.cluster is not None else {}
    return [r.model_copy(update={"uplink": r.uplink.model_copy(update={"switch": switch_name, "port": ports[r.name]})})
            for r in regions if r.name in ports]


def _one_hop(cfg: PfepoConfig, st: SwitchState, switch_name: str, i: int, svc: ServiceConfig, ingress: list) -> None:
    """Traffic from another region (an inter-region port) is delivered locally or dropped, never steered."""
    from pfepo.cluster.ownership import switch_regions

    transit = cfg.cluster.inter_region_ports.get(switch_name, []) if cfg.cluster is not None else []
    if not transit:  # switch_regions walks every switch: 3 ms of every failover at 1,000 switches
        return
    here = switch_regions(cfg).get(switch_name)
    local = next((r.uplink.port for r in ingress if r.name == here), None)
    zone = conntrack_zone(cfg, switch_name)
    for p in transit:
        deliver = (("ct", True, zone, None, TRANSIT_MARK + p), ("output", local)) if local is not None else ()
        st.flows.append(Flow(PRIO_TRANSIT, (("in_port", p), *_vip_match(svc)), deliver))
        # from there: only replies to our own clients' connections (ct_mark = a region) pass; the rest
        # is dropped. Replies from the local region to a transit connection go back the way it came.
        flows = [Flow(PRIO_MISS + 1, (("in_port", p),), ()), Flow(PRIO_NEW, (("in_port", p),), (), table_id=T_REPLY)]
        flows += [Flow(PRIO_PINNED, (("in_port", p), ("ct_mark", region_number(cfg, r.name))), (("output", NORMAL),),
                       table_id=T_REPLY) for r in cfg.regions]
        if local is not None:
            flows.append(Flow(PRIO_TRANSIT_REPLY, (("in_port", local), ("ct_mark", TRANSIT_MARK + p)), (("output", p),),
                              table_id=T_REPLY))
        st.flows.extend(f for f in flows if f not in st.flows)


def switch_state(cfg: PfepoConfig, switch_name: str, weights: Mapping[str, Mapping[str, int]],
                 bandwidth: Mapping[str, Mapping[str, float | None]] | None = None,
                 evicted: Mapping[str, Iterable[str]] | None = None) -> SwitchState:
    """Everything ``switch_name`` should hold.

    ``weights``: bucket weights {service: {region: int}}. ``bandwidth``: allocated Mbit/s per service and
    region ({service: {region: mbps or None}}); a region switch meters the service's response traffic
    (server -> client, the bulk of the bytes) at that rate; None means unmetered. ``evicted``: regions
    per service whose pinned connections are handed back to the SELECT group (with affinity, weight 0
    only stops new connections; eviction empties the region).
    """
    bandwidth = bandwidth or {}
    st = SwitchState()
    st.flows.append(Flow(PRIO_MISS, (), ((("output", NORMAL)),)))
    if cfg.probes.enabled:  # link probes come back to the controller, never flooded by NORMAL
        st.flows.append(Flow(PRIO_PROBE, (("eth_type", PROBE_ETH_TYPE),), (("output", CONTROLLER),)))
    for i, svc in enumerate(cfg.services):
        regions = [r for r in cfg.regions if r.name in svc.weights]
        ingress = [r for r in regions if r.uplink.switch == switch_name] or _cluster_ingress(cfg, switch_name, regions)
        _one_hop(cfg, st, switch_name, i, svc, ingress)
        if ingress:
            w = weights.get(svc.name, {})
            gone = set((evicted or {}).get(svc.name, ()))
            if cfg.openflow.affinity:
                _ingress_affinity(cfg, st, i, svc, ingress, w, gone, conntrack_zone(cfg, switch_name))
            else:
                gid = service_group_id(i)
                st.groups[gid] = Group(gid, tuple(
                    Bucket(int(w.get(r.name, 0)), r.uplink.port, (("output", r.uplink.port),), r.name)
                    for r in ingress))
                st.flows.append(Flow(PRIO_VIP, _vip_match(svc), group=gid))
            st.flows.append(
                Flow(PRIO_ARP_VIP, (("eth_type", 0x0806), ("arp_op", 1), ("arp_tpa", svc.vip)), (("output", CONTROLLER),))
            )
        for r in regions:
            if r.switch != switch_name:
                continue
            gid = region_group_id(i)
            st.groups[gid] = Group(
                gid,
                tuple(
                    Bucket(
                        1,
                        e.port,
                        (("set_field", "eth_dst", e.mac), ("set_field", "ipv4_dst", e.ip), ("output", e.port)),
                        e.name,
                    )
                    for e in r.endpoints
                ),
            )
            st.flows.append(Flow(PRIO_VIP, _vip_match(svc), group=gid))
            proto, l4 = (6, "tcp_src") if svc.protocol == "tcp" else (17, "udp_src")
            mbps = bandwidth.get(svc.name, {}).get(r.name)
            meter_id = None
            if mbps is not None:
                meter_id = service_meter_id(i)
                st.meters[meter_id] = meter_for(mbps, meter_id)
            for e in r.endpoints:
                st.flows.append(
                    Flow(
                        PRIO_VIP,
                        (("in_port", e.port), ("eth_type", 0x0800), ("ip_proto", proto), ("ipv4_src", e.ip), (l4, svc.port)),
                        (("set_field", "ipv4_src", svc.vip), ("output", NORMAL)),
                        meter=meter_id,
                    )
                )
    return st
