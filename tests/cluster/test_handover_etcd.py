"""The handover chain on a real etcd (no OVS): lease renewal, detection of a dead peer, the claim.

A kill -9 seen from etcd is a lease nobody renews. These check each link of docs/coordination.md's
"Handover time" bound: a failed renewal is retried at once, ``rebalance`` returns what etcd holds after
its own transactions (no extra read), and a survivor whose watches are gone still masters the dead
peer's switch within TTL + 1 s through the member poll.
"""

from __future__ import annotations

import time
import types

import pytest
from etcd3gw import exceptions as etcd_exc

from pfepo.cluster import etcd as etcd_mod
from pfepo.cluster.agent import ClusterAgent
from pfepo.cluster.etcd import EtcdCoordinator
from pfepo.config import PfepoConfig
from pfepo.policy.reload import PolicyReloader
from tests.waiting import wait_until

pytestmark = pytest.mark.etcd
REGIONS = {"s-client": None, "s-east": "east", "s-west": "west"}


def test_rebalance_returns_the_owners_etcd_holds(etcd):
    a = EtcdCoordinator(etcd.endpoint, "t", "c-east", "east", ttl_s=3)
    b = EtcdCoordinator(etcd.endpoint, "t", "c-west", "west", ttl_s=3)
    a.join()
    b.join()
    try:
        for c in (a, b, a, b):
            got = c.rebalance(REGIONS)
            assert got == c.owners()  # generations included: the txn revision is the key's mod revision
        assert got["s-east"].owner == "c-east" and got["s-west"].owner == "c-west"
        assert a.member_ids() == {"c-east", "c-west"}
    finally:
        a.leave()
        b.leave()
    assert a.member_ids() == frozenset()


def test_a_failed_renewal_is_retried_at_once_not_a_period_later(etcd, monkeypatch):
    attempts: list[tuple[float, bool]] = []

    class FlakyLease(etcd_mod.Lease):
        def refresh(self) -> int:
            fail = len(attempts) == 0  # the first renewal fails (a broken pooled connection)
            attempts.append((time.monotonic(), fail))
            if fail:
                raise etcd_exc.ConnectionFailedError("cut")
            return super().refresh()

    monkeypatch.setattr(etcd_mod, "Lease", FlakyLease)
    c = EtcdCoordinator(etcd.endpoint, "t", "c-east", "east", ttl_s=3)
    c.join()
    try:
        wait_until(lambda: len(attempts) >= 3, timeout=5, message="renewals")
        gap = attempts[1][0] - attempts[0][0]
        assert gap < 0.5, f"retried {gap:.2f} s after the failure (a period is 1 s)"
        assert attempts[2][0] - attempts[1][0] == pytest.approx(1.0, abs=0.3)  # back on the TTL/3 schedule
        assert c.member_ids() == {"c-east"} and c.lease_lost == 0
    finally:
        c.leave()


def _agent(cfg_dict, etcd, tmp_path, cid, region) -> ClusterAgent:
    d = dict(cfg_dict, state_dir=str(tmp_path / cid),
             cluster={"endpoints": [etcd.endpoint], "name": "t", "controller_id": cid, "region": region,
                      "lease_ttl_s": 3, "timeout_s": 1})
    cfg = PfepoConfig.model_validate(d)
    # The agent needs cfg, app and reloader from the daemon Runtime; no OpenFlow app here (roles are read
    # from the agent, which is what the app sends).
    return ClusterAgent(types.SimpleNamespace(cfg=cfg, app=None, reloader=PolicyReloader([], lambda: cfg)))


def test_a_dead_peer_s_switch_is_mastered_within_ttl_plus_1s_without_watches(cfg_dict, etcd, tmp_path):
    eu = _agent(cfg_dict, etcd, tmp_path, "c-eu", "eu").start()
    us = _agent(cfg_dict, etcd, tmp_path, "c-us", "us")
    us.period_s = 60.0  # no periodic step in this test: only a watch event or the member poll starts one
    us.start()
    observer = EtcdCoordinator(etcd.endpoint, "t", "observer")  # reads only; never joins
    try:
        dpid = next(s.dpid for s in eu.cfg.switches if s.name == eu.cfg.region("eu").switch)
        wait_until(lambda: eu.roles.get(dpid, ("", 0))[0] == "master" and us.roles.get(dpid, ("", 0))[0] == "slave",
                   timeout=10, message="c-eu MASTER of eu's switch, c-us SLAVE")
        old_gen = eu.roles[dpid][1]
        for cancel in us._cancels:  # the survivor's watch streams ended silently: only the poll is left
            cancel()
        # kill -9 of c-eu as etcd sees it: its threads stop, nothing is revoked, the lease runs out
        eu._stop.set()
        eu.coord._stop.set()
        t_kill = time.monotonic()
        seen: dict[str, float] = {}

        def progress() -> bool:  # when etcd dropped the lease (observer read), when c-us became MASTER
            if "gone" not in seen and "c-eu" not in observer.member_ids():
                seen["gone"] = time.monotonic()
            if us.roles.get(dpid, ("", 0))[0] == "master":
                seen.setdefault("gone", time.monotonic())
                seen["master"] = time.monotonic()
                return True
            return False

        wait_until(progress, timeout=10, interval=0.01, message="c-us MASTER of eu's switch")
        took, after = seen["master"] - t_kill, seen["master"] - seen["gone"]
        assert took <= 3 + 1, f"handover took {took:.2f} s (TTL 3 s)"
        # the member poll (every 0.2 s) found it
        assert after <= 0.5, f"c-us MASTER {after:.2f} s after the lease was gone"
        assert us.roles[dpid][1] > old_gen  # a newer generation: the dead master would be refused
    finally:
        us.stop()
        eu.stop()
