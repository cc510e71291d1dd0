"""The daemon's side of the cluster: join, keep switch ownership converging, mirror the policy.

One thread ("cluster") runs a rebalance step every ``lease_ttl_s / 3`` and at once when members or owners
change (etcd watches), turns etcd's owners into OpenFlow roles per dpid and hands them to the OpenFlow app
(which sends OFPT_ROLE_REQUEST and, as SLAVE, sends nothing that changes a switch). When etcd cannot be
reached the last roles stay (the switches keep forwarding; a peer that took over has a newer generation,
so the switch itself demotes us) and ``status()`` says so.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from pfepo.cluster.coordinator import Ownership
from pfepo.cluster.etcd import EtcdCoordinator, EtcdError
from pfepo.cluster.ownership import switch_regions
from pfepo.cluster.policysync import PolicyMirror

log = logging.getLogger("pfepo.cluster")


def roles_by_dpid(cfg, owners: dict[str, Ownership], me: str,
                  previous: dict[int, tuple[str, int]]) -> dict[int, tuple[str, int]]:
    """(role, generation) per configured dpid. A switch with no owner right now (between a release and
    the next claim) keeps its previous role; one never seen is SLAVE at generation 0."""
    out = {}
    for sw in cfg.switches:
        o = owners.get(sw.name)
        if o is None:
            out[sw.dpid] = previous.get(sw.dpid, ("slave", 0))
        else:
            out[sw.dpid] = ("master" if o.owner == me else "slave", o.generation)
    return out


class ClusterAgent:
    def __init__(self, rt, coord: EtcdCoordinator | None = None):
        c = rt.cfg.cluster
        self.rt = rt
        self.cfg = rt.cfg
        self.coord = coord or EtcdCoordinator(c.endpoints[0], c.name, c.controller_id, c.region,
                                              c.lease_ttl_s, c.timeout_s)
        self.period_s = c.lease_ttl_s / 3
        self.regions = switch_regions(rt.cfg)
        self.roles: dict[int, tuple[str, int]] = {}
        self.etcd_ok = False
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self.mirror: PolicyMirror | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancels: list = []
        self._thread: threading.Thread | None = None

    def start(self) -> ClusterAgent:
        self.coord.join()
        folder = Path(self.cfg.state_dir) / "cluster-policy"
        self.mirror = PolicyMirror(self.coord, folder, self._policy_changed)
        self._watch()
        self.mirror.sync()
        self._thread = threading.Thread(target=self._run, name="cluster", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        """(Re)create the etcd watches. etcd3gw's watch stream ends silently when etcd goes away, so they are
        recreated whenever etcd comes back; each step also re-reads the policy in case a watch was lost."""
        for cancel in self._cancels:
            cancel()
        self._cancels = [self.coord.watch(what, self._wake.set) for what in ("members", "owners")]
        self._cancels.append(self.coord.watch("policy", self.mirror.sync))

    def _policy_changed(self, revision: int) -> None:
        """A new cluster revision is in the mirror folder: run from it from now on (validated again here)."""
        reloader = self.rt.reloader
        if reloader is None:
            return
        reloader.paths = [str(self.mirror.folder)]
        ok = reloader.reload()  # here, not via the watch thread: the audit line says whether it is in force
        audit = getattr(self.rt, "audit", None)
        if audit is not None:  # every later decision record was made under this revision (until the next)
            audit.append("policy_revision", {
                "revision": revision, "in_force": ok, "problems": list(reloader.last_error),
                "digest": reloader.current.digest if reloader.current is not None else None})

    def step(self) -> None:
        try:
            owners = self.coord.rebalance(self.regions)
            self.mirror.sync()
        except EtcdError as exc:
            if self.etcd_ok or self.last_error is None:
                log.warning("etcd unreachable, keeping the last roles: %s", exc)
            self.etcd_ok, self.last_error = False, str(exc)
            return
        if not self.etcd_ok and self.last_ok is not None:
            log.info("etcd reachable again: re-watching")
            self._watch()
        self.etcd_ok, self.last_error, self.last_ok = True, None, time.time()
        roles = roles_by_dpid(self.cfg, owners, self.coord.member_id, self.roles)
        if roles != self.roles:
            self.roles = roles
            app = self.rt.app
            if app is not None:
                app.set_roles()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the agent must outlive any single failure
                log.exception("cluster step failed")
            self._wake.wait(self.period_s)
            self._wake.clear()

    def status(self) -> dict:
        return {"member": self.coord.member_id, "etcd_ok": self.etcd_ok, "last_error": self.last_error,
                "last_ok": self.last_ok, "policy_revision": self.mirror.revision if self.mirror else 0,
                "masters": sorted(d for d, (r, _) in self.roles.items() if r == "master")}

    def metric_families(self):
        """For ``Metrics.add_collector``: etcd reachability, roles held, policy revision, lease losses."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily("pfepo_cluster_etcd_up", "1 when the last etcd step succeeded",
                                value=1 if self.etcd_ok else 0)
        g = GaugeMetricFamily("pfepo_cluster_switches", "configured switches by our OpenFlow role",
                              labels=["role"])
        for role in ("master", "slave"):
            g.add_metric([role], sum(1 for r, _ in self.roles.values() if r == role))
        yield g
        yield GaugeMetricFamily("pfepo_cluster_policy_revision", "etcd revision of the policy in force "
                                "(0: local files, the cluster holds none)",
                                value=self.mirror.revision if self.mirror else 0)
        yield CounterMetricFamily("pfepo_cluster_lease_lost", "times our lease expired and we re-joined",
                                  value=self.coord.lease_lost)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for cancel in self._cancels:
            cancel()
        if self._thread is not None:
            self._thread.join(5)
        self.coord.leave()
