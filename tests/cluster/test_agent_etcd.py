"""ClusterAgent against a real etcd that goes away and comes back: last roles kept, then re-sync."""

from __future__ import annotations

import json
import types

import pytest

from pfepo.cluster.agent import ClusterAgent
from pfepo.config import PfepoConfig
from pfepo.controller.audit import AuditLog
from pfepo.policy.reload import PolicyReloader
from tests.waiting import wait_until

pytestmark = pytest.mark.etcd
GOOD = "policies:\n  - name: p1\n    match: {services: [web]}\n    risk: {thresholds: {act: 0.4}}\n"


def _rt(cfg_dict, etcd, tmp_path, cid, region):
    d = dict(cfg_dict, state_dir=str(tmp_path / cid),
             cluster={"endpoints": [etcd.endpoint], "name": "t", "controller_id": cid, "region": region,
                      "lease_ttl_s": 3, "timeout_s": 0.5})
    # The agent needs only cfg, app and reloader from the daemon Runtime: no OpenFlow app in this test.
    cfg = PfepoConfig.model_validate(d)
    return types.SimpleNamespace(cfg=cfg, app=None, reloader=PolicyReloader([], lambda: cfg),
                                 audit=AuditLog(tmp_path / f"{cid}-audit.jsonl"))


def _audit(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_etcd_down_keeps_the_last_roles_and_a_restart_resyncs(cfg_dict, etcd, tmp_path):
    rt = _rt(cfg_dict, etcd, tmp_path, "c-eu", "eu")
    agent = ClusterAgent(rt).start()
    try:
        eu_dpid = next(s.dpid for s in rt.cfg.switches if s.name == rt.cfg.region("eu").switch)
        wait_until(lambda: len(agent.roles) == len(rt.cfg.switches) and agent.roles[eu_dpid][0] == "master",
                   timeout=10, message="roles from etcd")
        # alone in the cluster, it owns every switch
        assert {r for r, _ in agent.roles.values()} == {"master"}
        before = dict(agent.roles)
        etcd.kill()
        wait_until(lambda: not agent.etcd_ok, timeout=10, message="etcd seen down")
        assert agent.roles == before  # keep the last good state while etcd is away
        assert any("pfepo_cluster_etcd_up" in f.name and f.samples[0].value == 0 for f in agent.metric_families())
        etcd.start()  # same data dir and ports: a restart, not a new cluster
        wait_until(lambda: agent.etcd_ok, timeout=15, message="etcd seen back")
        wait_until(lambda: {r for r, _ in agent.roles.values()} == {"master"}
                   and set(agent.coord.owners()) == {s.name for s in rt.cfg.switches},
                   timeout=15, message="ownership re-synced after the restart")
        assert all(agent.roles[d][1] >= g for d, (_, g) in before.items())  # generations never go back
        # a policy stored after the restart still reaches the controller (watches are recreated)
        rev = agent.coord.put_policy({"000-p.yaml": GOOD})
        wait_until(lambda: agent.mirror.revision == rev, timeout=2, message="policy after the etcd restart")
        # the audit log says which revision the following decisions are made under, and whether it is in force
        wait_until(lambda: any(r.get("kind") == "policy_revision" and r["revision"] == rev
                               for r in _audit(tmp_path / "c-eu-audit.jsonl")), timeout=2, message="audit line")
        line = next(r for r in _audit(tmp_path / "c-eu-audit.jsonl") if r.get("revision") == rev)
        assert line["in_force"] is True and line["digest"] == rt.reloader.current.digest
        bad = agent.coord.put_policy({"000-p.yaml": "policies: [{name: x, nosuch: 1}]\n"})
        wait_until(lambda: any(r.get("revision") == bad for r in _audit(tmp_path / "c-eu-audit.jsonl")), timeout=2,
                   message="audit line of the rejected revision")
        line = next(r for r in _audit(tmp_path / "c-eu-audit.jsonl") if r.get("revision") == bad)
        assert line["in_force"] is False and line["problems"] and line["digest"] == rt.reloader.current.digest
    finally:
        agent.stop()
