"""Gradual, safe traffic movements from policy decisions: the planner.

Weights are integers summing to ``slots`` (the data plane's hash granularity). The planner moves whole
slots from one region to others, so every step keeps the sum exact and no weight negative, and its
state (per service and region: phase, timers, weights) lives in this object; time is passed in.

Per (service, region) phases::

    normal --act & shift_traffic & cooldown over & a safe target--> draining  (ramp step_percent every
    step_interval_s, down to max_percent / min_share floor)
    draining --risk < fail-back threshold for stable_s, and min_dwell_s since drain start--> recovering
    recovering --ramp back failback.step_percent per interval; at nominal--> normal (+cooldown_s)
    recovering --act again--> draining
    any --health down--> failed (every slot moved at once) --health up--> recovering (after min_dwell_s)

Emptying a region (connection affinity: weight 0 stops new connections, pinned ones stay): a region is
``evicted`` (its pinned connections handed back to the weighted choice, see docs/affinity.md) at once when
it fails (``drain.on_failure``), when a draining region's share has been 0 for ``drain.empty_after_s``,
or ``drain.evict_grace_s`` after its risk reached ``drain.evict_at_risk`` (failure imminent: every slot
moves away at once; the grace lets in-flight requests finish and keep-alive clients that the drain hook
told to close reconnect elsewhere, so the evict only resets what is left). It is restored as soon as it
gets traffic again. Each evict/restore is an event with its reason (audit log). The drain hook
(``drain.hook``) is called when a drain starts and again (``drain: end``) when the region takes traffic
again.

Safety rules: traffic only ever moves toward regions that are up, in ``normal`` phase and below their
own act threshold (failures fall back to the least risky up region); a draining region that is up
keeps its floor; a drain needs a safe target, so at least one region keeps serving and, when every
region is at risk, the least risky keeps its traffic; at most ``max_regions_drained`` regions of a
service are away from nominal at once (failures are never blocked).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pfepo.planner.plan import Plan
from pfepo.planner.shifts import ShiftGate, shift_edges
from pfepo.planner.weights import quantize
from pfepo.policy.engine import Decision
from pfepo.policy.model import Drain, Failback, Policy, Safety, ShiftTraffic

if TYPE_CHECKING:
    from pfepo.config import PfepoConfig

NORMAL, DRAINING, RECOVERING, FAILED = "normal", "draining", "recovering", "failed"
_AUTO = ShiftTraffic()
_DRAIN = Drain()
STATE_VERSION = 1


@dataclass
class RegionState:
    phase: str = NORMAL
    since: float = -math.inf
    last_step: float = -math.inf
    calm_since: float | None = None
    cooldown_until: float = -math.inf
    hold_until: float = -math.inf
    policy: Policy | None = None  # the policy whose parameters drive this region's drain/fail-back
    note: str = ""  # last hold reason, so a hold is logged once rather than every step
    evicted: bool = False  # pinned connections handed back to the weighted choice (region emptied)
    zero_since: float | None = None  # draining with share 0 since
    imminent_since: float | None = None  # evict_at_risk reached (share emptied at once) since
    hooked: bool = False  # the drain hook asked the region's applications to close keep-alives

    def snapshot(self) -> dict:
        return {"phase": self.phase, "since": _t(self.since), "calm_since": self.calm_since,
                "cooldown_until": _t(self.cooldown_until), "policy": self.policy.name if self.policy else None,
                "note": self.note, "evicted": self.evicted}

    def to_dict(self) -> dict:
        """Everything needed to resume after a restart (times are wall-clock; -inf as None)."""
        return {"phase": self.phase, "since": _t(self.since), "last_step": _t(self.last_step),
                "calm_since": self.calm_since, "cooldown_until": _t(self.cooldown_until),
                "hold_until": _t(self.hold_until), "policy": self.policy.name if self.policy else None,
                "note": self.note, "evicted": self.evicted, "zero_since": self.zero_since,
                "imminent_since": self.imminent_since, "hooked": self.hooked}

    @classmethod
    def from_dict(cls, d: Mapping, policies: Mapping[str, Policy]) -> RegionState:
        def t(key: str) -> float:
            v = d.get(key)
            return -math.inf if v is None else float(v)

        phase = d.get("phase", NORMAL)
        if phase not in (NORMAL, DRAINING, RECOVERING, FAILED):
            raise ValueError(f"unknown phase {phase!r}")
        calm, zero, imm = d.get("calm_since"), d.get("zero_since"), d.get("imminent_since")
        return cls(phase=phase, since=t("since"), last_step=t("last_step"),
                   calm_since=None if calm is None else float(calm), cooldown_until=t("cooldown_until"),
                   hold_until=t("hold_until"), policy=policies.get(d.get("policy") or ""),
                   note=str(d.get("note", "")), evicted=bool(d.get("evicted", False)),
                   zero_since=None if zero is None else float(zero),
                   imminent_since=None if imm is None else float(imm), hooked=bool(d.get("hooked", False)))


def _t(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass
class _Risk:
    level: str = "ok"
    value: float = 0.0
    decision: Decision | None = None


@dataclass
class _Service:
    regions: list[str]
    baseline: dict[str, int]  # the operator split in slots ("nominal" in JSON)
    weights: dict[str, int]
    states: dict[str, RegionState] = field(default_factory=dict)


class Planner:
    """``step(now, decisions, health, current) -> Plan``; see the module docstring for the rules."""

    def __init__(self, config: PfepoConfig, slots: int | None = None, dry_run: bool | None = None,
                 safety: Safety | None = None, failback: Failback | None = None, gate: ShiftGate | None = None):
        self.config = config
        self.gate = gate  # a cluster's claims: planned shifts toward another region must be allowed first
        self.slots = int(slots or config.openflow.weight_slots)
        self.dry_run = config.dry_run if dry_run is None else dry_run
        self.default_safety = safety or Safety()
        self.default_failback = failback or Failback()
        self._svc: dict[str, _Service] = {}
        self._pending: list[dict] = []  # events from reconfigure, reported with the next step

    # ------------------------------------------------------------------ public
    def reconfigure(self, config: PfepoConfig) -> None:
        """New daemon config: services whose regions or baseline weights changed restart from current."""
        self.config = config
        for svc in config.services:
            ss = self._svc.get(svc.name)
            if ss is not None and (sorted(svc.weights) != sorted(ss.regions)
                                   or quantize(svc.weights, self.slots) != ss.baseline):
                self._pending.extend({"kind": "restore", "service": svc.name, "region": r, "phase": "normal",
                                      "reason": "new baseline (operator or config): the region's connections "
                                      "stay pinned again"} for r in ss.regions if ss.states[r].evicted)
                del self._svc[svc.name]
        names = {s.name for s in config.services}
        for gone in [n for n in self._svc if n not in names]:
            del self._svc[gone]

    def step(self, now: float, decisions: Iterable[Decision], health: Mapping[str, bool],
             current: Mapping[str, Mapping[str, int]] | None = None, dry_run: bool | None = None) -> Plan:
        dry = self.dry_run if dry_run is None else dry_run
        current = current or {}
        risks = _aggregate(decisions)
        changes: list[dict] = []
        events: list[dict] = []
        actions: list[dict] = []
        proposed: dict[str, dict[str, int]] = {}
        applied: dict[str, dict[str, int]] = {}
        states: dict[str, dict[str, dict]] = {}
        evicted: dict[str, list[str]] = {}
        events.extend({"ts": now, **e, "dry_run": dry} for e in self._pending)
        self._pending.clear()
        for svc in self.config.services:
            ss = self._service(svc.name, svc.weights, current.get(svc.name), now)
            before = dict(ss.weights)
            run = _Step(self, svc.name, ss, now, risks, health, dry)
            run.execute()
            events.extend(run.events)
            actions.extend(run.actions)
            for r in ss.regions:
                if ss.weights[r] != before[r]:
                    changes.append({
                        "ts": now, "kind": "weight_change", "service": svc.name, "region": r,
                        "from": before[r], "to": ss.weights[r], "nominal": ss.baseline[r],
                        "phase": ss.states[r].phase, "reason": "; ".join(run.reasons.get(r, [])) or "rebalance",
                        "dry_run": dry,
                    })
            proposed[svc.name] = dict(ss.weights)
            cur = current.get(svc.name)
            applied[svc.name] = dict(cur) if (dry and cur) else (dict(ss.baseline) if dry else dict(ss.weights))
            states[svc.name] = {r: {**ss.states[r].snapshot(), "weight": ss.weights[r],
                                    "nominal": ss.baseline[r]} for r in ss.regions}
            evicted[svc.name] = [] if dry else [r for r in ss.regions if ss.states[r].evicted]
        return Plan(ts=now, dry_run=dry, weights=applied, proposed=proposed, changes=changes, events=events,
                    actions=actions, states=states, evicted=evicted)

    # ------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """The planner's whole state (drains, dwell and fail-back timers) as plain JSON data."""
        return {"version": STATE_VERSION, "slots": self.slots, "services": {
            name: {"regions": ss.regions, "nominal": ss.baseline, "weights": ss.weights,
                   "states": {r: ss.states[r].to_dict() for r in ss.regions}}
            for name, ss in self._svc.items()}}

    def load_dict(self, doc: Mapping, policies: Mapping[str, Policy] | None = None) -> list[str]:
        """Resume from ``to_dict`` output; returns the services restored.

        A service is restored only if its regions, baseline weights and slot count still match the
        config (an operator change in between wins: that service starts afresh). Policies are looked up
        by name (a policy since removed falls back to the defaults).
        """
        if not isinstance(doc, Mapping) or doc.get("version") != STATE_VERSION or doc.get("slots") != self.slots:
            return []
        policies = policies or {}
        restored = []
        for svc in self.config.services:
            d = doc.get("services", {}).get(svc.name)
            if not isinstance(d, Mapping):
                continue
            regions = sorted(svc.weights)
            baseline = quantize(svc.weights, self.slots)
            try:
                weights = {r: int(d["weights"][r]) for r in regions}
                if sorted(d["regions"]) != regions or {r: int(d["nominal"][r]) for r in regions} != baseline:
                    continue
                if sum(weights.values()) != self.slots or min(weights.values()) < 0:
                    continue
                states = {r: RegionState.from_dict(d["states"][r], policies) for r in regions}
            except (KeyError, TypeError, ValueError):
                continue
            self._svc[svc.name] = _Service(regions, baseline, weights, states)
            restored.append(svc.name)
        return restored

    def evicted(self) -> dict[str, list[str]]:
        return {name: [r for r in ss.regions if ss.states[r].evicted] for name, ss in self._svc.items()}

    def weights(self) -> dict[str, dict[str, int]]:
        return {name: dict(ss.weights) for name, ss in self._svc.items()}

    def shifts(self) -> dict[str, dict[tuple[str, str], int]]:
        """Cross-region edges per service in the current weights (what the claims must cover)."""
        return {name: shift_edges(ss.baseline, dict(ss.weights)) for name, ss in list(self._svc.items())}

    # ----------------------------------------------------------------- helpers
    def _service(self, name: str, weights: Mapping[str, float], current: Mapping[str, int] | None,
                 now: float) -> _Service:
        ss = self._svc.get(name)
        if ss is not None:
            return ss
        regions = sorted(weights)
        baseline = quantize(weights, self.slots)
        start = dict(baseline)
        if current and sorted(current) == regions and all(v >= 0 for v in current.values()) \
                and sum(current.values()) > 0:
            start = quantize({r: float(current[r]) for r in regions}, self.slots)
        ss = _Service(regions, baseline, start, {r: RegionState() for r in regions})
        for r in regions:  # resuming below baseline (e.g. after a restart): fail back gradually
            if start[r] < baseline[r]:
                ss.states[r] = RegionState(phase=RECOVERING, since=now, hold_until=now)
        self._svc[name] = ss
        return ss

    def capacity(self, region: str) -> float:
        try:
            return float(self.config.region(region).uplink.capacity_mbps)
        except StopIteration:
            return 1.0


def _aggregate(decisions: Iterable[Decision]) -> dict[tuple[str, str], _Risk]:
    """Per (service, region): the riskiest endpoint decides (a region's bucket carries all its endpoints)."""
    out: dict[tuple[str, str], _Risk] = {}
    order = {"ok": 0, "warn": 1, "act": 2}
    for d in decisions:
        if d.service is None:
            continue
        key = (d.service, d.region)
        cur = out.get(key)
        if cur is None or (order[d.level], d.risk.value) > (order[cur.level], cur.value):
            out[key] = _Risk(d.level, d.risk.value, d)
    return out


class _Step:
    """One service, one step: the rules in order (failures, transitions, ramps)."""

    def __init__(self, planner: Planner, service: str, ss: _Service, now: float,
                 risks: Mapping[tuple[str, str], _Risk], health: Mapping[str, bool], dry: bool):
        self.p, self.svc, self.ss, self.now, self.dry = planner, service, ss, now, dry
        self.risk = {r: risks.get((service, r), _Risk()) for r in ss.regions}
        self.up = {r: bool(health.get(r, True)) for r in ss.regions}
        self.events: list[dict] = []
        self.actions: list[dict] = []
        self.reasons: dict[str, list[str]] = {}
        self.refused = ""  # why the gate refused the last planned shift (a hold reason)

    # -- parameters: from the region's current decision, else the policy that started the drain
    def policy(self, r: str) -> Policy | None:
        d = self.risk[r].decision
        return d.policy if d is not None else self.ss.states[r].policy

    def safety(self, r: str) -> Safety:
        pol = self.policy(r)
        return pol.safety if pol else self.p.default_safety

    def failback(self, r: str) -> Failback:
        pol = self.policy(r)
        return pol.failback if pol else self.p.default_failback

    def drain(self, r: str) -> Drain:
        pol = self.policy(r)
        return pol.drain if pol else _DRAIN

    def shift(self, r: str) -> ShiftTraffic:
        pol = self.ss.states[r].policy or self.policy(r)
        return (pol.actions.shift_traffic if pol and pol.actions.shift_traffic else None) or _AUTO

    def eligible(self, r: str) -> bool:
        return self.up[r] and self.risk[r].level != "act" and self.ss.states[r].phase == NORMAL

    # -- the rules
    def execute(self) -> None:
        ss = self.ss
        for r in ss.regions:
            self._health(r)
        for r in ss.regions:
            if self.up[r]:
                self._calm(r)
        for r in ss.regions:
            self._transition(r)
        self._start_drains()
        for r in ss.regions:
            st = ss.states[r]
            if st.phase == DRAINING:
                self._ramp_away(r)
            elif st.phase == RECOVERING:
                self._ramp_back(r)
        for r in ss.regions:
            self._empty(r)
            st = ss.states[r]
            if st.hooked and ss.weights[r] > 0 and st.phase in (RECOVERING, NORMAL):  # takes traffic again
                self._drain_hook(r, "region takes traffic again", "end")

    def _health(self, r: str) -> None:
        st = self.ss.states[r]
        if not self.up[r]:
            if st.phase != FAILED:
                self._enter(r, FAILED, "region down: immediate full move away")
                st.policy = st.policy or self.policy(r)
                self._emit_actions(r, self._failover_targets(r), "region down")
            if self.ss.weights[r] > 0:
                targets = self._failover_targets(r)
                if targets:
                    self._move(r, self.ss.weights[r], targets, "region down: immediate full move")
                else:
                    self._hold(r, "every region of the service is down: weights kept (nothing better)")
        elif st.phase == FAILED:
            self._enter(r, RECOVERING, "region up again: fail back gradually after min dwell")
            st.hold_until = self.now + self.safety(r).min_dwell_s
            st.calm_since = None

    def _calm(self, r: str) -> None:
        st = self.ss.states[r]
        pol = self.policy(r)
        below = pol.failback_below() if pol else math.inf
        if self.risk[r].value < below:
            st.calm_since = self.now if st.calm_since is None else st.calm_since
        else:
            st.calm_since = None

    def _calm_for(self, r: str) -> bool:
        st = self.ss.states[r]
        return st.calm_since is not None and self.now - st.calm_since >= self.failback(r).stable_s

    def _wants_shift(self, r: str) -> bool:
        d = self.risk[r].decision
        return self.risk[r].level == "act" and d is not None and d.policy.actions.shift_traffic is not None

    def _transition(self, r: str) -> None:
        st = self.ss.states[r]
        if st.phase == DRAINING and self._calm_for(r) and self.now - st.since >= self.safety(r).min_dwell_s:
            self._enter(r, RECOVERING, f"risk below fail-back threshold for {self.failback(r).stable_s:g} s")
            st.hold_until = self.now
        elif st.phase == RECOVERING and self._wants_shift(r):
            self._enter(r, DRAINING, "risk back above act while failing back: "
                        + self.risk[r].decision.reason())  # type: ignore[union-attr]
            st.policy = self.risk[r].decision.policy  # type: ignore[union-attr]
            self._drain_hook(r, "risk back above act while failing back")

    def _start_drains(self) -> None:
        ss = self.ss
        away = sum(1 for r in ss.regions if ss.states[r].phase != NORMAL)
        wanting = sorted((r for r in ss.regions if self.up[r] and ss.states[r].phase == NORMAL
                          and self._wants_shift(r)), key=lambda r: -self.risk[r].value)
        for r in wanting:
            st = ss.states[r]
            d = self.risk[r].decision
            assert d is not None
            if self.now < st.cooldown_until:
                self._hold(r, f"at risk but in cooldown until {st.cooldown_until:g}")
                continue
            cap = d.policy.safety.max_regions_drained
            if away >= cap:
                self._hold(r, f"at risk but {away} region(s) already shifted (max_regions_drained {cap})")
                continue
            targets = self._targets(r, d.policy.actions.shift_traffic or _AUTO)
            if not targets:
                self._hold(r, "at risk but no safe target (every other region is down, at risk or shifting)")
                continue
            st.policy = d.policy
            st.last_step = -math.inf
            self._enter(r, DRAINING, d.reason())
            self._emit_actions(r, targets, d.reason())
            self._drain_hook(r, d.reason())
            away += 1

    def _ramp_away(self, r: str) -> None:
        ss, st = self.ss, self.ss.states[r]
        if self.risk[r].level != "act":
            return  # hysteresis band: hold position until calm (fail-back) or act (further steps)
        shift = self.shift(r)
        floor = self._floor(r, shift)
        step = max(1, round(shift.step_percent / 100 * ss.baseline[r]))
        amount = min(step, ss.weights[r] - floor)
        if amount <= 0:
            return
        interval, why_fast = self._interval(r, shift, math.ceil((ss.weights[r] - floor) / step))
        if self.now - st.last_step < interval:
            return
        targets = self._gated(r, amount, self._targets(r, shift))
        if not targets:
            self._hold(r, self.refused or "no safe target: holding the current shift")
            return
        d = self.risk[r].decision
        why = f"shift away {shift.step_percent:g}% of nominal per {shift.step_interval_s:g} s{why_fast}"
        self._move(r, amount, targets, f"{why}: {d.reason() if d else 'at risk'}")
        st.last_step = self.now
        st.note = ""

    def _interval(self, r: str, shift: ShiftTraffic, steps_left: int) -> tuple[float, str]:
        """The ramp's step interval: ``step_interval_s``, or shorter so that the ``steps_left`` steps end
        within ``finish_before_breach`` of the forecast time to the threshold (see ``_time_to_breach``)."""
        if shift.finish_before_breach is None:
            return shift.step_interval_s, ""
        ttb = self._time_to_breach(r)
        if ttb is None:
            return shift.step_interval_s, ""
        interval = shift.finish_before_breach * ttb / max(1, steps_left)
        if interval >= shift.step_interval_s:
            return shift.step_interval_s, ""
        return interval, f" (faster: threshold forecast in {ttb:.1f} s, {steps_left} step(s) left)"

    def _time_to_breach(self, r: str) -> float | None:
        """Seconds until a fired criterion's threshold is crossed, on the straight line from its observed
        value to the value forecast at the prediction horizon (0 when already observed); None without a
        forecast."""
        d = self.risk[r].decision
        if d is None or not d.horizon_s:
            return None
        best = None
        for c in d.criteria:
            if not (c.fired and isinstance(c.observed, (int, float)) and isinstance(c.threshold, (int, float))):
                continue
            obs, thr = float(c.observed), float(c.threshold)
            sign = 1.0 if c.op in (">", ">=") else -1.0 if c.op in ("<", "<=") else 0.0
            if sign == 0.0:
                continue
            gap = sign * (thr - obs)
            if gap <= 0:
                t = 0.0
            elif c.predicted is not None and sign * (float(c.predicted) - obs) > 0:
                t = d.horizon_s * gap / (sign * (float(c.predicted) - obs))
            else:
                continue
            best = t if best is None else min(best, t)
        return best

    def _ramp_back(self, r: str) -> None:
        ss, st = self.ss, self.ss.states[r]
        if ss.weights[r] >= ss.baseline[r]:
            self._finish(r)
            return
        fb = self.failback(r)
        if self.now < st.hold_until or not self._calm_for(r) or self.now - st.last_step < fb.step_interval_s:
            return
        donors = {x: ss.weights[x] - ss.baseline[x] for x in ss.regions
                  if x != r and self.up[x] and ss.weights[x] > ss.baseline[x]}
        if not donors:
            self._finish(r)
            return
        amount = min(max(1, round(fb.step_percent / 100 * ss.baseline[r])), ss.baseline[r] - ss.weights[r],
                     sum(donors.values()))
        give = quantize(donors, amount)
        for x, n in give.items():
            n = min(n, ss.weights[x])
            if n:
                ss.weights[x] -= n
                ss.weights[r] += n
                self._why(x, f"-{n} slot(s) back to {r} (fail-back)")
        self._why(r, f"fail back {fb.step_percent:g}% of nominal per {fb.step_interval_s:g} s "
                     f"(risk {self.risk[r].value:.3f} calm since {st.calm_since:g})")
        st.last_step = self.now
        if ss.weights[r] >= ss.baseline[r]:
            self._finish(r)

    def _empty(self, r: str) -> None:
        """Evict (empty) or restore a region's pinned connections; see the module docstring."""
        ss, st = self.ss, self.ss.states[r]
        drain = self.drain(r)
        why = ""
        if st.phase == FAILED:
            if drain.on_failure:
                why = "region failed: evict its pinned connections at once"
        elif st.phase == DRAINING:
            risk = self.risk[r].value
            if drain.evict_at_risk is not None and risk >= drain.evict_at_risk:
                targets = self._gated(r, ss.weights[r], self._failover_targets(r))
                if ss.weights[r] > 0 and targets:
                    self._move(r, ss.weights[r], targets, f"risk {risk:.3f} >= evict_at_risk "
                               f"{drain.evict_at_risk:g}: failure imminent, every slot moves")
                if ss.weights[r] == 0 and st.imminent_since is None:
                    st.imminent_since = self.now
            if ss.weights[r] == 0:
                st.zero_since = self.now if st.zero_since is None else st.zero_since
                if st.imminent_since is not None and self.now - st.imminent_since >= drain.evict_grace_s:
                    why = (f"failure imminent (risk reached evict_at_risk {drain.evict_at_risk:g}), share 0 for "
                           f"{self.now - st.imminent_since:g} s (evict_grace_s {drain.evict_grace_s:g})")
                elif drain.empty_after_s is not None and self.now - st.zero_since >= drain.empty_after_s:
                    why = f"share 0 for {self.now - st.zero_since:g} s (empty_after_s {drain.empty_after_s:g})"
        if ss.weights[r] > 0 or st.phase not in (DRAINING, FAILED):
            st.zero_since = st.imminent_since = None
        if why and not st.evicted and ss.weights[r] == 0:
            st.evicted = True
            self.events.append({"ts": self.now, "kind": "evict", "service": self.svc, "region": r,
                                "phase": st.phase, "reason": why, "dry_run": self.dry})
        elif st.evicted and (ss.weights[r] > 0 or st.phase not in (DRAINING, FAILED)):
            st.evicted = False
            self.events.append({"ts": self.now, "kind": "restore", "service": self.svc, "region": r,
                                "phase": st.phase, "reason": "region takes traffic again: its connections stay "
                                "pinned again", "dry_run": self.dry})

    def _finish(self, r: str) -> None:
        st = self.ss.states[r]
        self._enter(r, NORMAL, "back at nominal share")
        st.cooldown_until = self.now + self.safety(r).cooldown_s
        st.policy = None

    # -- mechanics
    def _floor(self, r: str, shift: ShiftTraffic) -> int:
        nom = self.ss.baseline[r]
        keep = math.ceil(nom * (1 - shift.max_percent / 100) - 1e-9)
        min_share = math.ceil(self.safety(r).min_share_percent / 100 * self.p.slots - 1e-9)
        return min(nom, max(keep, min_share))

    def _targets(self, r: str, shift: ShiftTraffic) -> list[str]:
        """Safe receivers, best first: listed order, or auto = lowest risk, then most spare capacity."""
        ss = self.ss
        ok = [x for x in ss.regions if x != r and self.eligible(x)]
        if isinstance(shift.to, list):
            ok = [x for x in shift.to if x in ok]
        else:
            total_cap = sum(self.p.capacity(x) for x in ss.regions) or 1.0
            ok.sort(key=lambda x: (self.risk[x].value,
                                   -(self.p.capacity(x) / total_cap - ss.weights[x] / self.p.slots), x))
        return ok[: shift.targets] if shift.targets else ok

    def _failover_targets(self, r: str) -> list[str]:
        return self._targets(r, self.shift(r)) or self._targets(r, _AUTO) or self._fallback(r)

    def _fallback(self, r: str) -> list[str]:
        """Failure with no safe target: the least risky other region that is up (never a down one)."""
        alive = [x for x in self.ss.regions if x != r and self.up[x]]
        return sorted(alive, key=lambda x: (self.risk[x].value, x))[:1]

    def _split(self, r: str, amount: int, targets: list[str]) -> dict[str, int]:
        amount = min(amount, self.ss.weights[r])
        return quantize({x: self.p.capacity(x) for x in targets}, amount) if amount > 0 and targets else {}

    def _gated(self, r: str, amount: int, targets: list[str]) -> list[str]:
        """The targets whose resulting shift edges the gate allows (a refused target is dropped and the
        split recomputed). Planned shifts only: a failed region moves at once, gate or not."""
        gate, ok = self.p.gate, list(targets)
        if gate is None or self.dry:
            return ok
        while ok:
            trial = dict(self.ss.weights)
            for x, n in self._split(r, amount, ok).items():
                trial[x] += n
            trial[r] -= min(amount, trial[r])
            refused = None
            for (src, dst), n in shift_edges(self.ss.baseline, trial).items():
                why = gate.allow(self.svc, src, dst, n)
                if why is not None:
                    refused = (dst, why)
                    break
            if refused is None:
                return ok
            self.refused = f"shift refused: {refused[1]}"
            if refused[0] not in ok:  # an edge we cannot even keep growing: hold
                return []
            ok.remove(refused[0])
        return ok

    def _move(self, r: str, amount: int, targets: list[str], why: str) -> None:
        amount = min(amount, self.ss.weights[r])
        share = self._split(r, amount, targets)
        for x, n in share.items():
            if n:
                self.ss.weights[x] += n
                self._why(x, f"+{n} slot(s) from {r}")
        self.ss.weights[r] -= amount
        self._why(r, why)

    def _why(self, r: str, text: str) -> None:
        self.reasons.setdefault(r, []).append(text)

    def _enter(self, r: str, phase: str, why: str) -> None:
        st = self.ss.states[r]
        self.events.append({"ts": self.now, "kind": "transition", "service": self.svc, "region": r,
                            "from": st.phase, "to": phase, "reason": why, "dry_run": self.dry})
        st.phase, st.since, st.note = phase, self.now, ""

    def _hold(self, r: str, why: str) -> None:
        st = self.ss.states[r]
        if st.note != why:
            st.note = why
            self.events.append({"ts": self.now, "kind": "hold", "service": self.svc, "region": r,
                                "phase": st.phase, "reason": why, "dry_run": self.dry})

    def _drain_hook(self, r: str, why: str, which: str = "start") -> None:
        """Drain started (``start``): ask the policy's executor to have applications in ``r`` close
        keep-alive connections (clients reconnect through the new split); ``end``, once the region takes
        traffic again (not while it waits at weight 0, e.g. during a dwell): stop doing so. Once each."""
        st = self.ss.states[r]
        if (which == "start") == st.hooked:
            return
        pol = self.policy(r) or st.policy
        if which == "start" and (pol is None or pol.drain.hook is None):
            return
        st.hooked = which == "start"
        if pol is None or pol.drain.hook is None:  # the hook's policy is gone: nothing to call
            return
        d = self.risk[r].decision
        self.actions.append({"ts": self.now, "service": self.svc, "from_region": r, "region": r,
                             "policy": pol.name, "reason": why, "dry_run": self.dry, "type": "drain_hook",
                             "drain": which, "executor": pol.drain.hook.executor,
                             "application": d.context.application if d is not None else None})

    def _emit_actions(self, r: str, targets: list[str], why: str) -> None:
        pol = self.policy(r)
        if pol is None:
            return
        d = self.risk[r].decision
        app = d.context.application if d is not None else None
        base = {"ts": self.now, "service": self.svc, "from_region": r, "policy": pol.name, "reason": why,
                "dry_run": self.dry}
        for b in pol.actions.allocate_bandwidth:
            for region in (targets if b.region == "failover" else [b.region]):
                self.actions.append({**base, "type": "allocate_bandwidth", "region": region,
                                     "add_mbps": b.add_mbps, "add_percent": b.add_percent})
        for s in pol.actions.scale_application:
            for region in (targets if s.region == "failover" else [s.region]):
                self.actions.append({**base, "type": "scale_application", "region": region,
                                     "application": s.application or app,
                                     "desired_capacity": s.desired_capacity, "executor": s.executor})
