"""roles_by_dpid: etcd owners -> the (role, generation) the OpenFlow app requests per switch."""

from __future__ import annotations

from pfepo.cluster.agent import roles_by_dpid
from pfepo.cluster.coordinator import Ownership


def test_roles_follow_owners_and_an_unowned_switch_keeps_its_last_role(cfg):
    a, b = cfg.switches[0], cfg.switches[1]
    owners = {a.name: Ownership(a.name, "me", 42), b.name: Ownership(b.name, "peer", 43)}
    roles = roles_by_dpid(cfg, owners, "me", {})
    assert roles[a.dpid] == ("master", 42) and roles[b.dpid] == ("slave", 43)
    # a switch nobody owns right now (between a release and the next claim): unchanged, never master by default
    others = [s for s in cfg.switches if s.name not in owners]
    assert all(roles[s.dpid] == ("slave", 0) for s in others)
    later = roles_by_dpid(cfg, {b.name: owners[b.name]}, "me", roles)
    assert later[a.dpid] == ("master", 42)
