"""The daemon's side of the cluster: join, keep switch ownership converging, mirror the policy.

One thread ("cluster") runs a rebalance step every ``lease_ttl_s / 3`` and at once when members or owners
change (etcd watches, backed by a poll of the member keys every ``DETECT_S``: a watch stream can end
silently, the poll bounds how late a departed peer is noticed), turns etcd's owners into OpenFlow roles per
dpid and hands them to the OpenFlow app first, before any other etcd work of the step (which sends
OFPT_ROLE_REQUEST and, as SLAVE, sends nothing that changes a switch). When etcd cannot be
reached the last roles stay (the switches keep forwarding; a peer that took over has a newer generation,
so the switch itself demotes us) and ``status()`` says so.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from pfepo.cluster.bandwidth import BandwidthSync
from pfepo.cluster.baseline import BaselineSync
from pfepo.cluster.claimgate import ClaimGate
from pfepo.cluster.coordinator import Ownership
from pfepo.cluster.etcd import EtcdCoordinator, EtcdError
from pfepo.cluster.ownership import switch_regions
from pfepo.cluster.policysync import PolicyMirror

log = logging.getLogger("pfepo.cluster")

# How often the agent reads the member keys between steps. A kill -9 is seen by etcd at most TTL (+ its
# 500 ms expiry sweep) later; this poll adds at most DETECT_S when the owners watch missed it, keeping the
# handover within TTL + 1 s by design (docs/coordination.md, "Handover time").
DETECT_S = 0.2


def ingress_switches(cfg, service: str) -> set[str]:
    """Client-side switches that split ``service`` (the regions' uplink switch and cluster.ingress ones)."""
    svc = cfg.service(service)
    out = {r.uplink.switch for r in cfg.regions if r.name in svc.weights}
    if cfg.cluster is not None:
        out |= {sw for sw, ports in cfg.cluster.ingress.items() if set(ports) & set(svc.weights)}
    return out


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
        self.coord = coord or EtcdCoordinator(c.endpoints, c.name, c.controller_id, c.region,
                                              c.lease_ttl_s, c.timeout_s)
        self.period_s = c.lease_ttl_s / 3
        self.detect_s = min(DETECT_S, self.period_s)
        self._members_seen: frozenset[str] | None = None
        self.regions = switch_regions(rt.cfg)
        self.roles: dict[int, tuple[str, int]] = {}
        self.etcd_ok = False
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self.mirror: PolicyMirror | None = None
        self.baseline: BaselineSync | None = None
        self.bandwidth: BandwidthSync | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancels: list = []
        self._thread: threading.Thread | None = None
        self.gate = ClaimGate(rt.cfg, self.coord, lambda: self.etcd_ok, self.masters_ingress)
        self.claims_error: str | None = None
        self._failovers = 0  # the coordinator's endpoint failovers when the watches were last made

    def masters_ingress(self, service: str) -> bool:
        """Our weights are in force on one of ``service``'s client-side switches (we are its MASTER)."""
        dpids = {self.cfg.switch(sw).dpid for sw in ingress_switches(self.cfg, service)}
        return any(self.roles.get(d, ("slave", 0))[0] == "master" for d in dpids)

    def start(self) -> ClusterAgent:
        self.coord.join()
        self.etcd_ok = True
        audit = getattr(self.rt, "audit", None)
        if audit is not None:  # 0: the local policy files (the cluster holds none yet)
            audit.stamp.setdefault("policy_revision", 0)
        loop = getattr(self.rt, "loop", None)
        if loop is not None:  # planned shifts toward another region need a claim from now on
            loop.planner.gate = self.gate
        folder = Path(self.cfg.state_dir) / "cluster-policy"
        self.mirror = PolicyMirror(self.coord, folder, self._policy_changed)
        state = getattr(self.rt, "state", None)
        self.baseline = BaselineSync(self.coord, state, self._wake.set) if state is not None else None
        self.bandwidth = BandwidthSync(self.coord, state, self._wake.set) if state is not None else None
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
        self._cancels = [self.coord.watch(what, self._wake.set) for what in ("members", "owners", "baseline", "bandwidth")]
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
            if ok:
                audit.stamp["policy_revision"] = revision
            audit.append("policy_revision", {
                "revision": revision, "in_force": ok, "problems": list(reloader.last_error),
                "digest": reloader.current.digest if reloader.current is not None else None})

    def step(self) -> None:
        try:
            owners = self.coord.rebalance(self.regions)
        except EtcdError as exc:
            self._unreachable(exc)
            return
        self._publish_roles(owners)  # first: a handover waits on nothing else
        if not self.etcd_ok or self.coord.failovers != self._failovers:
            # back, or now on another etcd member: the old watch streams ended silently
            log.info("etcd reachable again (%s): re-watching", self.coord.endpoint)
            try:
                self._watch()
            except EtcdError as exc:
                self._unreachable(exc)
                return
            self._failovers = self.coord.failovers
        try:
            self._sync_documents()
        except EtcdError as exc:
            self._unreachable(exc)
            return
        self.etcd_ok, self.last_error, self.last_ok = True, None, time.time()
        self._settle_claims()

    def _unreachable(self, exc: Exception) -> None:
        if self.etcd_ok or self.last_error is None:
            log.warning("etcd unreachable, keeping the last roles: %s", exc)
        self.etcd_ok, self.last_error = False, str(exc)

    def _publish_roles(self, owners: dict[str, Ownership]) -> None:
        roles = roles_by_dpid(self.cfg, owners, self.coord.member_id, self.roles)
        if roles != self.roles:
            self.roles = roles
            app = self.rt.app
            if app is not None:
                app.set_roles()

    def _sync_documents(self) -> None:
        """The policy, baseline and bandwidth documents (each also has a watch; this is the fallback)."""
        self.mirror.sync()
        audit = getattr(self.rt, "audit", None)
        for sync, stamp in ((self.baseline, "baseline_revision"), (self.bandwidth, "bandwidth_revision")):
            if sync is not None:
                rev = sync.sync()
                if audit is not None and rev:  # decisions after this were made against that revision
                    audit.stamp[stamp] = rev

    def _settle_claims(self) -> None:
        """Our claims in etcd = the planner's current shifts (re-sync after etcd or a lease came back)."""
        loop = getattr(self.rt, "loop", None)
        if loop is None:
            return
        try:
            self.gate.settle(loop.planner.shifts())
            self.claims_error = None
        except EtcdError as exc:
            self.claims_error = str(exc)

    def _run(self) -> None:
        """A step every ``period_s``, at once on a watch event, and at once when the member poll (every
        ``detect_s``) sees a controller come or go."""
        due = 0.0
        while not self._stop.is_set():
            if self._wake.is_set() or time.monotonic() >= due or self._members_changed():
                self._wake.clear()  # before the step: a change during it wakes the next one
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - the agent must outlive any single failure
                    log.exception("cluster step failed")
                due = time.monotonic() + self.period_s
            self._wake.wait(max(0.0, min(self.detect_s, due - time.monotonic())))

    def _members_changed(self) -> bool:
        """The set of live controllers differs from the last poll (one small keys-only read). While etcd
        is unreachable the regular steps probe it; this stays quiet."""
        if not self.etcd_ok:
            return False
        try:
            ids = self.coord.member_ids()
        except EtcdError:
            return True  # let the step notice and report it
        changed = self._members_seen is not None and ids != self._members_seen
        self._members_seen = ids
        return changed

    def status(self) -> dict:
        """For /api/v1/health: etcd reachable, our role per switch, the claims we hold."""
        names = {sw.dpid: sw.name for sw in self.cfg.switches}
        state = "ok" if self.etcd_ok else "etcd unreachable: last roles and shifts kept, no new cross-region claim"
        return {"member": self.coord.member_id, "region": self.coord.region, "state": state, "etcd_ok": self.etcd_ok,
                "etcd_endpoint": self.coord.endpoint, "etcd_failovers": self.coord.failovers,
                "last_error": self.last_error, "last_ok": self.last_ok,
                "lease_lost": self.coord.lease_lost,
                "policy_revision": self.mirror.revision if self.mirror else 0,
                "baseline_revision": self.baseline.revision if self.baseline else 0,
                "bandwidth_revision": self.bandwidth.revision if self.bandwidth else 0,
                "roles": {names.get(d, f"{d:#x}"): {"role": r, "generation": g}
                          for d, (r, g) in sorted(self.roles.items())},
                "masters": sorted(d for d, (r, _) in self.roles.items() if r == "master"),
                "claims": self.gate.status()}

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
        yield CounterMetricFamily("pfepo_cluster_etcd_failovers", "times requests moved on to another etcd "
                                  "endpoint (cluster.endpoints)", value=self.coord.failovers)
        yield GaugeMetricFamily("pfepo_cluster_policy_revision", "etcd revision of the policy in force "
                                "(0: local files, the cluster holds none)",
                                value=self.mirror.revision if self.mirror else 0)
        yield CounterMetricFamily("pfepo_cluster_lease_lost", "times our lease expired and we re-joined",
                                  value=self.coord.lease_lost)
        gs = self.gate.status()
        g = GaugeMetricFamily("pfepo_cluster_claims_mbps", "Mbit/s we reserve by claims, per shift",
                              labels=["service", "src", "dst"])
        for c in gs["held"]:
            g.add_metric([c["service"], c["src"], c["dst"]], c["mbps"])
        yield g
        yield CounterMetricFamily("pfepo_cluster_claims_refused", "planned shifts refused (loop, headroom, "
                                  "etcd unreachable)", value=gs["refused_total"])
        r = GaugeMetricFamily("pfepo_cluster_role", "1 for our OpenFlow role per switch", labels=["switch", "role"])
        for sw in self.cfg.switches:
            role = self.roles.get(sw.dpid, ("slave", 0))[0]
            r.add_metric([sw.name, role], 1)
        yield r

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for cancel in self._cancels:
            cancel()
        if self._thread is not None:
            self._thread.join(5)
        self.coord.leave()
