"""The decision loop: observations (+ predictions) -> policy engine -> planner -> one actuation point.

Runs on its own thread at ``policy.interval_s``; the maths is the pure engine and planner. ``actuate`` is
the single place where decisions change anything (switch weights, meters, scalers), and where dry-run
is enforced: in dry-run it records what it would do and changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from pfepo.planner import Planner
from pfepo.planner.persist import PlannerStore
from pfepo.policy.context import contexts_from_config
from pfepo.policy.engine import evaluate
from pfepo.telemetry.samples import Sample

log = logging.getLogger("pfepo.loop")

UPLINK_METRICS = ("latency_ms", "loss_pct", "utilization_pct", "jitter_ms")


def endpoint_observations(cfg, latest: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per endpoint: its own signals, plus its region uplink's network metrics where it has none.

    Probes and port counters measure the path to a region; applications push or are polled per endpoint.
    A criterion such as ``loss_pct > 2`` should see the path's loss unless the endpoint reports its own.
    """
    out: dict[str, dict[str, float]] = {}
    for r in cfg.regions:
        link = latest.get(f"uplink:{r.name}", {})
        net = {k: link[k] for k in UPLINK_METRICS if k in link}
        for e in r.endpoints:
            own = latest.get(e.name, {})
            out[e.name] = {**net, **own}
    return out


def region_health(cfg, down_regions: set[str], obs: dict[str, dict[str, float]]) -> dict[str, bool]:
    """A region is down when its uplink is down or every endpoint that reports health_up reports 0."""
    health = {}
    for r in cfg.regions:
        ups = [obs.get(e.name, {}).get("health_up") for e in r.endpoints]
        ups = [u for u in ups if u is not None]
        health[r.name] = r.name not in down_regions and not (ups and all(u < 0.5 for u in ups))
    return health


class DecisionLoop:
    def __init__(self, rt, reloader, audit, predictor=None, dispatcher=None, learner=None):
        self.rt = rt
        self.cfg = rt.cfg
        self.reloader = reloader
        self.audit = audit
        self.predictor = predictor  # controller.predict_worker.PredictionWorker or None
        self.learner = learner  # learning.FailureLearner or None
        self.dispatcher = dispatcher
        self.planner = Planner(self._planner_config())
        self.planner_store = PlannerStore(Path(self.cfg.state_dir) / "planner.json")
        self.contexts = contexts_from_config(self.cfg)
        self._seen_version = rt.state.baseline_version
        self.last_decisions: list[dict] = []
        self.last_plan: dict | None = None
        self.ticks = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resume()

    def _resume(self) -> None:
        """Resume the planner's drains and timers saved before a restart (kill -9 included), and put its
        weights and evictions into the state before any switch connects, so nothing flips back."""
        doc = self.planner_store.load()
        if not doc:
            return
        policies = {p.name: p for p in getattr(self.reloader.current, "policies", [])}
        restored = self.planner.load_dict(doc, policies)
        if restored and not self.cfg.dry_run:
            weights, evicted = self.planner.weights(), self.planner.evicted()
            self.rt.state.set_planned({s: weights[s] for s in restored}, self._seen_version)
            self.rt.state.set_evicted({s: evicted[s] for s in restored})
        if restored:
            log.info("planner state resumed for %s from %s", ", ".join(restored), self.planner_store.path)

    def _planner_config(self):
        """The config with the baseline (the operator's current split) as each service's weights."""
        baseline = self.rt.state.baseline_snapshot()
        services = [s.model_copy(update={"weights": baseline[s.name]}) for s in self.cfg.services]
        return self.cfg.model_copy(update={"services": services})

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        st = self.rt.state
        version = st.baseline_version
        if version != self._seen_version:  # operator override: it becomes the baseline
            self._seen_version = version
            self.planner.reconfigure(self._planner_config())
        obs = endpoint_observations(self.cfg, self.rt.observations(self.cfg.policy.observation_max_age_s, now))
        preds = {}
        if self.predictor is not None:
            self.predictor.submit(now, obs)  # never blocks; the worker scores off this thread
            preds = self.predictor.latest()
        planned = st.planned_snapshot()
        current = {svc: dict(planned[svc] or w) for svc, w in st.baseline_weights().items()}
        shares = {svc: {r: v / max(1, sum(w.values())) for r, v in w.items()} for svc, w in current.items()}
        policies = self.reloader.current
        live = self.learner.effective(policies) if self.learner is not None else policies  # learned act
        decisions = evaluate(now, self.contexts, obs, preds, live, shares, self.cfg.dry_run)
        health = region_health(self.cfg, st.down_regions(), obs)
        if self.learner is not None:  # queues a root-cause analysis on each region's up -> down; never blocks
            self.learner.observe(now, health, self.contexts, policies, obs)
        plan = self.planner.step(now, decisions, health, current)
        self.audit.log_decisions(decisions, repeat_after_s=30.0)
        self.audit.log_plan(plan)
        self.last_decisions = [d.to_dict() for d in decisions if d.level != "ok"]
        self.last_plan = plan.to_dict()
        self.actuate(plan, version)
        self.planner_store.save(self.planner.to_dict())  # atomic; written only when it changed
        self._record(now, decisions, plan)
        self.ticks += 1

    def _record(self, now: float, decisions, plan) -> None:
        """Risk per endpoint and weight per region into history; decisions/changes as store events."""
        samples = [Sample(now, d.endpoint, "risk", d.risk.value,
                          (("endpoint", d.endpoint), ("region", d.region), ("service", d.service or "")))
                   for d in decisions]
        for svc, weights in plan.weights.items():
            samples.extend(Sample(now, svc, "weight", float(w), (("region", r), ("service", svc)))
                           for r, w in weights.items())
        self.rt.ingest(samples)
        write_event = getattr(self.rt.store, "write_event", None)  # InfluxDB: Grafana annotations
        if write_event is None:
            return
        for d in decisions:
            if d.level == "act":
                write_event("decision", now, {"region": d.region, "endpoint": d.endpoint, "action": d.level},
                            {"text": d.to_dict().get("reason", d.policy.name), "risk": d.risk.value})
        by_service: dict[str, list[dict]] = {}
        for ch in plan.changes:
            by_service.setdefault(ch["service"], []).append(ch)
        for svc, chs in by_service.items():
            text = ", ".join(f"{c['region']} {c['from']} -> {c['to']}" for c in chs)
            write_event("weights", now, {"service": svc}, {"text": text, **{c["region"]: float(c["to"]) for c in chs}})

    def actuate(self, plan, based_on_version: int | None = None) -> None:
        """The single point where decisions take effect; dry-run stops everything here."""
        if self.cfg.dry_run:
            for ch in plan.changes:
                self.rt.record_event("would_change_weight", **{k: ch[k] for k in ("service", "region", "from", "to")})
            return
        if self.rt.state.set_planned(plan.weights, based_on_version):
            for ch in plan.changes:
                self.rt.record_event("weight_change", service=ch["service"], region=ch["region"],
                                     frm=ch["from"], to=ch["to"], reason=ch["reason"])
        self.rt.state.set_evicted(plan.evicted)  # after the weights: an evicted region already gets 0
        for a in plan.actions:
            if a["type"] == "allocate_bandwidth":
                self._allocate(a)
        if self.dispatcher is not None:
            self.dispatcher.submit_actions(plan.actions)

    def _allocate(self, a: dict) -> None:
        st = self.rt.state
        cur = st.bandwidth_snapshot().get(a["service"], {}).get(a["region"])
        if cur is None:
            self.audit.append("bandwidth", {**a, "result": "skipped: region is unmetered (no limit to raise)"})
            return
        base = self.cfg.service(a["service"]).bandwidth_mbps.get(a["region"], cur)
        target = base + (a.get("add_mbps") or 0.0) + base * (a.get("add_percent") or 0.0) / 100.0
        if abs(target - cur) < 1e-6:
            return
        st.set_bandwidth(a["service"], {a["region"]: target}, source="planner")
        self.audit.append("bandwidth", {**a, "from_mbps": cur, "to_mbps": target, "result": "applied"})

    # --- thread ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="decision-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.policy.interval_s):
            try:
                self.tick()
            except Exception:  # one bad tick must not end the loop
                self.errors += 1
                log.exception("decision loop tick failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
