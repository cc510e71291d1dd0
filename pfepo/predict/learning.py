"""Learning from failures: root-cause reports and bounded, policy-permitted act-threshold adjustments.

After a region fails the daemon calls ``FailureLearner.on_failure``; the analysis (history query,
``predict.rootcause.root_cause``, ``propose_adjustment``) runs on one background thread so the decision
loop never waits for it. Reports are written to ``STATE_DIR/rootcause/`` and audited; a proposal to act
earlier is applied only when the governing policy says ``learning.auto_apply: true``, never below
``learning.min_act`` nor the proposal's own bounds. Applied adjustments are an overlay
``{policy name: act}`` kept in ``STATE_DIR/adjustments.json``, so they survive restarts, and
``effective(policyset)`` lays them over whatever set the reloader holds, so they survive hot reloads
too (for as long as the policy exists and still allows learning).
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pfepo.policy.context import EndpointContext
from pfepo.policy.model import Policy
from pfepo.policy.policyset import PolicySet
from pfepo.predict.rootcause import propose_adjustment, root_cause

log = logging.getLogger("pfepo.predict.learning")

# Not signals of a coming failure: the loop's own output and the failure indicators themselves.
NOT_SIGNALS = frozenset({"risk", "weight", "up", "health_up"})
# The coarsest time grid for the root-cause frame: lead times are resolved to this at worst.
MAX_GRID_S = 15.0


@dataclass(frozen=True)
class _Job:
    region: str
    contexts: tuple[EndpointContext, ...]
    failure_ts: float
    policies: PolicySet | None
    queued_at: float


class FailureLearner:
    """Root-cause analysis after failures (one at a time, off the caller's thread) and the act overlay."""

    def __init__(self, store, audit, state_dir: str | Path, clock: Callable[[], float] = time.time, *,
                 lookback_s: float = 1800.0, baseline_s: float = 3600.0, z: float = 3.0, persist: int = 3,
                 keep: int = 50, keep_files: int = 1000, queue_max: int = 4, max_rows: int = 500_000,
                 settle_s: float = 0.0):
        self.store = store
        self.audit = audit
        self.clock = clock
        self.dir = Path(state_dir) / "rootcause"
        self.adjustments_path = Path(state_dir) / "adjustments.json"
        self.lookback_s, self.baseline_s, self.z, self.persist = lookback_s, baseline_s, z, persist
        self.keep_files, self.max_rows = keep_files, max_rows
        self.settle_s = settle_s  # wait this long after a failure so batched history writes have landed
        self._stopping = threading.Event()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._reports: deque[dict] = deque(self._load_reports(keep), maxlen=keep)
        self._overlay: dict[str, dict] = self._load_overlay()
        self._overlay_version = 0
        self._cache: dict[tuple, PolicySet] = {}
        self._last: tuple[PolicySet | None, int, PolicySet | None] = (None, -1, None)
        self._q: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_max)
        self._thread: threading.Thread | None = None
        self._health: dict[str, bool] | None = None
        self.counters = {"queued": 0, "dropped": 0, "analysed": 0, "errors": 0, "proposed": 0, "applied": 0}

    # --- the caller's side (decision loop): never blocks ---------------------------------------------
    def on_failure(self, region: str, endpoints: Sequence[EndpointContext | str], failure_ts: float,
                   policies: PolicySet | None) -> bool:
        """Queue an analysis of ``region``'s failure at ``failure_ts``; False when the queue was full.

        ``endpoints`` are the region's endpoint contexts (the loop's ``self.contexts`` filtered by
        region), the failing one first; plain names are accepted but then only endpoint/region
        selectors can pick the governing policy.
        """
        ctxs = tuple(e if isinstance(e, EndpointContext) else
                     EndpointContext(endpoint=str(e), region=region, service=None, application="", priority="medium")
                     for e in endpoints)
        job = _Job(region, ctxs, float(failure_ts), policies, self.clock())
        self._ensure_thread()
        try:
            self._q.put_nowait(job)
        except queue.Full:
            with self._lock:
                self.counters["dropped"] += 1
            log.warning("root-cause queue full: analysis of %s at %.0f dropped", region, failure_ts)
            return False
        with self._lock:
            self.counters["queued"] += 1
        return True

    def observe(self, now: float, health: dict[str, bool], contexts: Sequence[EndpointContext],
                policies: PolicySet | None, obs: dict[str, dict[str, float]] | None = None) -> list[str]:
        """Call once per decision-loop tick: queues an analysis for every region that went up -> down.

        The first tick only records the state (a region already down at start-up is not a failure we
        watched coming). Within a region, endpoints whose ``health_up`` reads 0 are analysed first.
        Returns the regions that failed on this tick.
        """
        prev = self._health
        self._health = dict(health)
        if prev is None:
            return []
        failed = [r for r, up in health.items() if not up and prev.get(r, False)]
        for region in failed:
            ctxs = [c for c in contexts if c.region == region]
            ctxs.sort(key=lambda c: (obs or {}).get(c.endpoint, {}).get("health_up", 1.0) >= 0.5)  # stable
            self.on_failure(region, ctxs, now, policies)
        return failed

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="failure-learner", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is None:
                    return
                wait = job.queued_at + self.settle_s - self.clock()
                if wait > 0 and self._stopping.wait(wait):
                    continue
                self.analyse(job.region, job.contexts, job.failure_ts, job.policies)
            except Exception:  # one bad analysis must not end the worker
                with self._lock:
                    self.counters["errors"] += 1
                log.exception("root-cause analysis of %s failed", job.region if job else "?")
            finally:
                self._q.task_done()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued analysis has finished (tests, shutdown); True if it did in time."""
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """End the worker; analyses still waiting to settle are skipped."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            try:
                self._q.put(None, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)

    # --- the analysis (worker thread; callable directly in tests) -------------------------------------
    def analyse(self, region: str, contexts: Sequence[EndpointContext], failure_ts: float,
                policies: PolicySet | None) -> dict:
        names = list(dict.fromkeys(c.endpoint for c in contexts))
        if not names:
            raise ValueError(f"region {region}: no endpoints to analyse")
        start = failure_ts - self.lookback_s - self.baseline_s
        frame, from_link = history_frame(self.store, names, region, start, failure_ts, self.max_rows)
        primary = names[0]
        if frame.empty:
            rep = {"endpoint": primary, "failure_ts": failure_ts, "window_s": self.lookback_s, "first_signal": None,
                   "precursor": False, "lead_s": 0.0, "signals": [], "other_endpoints": []}
        else:
            rep = root_cause(frame, primary, failure_ts, self.lookback_s, self.baseline_s, self.z, self.persist)
        link = f"uplink:{region}"
        for s in rep["signals"]:
            s["source"] = link if (s["endpoint"], s["metric"]) in from_link else "endpoint"
        now = self.clock()
        rid = f"{int(failure_ts)}-{region}"
        report = {"id": rid, "region": region, "created_ts": now, "endpoints": names,
                  "rows": int(len(frame)), **rep, "proposals": []}
        eff = self.effective(policies) if policies is not None else None
        for ctx in [c for c in contexts if c.endpoint == primary]:
            report["proposals"].extend(self._propose(report, ctx, policies, eff))
        self._save_report(report)
        first = rep["first_signal"]
        self.audit.append("rootcause", {
            "ts": now, "id": rid, "region": region, "endpoint": primary, "failure_ts": failure_ts,
            "precursor": rep["precursor"], "lead_s": rep["lead_s"],
            "first_signal": None if first is None else {k: first[k] for k in ("endpoint", "metric", "source",
                                                                              "lead_s", "direction")},
            "signals": len(rep["signals"]), "other_endpoints": rep["other_endpoints"],
            "proposals": len(report["proposals"]),
        })
        with self._lock:
            self.counters["analysed"] += 1
        return report

    def _propose(self, report: dict, ctx: EndpointContext, policies: PolicySet | None,
                 eff: PolicySet | None) -> list[dict]:
        if policies is None or eff is None:
            return []
        pol, _ = policies.select(ctx)
        if pol is None or any(p.get("policy") == pol.name for p in report["proposals"]):
            return []
        live = eff.get(pol.name) or pol
        act = float(live.risk.thresholds.act)
        rows = self.store.range(subject=ctx.endpoint, metric="risk",
                                start=report["failure_ts"] - self.lookback_s, end=report["failure_ts"])
        if ctx.service is not None:
            rows = [s for s in rows if s.tag("service", ctx.service) == ctx.service]
        ts = np.array([s.ts for s in rows], float)
        risk = np.array([s.value for s in rows], float)
        prop = propose_adjustment(report, ts, risk, act)
        if prop is None:
            return []
        prop = {**prop, "policy": pol.name, "service": ctx.service, "region": ctx.region, "report": report["id"],
                "auto_apply": pol.learning.auto_apply}
        with self._lock:
            self.counters["proposed"] += 1
        self.audit.append("policy_adjustment_proposed", {"ts": self.clock(), **prop})
        prop["applied"], prop["why"] = self._maybe_apply(pol, prop)
        return [prop]

    def _maybe_apply(self, pol: Policy, prop: dict) -> tuple[bool, str]:
        """Apply within bounds when the policy allows it; (applied, why)."""
        if not pol.learning.auto_apply:
            return False, "policy does not allow learning.auto_apply"
        if not pol.enabled:
            return False, "policy is disabled"
        floor = max(float(pol.learning.min_act), float(prop["bounds"][0]))
        target = max(float(prop["to"]), floor)
        current = float(prop["from"])
        if not math.isfinite(target) or target >= current:
            return False, f"bounded target {target:g} is not below the live act {current:g}"
        rec = {"act": round(target, 6), "written_act": float(pol.risk.thresholds.act), "from": current,
               "ts": self.clock(), "report": prop["report"], "endpoint": prop["endpoint"]}
        with self._lock:
            self._overlay[pol.name] = rec
            self._overlay_version += 1
            self._save_overlay()
            self.counters["applied"] += 1
        prop["to_applied"] = rec["act"]
        self.audit.append("policy_adjustment_applied", {
            "ts": rec["ts"], "policy": pol.name, "from": current, "to": rec["act"], "proposed": prop["to"],
            "bounds": [floor, current], "min_act": float(pol.learning.min_act), "report": prop["report"],
            "endpoint": prop["endpoint"], "region": prop["region"], "service": prop["service"]})
        return True, f"applied act {rec['act']:g} (bounds {floor:g}..{current:g})"

    # --- the overlay ----------------------------------------------------------------------------------
    def effective(self, policyset: PolicySet | None) -> PolicySet | None:
        """``policyset`` with learned act thresholds laid over it (the same object when nothing applies).

        A learned act is used while the policy exists, is enabled, still has ``learning.auto_apply`` and
        the value is below its written act (never below ``learning.min_act``); warn and an explicit
        ``failback.below`` scale with act so the hysteresis keeps its shape. Cached per (set digest,
        overlay), so calling it every tick is cheap.
        """
        if policyset is None:
            return None
        last_in, last_ver, last_out = self._last
        if last_in is policyset and last_ver == self._overlay_version:
            return last_out
        with self._lock:
            overlay = {k: v["act"] for k, v in self._overlay.items()}
            ver = self._overlay_version
        key = (policyset.digest, tuple(sorted(overlay.items())))
        out = self._cache.get(key)
        if out is None:
            changed = False
            pols = []
            for p in policyset.policies:
                q = _lowered(p, overlay.get(p.name))
                changed |= q is not p
                pols.append(q)
            out = PolicySet(tuple(pols), dict(policyset.sources), policyset.files) if changed else policyset
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = out
        self._last = (policyset, ver, out)
        return out

    def adjustments(self) -> dict[str, dict]:
        with self._lock:
            return {k: dict(v) for k, v in self._overlay.items()}

    def _load_overlay(self) -> dict[str, dict]:
        try:
            data = json.loads(self.adjustments_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("%s unreadable (%s): starting without learned adjustments", self.adjustments_path, exc)
            return {}
        out = {}
        for name, rec in (data.get("policies", {}) if isinstance(data, dict) else {}).items():
            act = rec.get("act") if isinstance(rec, dict) else None
            if isinstance(act, int | float) and math.isfinite(act) and act > 0:
                out[str(name)] = rec
        return out

    def _save_overlay(self) -> None:
        tmp = self.adjustments_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"version": 1, "policies": self._overlay}, indent=2, sort_keys=True),
                       encoding="utf-8")
        os.replace(tmp, self.adjustments_path)

    # --- reports --------------------------------------------------------------------------------------
    def reports(self, limit: int = 20) -> list[dict]:
        """The newest ``limit`` reports, newest first (for GET /api/v1/rootcause)."""
        with self._lock:
            items = list(self._reports)
        return items[::-1][: max(0, int(limit))]

    def report(self, rid: str) -> dict | None:
        with self._lock:
            hit = next((r for r in self._reports if r["id"] == rid), None)
        if hit is not None:
            return hit
        path = self.dir / f"{rid}.json"
        if path.parent != self.dir or not path.is_file():  # ids never contain path separators
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def stats(self) -> dict:
        with self._lock:
            return {**self.counters, "pending": self._q.qsize(), "reports": len(self._reports),
                    "adjustments": len(self._overlay)}

    def _save_report(self, report: dict) -> None:
        body = json.dumps(_finite(report), indent=1, sort_keys=True, default=_plain)
        path = self.dir / f"{report['id']}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
        with self._lock:
            self._reports = deque([r for r in self._reports if r["id"] != report["id"]], maxlen=self._reports.maxlen)
            self._reports.append(_finite(report))
        files = sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in files[: max(0, len(files) - self.keep_files)]:
            old.unlink(missing_ok=True)

    def _load_reports(self, keep: int) -> list[dict]:
        out = []
        for p in sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime)[-keep:]:
            try:
                out.append(json.loads(p.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                log.warning("skipping unreadable root-cause report %s", p)
        return out


def _lowered(p: Policy, act: float | None) -> Policy:
    """``p`` with its act lowered to ``act`` (bounded by learning.min_act), or ``p`` itself."""
    t = p.risk.thresholds
    if act is None or not p.enabled or not p.learning.auto_apply:
        return p
    new = max(float(act), float(p.learning.min_act))
    if not new < t.act:
        return p
    ratio = new / t.act
    thr = t.model_copy(update={"act": new, "warn": None if t.warn is None else t.warn * ratio})
    fb = p.failback
    if fb.below is not None:
        fb = fb.model_copy(update={"below": fb.below * ratio})
    return p.model_copy(update={"risk": p.risk.model_copy(update={"thresholds": thr}), "failback": fb})


def _plain(v):
    """numpy scalars and anything else json cannot encode."""
    return v.item() if isinstance(v, np.generic) else str(v)


def _finite(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def history_frame(store, endpoints: Sequence[str], region: str, start: float, end: float,
                  max_rows: int = 500_000) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """Trace-layout frame (``ts``, ``endpoint``, metric columns) for ``endpoints`` over [start, end).

    Each endpoint gets its own signals plus the region uplink's network metrics where it has none of
    its own (as the decision loop sees them). Series are put on one time grid of bucket means whose step
    is the slowest sampling interval (1 s to ``MAX_GRID_S``): then ``persist`` consecutive rows are that
    many real samples, not one outlier carried forward. Only a series slower than ``MAX_GRID_S`` is
    carried forward, for at most its own interval, so a gap stays a gap. Returns the frame and the
    (endpoint, metric) pairs that came from the link.
    """
    from pfepo.controller.loop import UPLINK_METRICS  # lazy: the loop module may import this one

    def series(subject: str, allowed) -> dict[str, pd.Series]:
        rows = store.range(subject=subject, start=start, end=end, limit=max_rows)
        by: dict[str, tuple[list, list]] = {}
        for s in rows:
            if allowed(s.metric) and math.isfinite(s.value):
                t, v = by.setdefault(s.metric, ([], []))
                t.append(s.ts)
                v.append(s.value)
        return {m: pd.Series(v, index=np.asarray(t, float)) for m, (t, v) in by.items() if len(t) > 1}

    link = series(f"uplink:{region}", lambda m: m in UPLINK_METRICS)
    own = {ep: series(ep, lambda m: m not in NOT_SIGNALS) for ep in endpoints}
    steps = [float(np.median(np.diff(s.index))) for d in (link, *own.values()) for s in d.values()]
    steps = [s for s in steps if s > 0]
    if not steps:
        return pd.DataFrame(columns=["ts", "endpoint"]), set()
    step = min(max(1.0, max(steps)), MAX_GRID_S)
    t0 = math.floor(start / step) * step
    grid = np.arange(int(math.ceil((end - t0) / step)))  # bucket numbers; bucket k starts at t0 + k * step

    def on_grid(s: pd.Series) -> pd.Series:
        b = s.groupby(np.floor((s.index.to_numpy() - t0) / step).astype(int)).mean()
        own_step = float(np.median(np.diff(s.index))) if len(s) > 1 else step
        g = b.reindex(grid)
        carry = math.ceil(own_step / step - 1e-9) - 1
        return g.ffill(limit=carry) if carry > 0 else g

    link_g = {m: on_grid(s) for m, s in link.items()}
    frames, from_link = [], set()
    for ep in endpoints:
        cols = {m: on_grid(s) for m, s in own[ep].items()}
        for m, s in link_g.items():
            if m not in cols:
                cols[m] = s
                from_link.add((ep, m))
        if not cols:
            continue
        f = pd.DataFrame(cols, index=grid)
        f = f[f.notna().any(axis=1)]
        f.insert(0, "endpoint", ep)
        f.insert(0, "ts", t0 + f.index.to_numpy() * step)
        frames.append(f.reset_index(drop=True))
    if not frames:
        return pd.DataFrame(columns=["ts", "endpoint"]), set()
    return pd.concat(frames, ignore_index=True), from_link
