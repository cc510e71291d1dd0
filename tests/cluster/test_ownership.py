"""The pure ownership rule: one owner per switch, region-local first, stable failover to live peers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pfepo.cluster.ownership import Member, desired_owners, preferred_owner, switch_regions

REGIONS = {"s-client": None, "s-east": "east", "s-west": "west", "s-north": "north"}


def test_region_controller_owns_its_switches_and_shared_ones_are_spread():
    members = [Member("c-east", "east"), Member("c-west", "west"), Member("c-north", "north")]
    owners = desired_owners(REGIONS, members)
    assert owners["s-east"] == "c-east" and owners["s-west"] == "c-west" and owners["s-north"] == "c-north"
    assert owners["s-client"] in {"c-east", "c-west", "c-north"}
    # order of the member list does not matter: every controller computes the same answer
    assert desired_owners(REGIONS, list(reversed(members))) == owners


def test_failover_goes_to_a_live_peer_and_only_the_dead_controllers_switches_move():
    members = [Member("c-east", "east"), Member("c-west", "west"), Member("c-north", "north")]
    before = desired_owners(REGIONS, members)
    after = desired_owners(REGIONS, [m for m in members if m.id != "c-west"])
    assert after["s-west"] in {"c-east", "c-north"}
    for sw, owner in before.items():
        if owner != "c-west":
            assert after[sw] == owner, sw


def test_no_live_controller_means_no_owner():
    assert preferred_owner("s-east", "east", []) is None


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]),
                          st.sampled_from(["east", "west", "north", None])), min_size=1, max_size=5,
                unique_by=lambda t: t[0]))
def test_every_switch_gets_exactly_one_live_owner(raw):
    members = [Member(i, r) for i, r in raw]
    owners = desired_owners(REGIONS, members)
    ids = {m.id for m in members}
    assert set(owners) == set(REGIONS)
    assert all(o in ids for o in owners.values())
    for sw, region in REGIONS.items():
        local = sorted(m.id for m in members if region is not None and m.region == region)
        if local:
            assert owners[sw] == local[0]


def test_switch_regions_from_config(cfg):
    regions = switch_regions(cfg)
    for r in cfg.regions:
        assert regions[r.switch] == r.name
