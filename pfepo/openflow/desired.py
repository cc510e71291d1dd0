"""The flows and SELECT groups each switch should hold, as plain data (no os-ken).

Data plane, per service (VIP:port):
- On the switch where clients attach (a region's ``uplink.switch``): VIP traffic enters SELECT group
  ``service_group_id`` with one bucket per region; a bucket outputs to the uplink toward its region and
  its weight is the region's traffic share (integers summing to ``weight_slots``). ``watch_port`` is the
  uplink, so OVS skips a bucket at once when that port loses carrier.
- On each region switch: VIP traffic enters group ``region_group_id`` that picks one of the region's
  endpoints (equal weights) and rewrites eth_dst/ipv4_dst to it; the reply path rewrites ipv4_src back
  to the VIP, so clients only ever see the VIP.
- ARP requests for the VIP go to the controller, which answers with the VIP MAC.
- Everything else: table-miss NORMAL (L2 learning switch); the topology is a tree, so no loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pfepo.config import PfepoConfig, ServiceConfig
from pfepo.telemetry.probes import ETH_TYPE as PROBE_ETH_TYPE

PRIO_PROBE = 400
PRIO_ARP_VIP = 300
PRIO_VIP = 200
PRIO_MISS = 0
CONTROLLER = "controller"
NORMAL = "normal"

# An action is a tuple: ("output", port) | ("output", "normal"/"controller") | ("set_field", name, value)
Action = tuple


@dataclass(frozen=True)
class Bucket:
    weight: int
    watch_port: int | None
    actions: tuple[Action, ...]
    label: str = field(default="", compare=False)  # region/endpoint name, for people only


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


def _vip_match(svc: ServiceConfig) -> tuple[tuple[str, object], ...]:
    proto, l4 = (6, "tcp_dst") if svc.protocol == "tcp" else (17, "udp_dst")
    return (("eth_type", 0x0800), ("ip_proto", proto), ("ipv4_dst", svc.vip), (l4, svc.port))


def switch_state(cfg: PfepoConfig, switch_name: str, weights: Mapping[str, Mapping[str, int]],
                 bandwidth: Mapping[str, Mapping[str, float | None]] | None = None) -> SwitchState:
    """Everything ``switch_name`` should hold.

    ``weights``: bucket weights {service: {region: int}}. ``bandwidth``: allocated Mbit/s per service and
    region ({service: {region: mbps or None}}); a region switch meters the service's response traffic
    (server -> client, the bulk of the bytes) at that rate; None means unmetered.
    """
    bandwidth = bandwidth or {}
    st = SwitchState()
    st.flows.append(Flow(PRIO_MISS, (), ((("output", NORMAL)),)))
    if cfg.probes.enabled:  # link probes come back to the controller, never flooded by NORMAL
        st.flows.append(Flow(PRIO_PROBE, (("eth_type", PROBE_ETH_TYPE),), (("output", CONTROLLER),)))
    for i, svc in enumerate(cfg.services):
        regions = [r for r in cfg.regions if r.name in svc.weights]
        ingress = [r for r in regions if r.uplink.switch == switch_name]
        if ingress:
            gid = service_group_id(i)
            w = weights.get(svc.name, {})
            st.groups[gid] = Group(
                gid,
                tuple(
                    Bucket(int(w.get(r.name, 0)), r.uplink.port, (("output", r.uplink.port),), r.name)
                    for r in ingress
                ),
            )
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
