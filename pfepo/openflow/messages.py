"""The OpenFlow messages the pure sync (switch.py) asks to send, as plain dataclasses.

ofmsg.to_osken translates each to an os-ken message in one place; the fake switch in
tests/openflow/fakeswitch.py applies them directly. Nothing here imports os-ken.
"""

from __future__ import annotations

from dataclasses import dataclass

from pfepo.openflow.desired import Flow, Group, Meter

STATS_KINDS = ("port_desc", "port_stats", "meter_config", "group_desc", "flow_stats")


@dataclass(frozen=True)
class FlowMod:
    flow: Flow
    command: str = "add"  # "add" (replaces a flow with the same table/priority/match) | "delete_strict"


@dataclass(frozen=True)
class GroupMod:
    group: Group
    command: str  # "add" | "modify"


@dataclass(frozen=True)
class MeterMod:
    meter: Meter
    command: str  # "add" | "modify"


@dataclass(frozen=True)
class StatsRequest:
    """A multipart request; ``flow_stats`` asks only for flows carrying our cookie."""

    kind: str  # one of STATS_KINDS


@dataclass(frozen=True)
class EchoRequest:
    data: bytes


@dataclass(frozen=True)
class PacketOut:
    port: int
    data: bytes


@dataclass(frozen=True)
class ProbeOut:
    """A link probe to send out of ``port``. The adapter stamps the send time when it actually sends it
    (Fabric.probe_frame), so the time spent building the burst before it does not count as latency."""

    port: int
    link_id: int
    seq: int


Message = FlowMod | GroupMod | MeterMod | StatsRequest | EchoRequest | PacketOut | ProbeOut


@dataclass(frozen=True)
class PortStat:
    """One PortStatsReply entry, counters as the switch reports them."""

    port_no: int
    rx_bytes: int
    tx_bytes: int
    rx_packets: int = 0
    tx_packets: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0


# --- multi-controller roles (issue 15, pfepo.cluster) ----------------------------------------------------

ROLES = ("nochange", "equal", "master", "slave")  # OFPCR_ROLE_* values 0..3, in order


@dataclass(frozen=True)
class RoleRequest:
    """OFPT_ROLE_REQUEST: ``generation_id`` comes from etcd (the ownership key's revision), so the switch
    refuses a MASTER/SLAVE request older than one it has seen (OFPRRFC_STALE): a stale master is fenced."""

    role: str  # one of ROLES
    generation_id: int


# What a SLAVE must never send: it would change a switch another controller owns (OVS refuses them too,
# with OFPBRC_IS_SLAVE, but we do not rely on that).
STATE_CHANGING = (FlowMod, GroupMod, MeterMod, PacketOut, ProbeOut)


def allowed_as(role: str, msg: object) -> bool:
    """Whether a controller in ``role`` may send ``msg``: a SLAVE only reads (stats, echo, role)."""
    return role != "slave" or not isinstance(msg, STATE_CHANGING)
