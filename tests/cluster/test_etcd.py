"""EtcdCoordinator against a real etcd (Debian etcd-server, started per test by the ``etcd`` fixture)."""

from __future__ import annotations

import threading

import pytest

from pfepo.cluster.claims import Claim, is_acyclic
from pfepo.cluster.etcd import EtcdCoordinator
from tests.waiting import wait_until

pytestmark = pytest.mark.etcd

REGIONS = {"s-client": None, "s-east": "east", "s-west": "west"}
CAP = {"east": 100.0, "west": 100.0, "north": 100.0}


def _coord(etcd, cid, region, ttl=2):
    c = EtcdCoordinator(etcd.endpoint, "t", cid, region, ttl_s=ttl, timeout_s=2)
    c.join()
    return c


def test_membership_comes_and_goes_with_the_lease(etcd):
    a, b = _coord(etcd, "c-east", "east"), _coord(etcd, "c-west", "west")
    try:
        assert {m.id for m in a.members()} == {"c-east", "c-west"}
        b.leave()
        assert {m.id for m in a.members()} == {"c-east"}
        # kept alive past several TTLs by the keep-alive thread
        c = _coord(etcd, "c-north", "north")
        c._stop.set()  # stop keeping it alive, as if the process froze: the lease expires on its own
        wait_until(lambda: "c-north" not in {m.id for m in a.members()}, timeout=8, message="lease expiry")
        assert "c-east" in {m.id for m in a.members()}
    finally:
        a.leave()


def test_each_switch_has_one_master_and_fails_over_with_a_newer_generation(etcd):
    a, b = _coord(etcd, "c-east", "east"), _coord(etcd, "c-west", "west")
    try:
        for c in (a, b, a, b):
            owners = c.rebalance(REGIONS)
        assert owners["s-east"].owner == "c-east" and owners["s-west"].owner == "c-west"
        assert owners["s-client"].owner in {"c-east", "c-west"}
        old = owners["s-west"].generation
        b._stop.set()  # b stops renewing (a kill -9 seen from etcd): after the TTL a takes s-west
        owners = wait_until(lambda: (o := a.rebalance(REGIONS))["s-west"].owner == "c-east" and o,
                            timeout=8, message="failover of s-west")
        assert owners["s-west"].generation > old
        # b comes back: it is s-west's preferred owner again; a releases, b takes it at a newer generation
        b2 = _coord(etcd, "c-west", "west")
        wait_until(lambda: (a.rebalance(REGIONS), b2.rebalance(REGIONS))[1]["s-west"].owner == "c-west",
                   timeout=5, message="fail-back of s-west")
        assert b2.owners()["s-west"].generation > owners["s-west"].generation
        b2.leave()
    finally:
        a.leave()


def test_policy_revisions_grow_and_watchers_see_the_change(etcd):
    a = _coord(etcd, "c-east", "east")
    try:
        assert a.policy() is None
        seen = threading.Event()
        cancel = a.watch("policy", seen.set)
        r1 = a.put_policy({"p.yaml": "policies: []\n"})
        assert seen.wait(5)
        r2 = a.put_policy({"p.yaml": "policies: []\n# v2\n"})
        got = a.policy()
        assert r2 > r1 and got.revision == r2 and got.files["p.yaml"].endswith("# v2\n")
        cancel()
    finally:
        a.leave()


def test_claims_are_atomic_loop_free_and_capacity_aware(etcd):
    a, b = _coord(etcd, "c-east", "east"), _coord(etcd, "c-west", "west")
    try:
        assert a.claim(Claim("web", "east", "north", 60), CAP) is None
        assert "loop" in b.claim(Claim("web", "north", "east", 10), CAP)
        assert "headroom" in b.claim(Claim("web", "west", "north", 50), CAP)
        assert b.claim(Claim("web", "west", "north", 40), CAP) is None
        # concurrent opposite claims from two controllers: at most one wins, never a cycle
        results = {}

        def go(c, src, dst):
            results[(src, dst)] = c.claim(Claim("api", src, dst, 10), CAP)

        ts = [threading.Thread(target=go, args=(a, "east", "west")),
              threading.Thread(target=go, args=(b, "west", "east"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sum(r is None for r in results.values()) == 1, results
        assert is_acyclic(a.claims())
        # a controller's claims go with its lease
        b.leave()
        assert all(c.owner == "c-east" for c in a.claims())
    finally:
        a.leave()
