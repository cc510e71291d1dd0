import pytest

from pfepo.config import PfepoConfig
from pfepo.openflow.desired import (
    NORMAL,
    REPICK,
    T_COMMIT,
    T_REPLY,
    T_STEER,
    ff_group_id,
    region_group_id,
    service_group_id,
    switch_state,
)
from pfepo.openflow.reconcile import group_changes


@pytest.fixture
def legacy(cfg_dict) -> PfepoConfig:
    cfg_dict["openflow"]["affinity"] = False
    return PfepoConfig.model_validate(cfg_dict)


def test_core_switch_gets_weighted_select_group_and_vip_flows(legacy):
    cfg = legacy
    st = switch_state(cfg, "pfc0", {"web": {"eu": 32, "us": 19, "ap": 13}})
    g = st.groups[service_group_id(0)]
    assert g.weights() == {"eu": 32, "us": 19, "ap": 13}
    assert [b.actions for b in g.buckets] == [(("output", 1),), (("output", 2),), (("output", 3),)]
    assert [b.watch_port for b in g.buckets] == [1, 2, 3]  # OVS skips a bucket whose uplink is down
    vip_flows = [f for f in st.flows if f.group == service_group_id(0)]
    assert dict(vip_flows[0].match)["ipv4_dst"] == "10.0.100.1"
    arp = [f for f in st.flows if dict(f.match).get("eth_type") == 0x0806]
    assert arp and dict(arp[0].match)["arp_tpa"] == "10.0.100.1"
    assert any(f.priority == 0 and f.actions == (("output", NORMAL),) for f in st.flows)


def test_region_switch_rewrites_to_endpoints_and_back(cfg):
    st = switch_state(cfg, "pfr1", {"web": {"eu": 32}})
    assert service_group_id(0) not in st.groups
    g = st.groups[region_group_id(0)]
    assert g.buckets[0].actions == (("set_field", "eth_dst", "00:00:00:00:01:01"),
                                    ("set_field", "ipv4_dst", "10.0.1.1"), ("output", 2))
    rev = [f for f in st.flows if ("ipv4_src", "10.0.1.1") in f.match]
    assert rev[0].actions[0] == ("set_field", "ipv4_src", "10.0.100.1")


def test_missing_weight_means_zero(cfg):
    st = switch_state(cfg, "pfc0", {"web": {"eu": 64}})
    assert st.groups[1].weights() == {"eu": 64, "us": 0, "ap": 0}


def test_reconcile_adds_missing_modifies_different_keeps_equal(cfg):
    want = switch_state(cfg, "pfc0", {"web": {"eu": 32, "us": 19, "ap": 13}}).groups
    adds = group_changes(want, {})
    assert [c.command for c in adds] == ["add"] * 4
    assert adds[0].group.group_id == service_group_id(0)  # fast-failover groups reference it: it goes first
    assert group_changes(want, want) == []
    other = switch_state(cfg, "pfc0", {"web": {"eu": 64}}).groups
    ch = group_changes(want, other)
    assert [c.command for c in ch] == ["modify"] and ch[0].group.weights()["us"] == 19


def test_reconcile_leaves_foreign_groups_alone(cfg):
    want = switch_state(cfg, "pfc0", {"web": {"eu": 64}}).groups
    foreign = {**want, 999: want[1]}
    assert group_changes(want, foreign) == []


def test_bandwidth_becomes_meter_on_region_response_flows(cfg):
    from pfepo.openflow.desired import meter_for, service_meter_id
    from pfepo.openflow.reconcile import meter_changes

    st = switch_state(cfg, "pfr1", {"web": {"eu": 64}}, {"web": {"eu": 20.0}})
    mid = service_meter_id(0)
    assert st.meters == {mid: meter_for(20.0, mid)} and st.meters[mid].rate_kbps == 20000
    metered = [f for f in st.flows if f.meter == mid]
    assert len(metered) == 2 and all(("set_field", "ipv4_src", "10.0.100.1") in f.actions for f in metered)
    assert switch_state(cfg, "pfr1", {"web": {"eu": 64}}, {"web": {"eu": None}}).meters == {}
    assert switch_state(cfg, "pfc0", {"web": {"eu": 64}}, {"web": {"eu": 20.0}}).meters == {}
    assert meter_changes(st.meters, {}) == [("add", st.meters[mid])]
    assert meter_changes(st.meters, {mid: meter_for(40.0, mid)}) == [("modify", st.meters[mid])]
    assert meter_changes(st.meters, st.meters) == []


def test_affinity_bucket_sets_region_and_resubmits_commit_table_outputs(cfg):
    st = switch_state(cfg, "pfc0", {"web": {"eu": 32, "us": 19, "ap": 13}})
    g = st.groups[service_group_id(0)]
    assert g.kind == "select" and g.weights() == {"eu": 32, "us": 19, "ap": 13}
    assert [b.actions for b in g.buckets] == [(("set_field", "reg0", n), ("resubmit", T_COMMIT)) for n in (1, 2, 3)]
    assert [b.watch_port for b in g.buckets] == [1, 2, 3]
    zone = cfg.openflow.conntrack_zone
    commit = {dict(f.match)["reg0"]: f.actions for f in st.flows if f.table_id == T_COMMIT}
    assert commit == {n: (("ct", True, zone, None, n), ("output", n)) for n in (1, 2, 3)}
    t0 = [f for f in st.flows if f.table_id == 0 and f.actions and f.actions[0][0] == "ct"]
    assert {dict(f.match).get("ipv4_dst") or dict(f.match).get("ipv4_src") for f in t0} == {"10.0.100.1"}
    assert {f.actions[0][3] for f in t0} == {T_STEER, T_REPLY}  # requests and replies share the zone
    assert any(f.table_id == T_REPLY and f.actions == (("output", NORMAL),) for f in st.flows)


def test_affinity_pinned_connections_follow_their_fast_failover_group(cfg):
    st = switch_state(cfg, "pfc0", {"web": {"eu": 64}})
    for n, port in ((1, 1), (2, 2), (3, 3)):
        ff = st.groups[ff_group_id(0, n)]
        assert ff.kind == "ff"
        assert [(b.label, b.watch_port, b.watch_group, b.actions) for b in ff.buckets] == [
            (ff.buckets[0].label, port, None, (("output", port),)),
            (REPICK, None, service_group_id(0), (("group", service_group_id(0)),)),
        ]
        pinned = [f for f in st.flows if f.table_id == T_STEER and ("ct_mark", n) in f.match]
        assert pinned and pinned[0].group == ff.group_id
    new = [f for f in st.flows if f.table_id == T_STEER and not any(k == "ct_mark" for k, _ in f.match)]
    assert new[0].group == service_group_id(0) and new[0].priority < pinned[0].priority


def test_evicted_region_hands_pinned_connections_back_to_the_select_group(cfg):
    st = switch_state(cfg, "pfc0", {"web": {"eu": 0, "us": 40, "ap": 24}}, evicted={"web": ["eu"]})
    ff = st.groups[ff_group_id(0, 1)]
    assert [b.label for b in ff.buckets] == [REPICK]
    assert [b.label for b in st.groups[ff_group_id(0, 2)].buckets] == ["us", REPICK]
    normal = switch_state(cfg, "pfc0", {"web": {"eu": 0, "us": 40, "ap": 24}}).groups
    assert [c.group.group_id for c in group_changes(st.groups, normal)] == [ff_group_id(0, 1)]
    assert group_changes(st.groups, st.groups) == []


def test_region_switch_is_unchanged_by_affinity(cfg, legacy):
    assert switch_state(cfg, "pfr1", {"web": {"eu": 64}}) == switch_state(legacy, "pfr1", {"web": {"eu": 64}})
