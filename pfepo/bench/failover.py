"""``pfepo bench failover``: static vs reactive vs predictive failover on the Mininet lab, one scenario.

Scenario (same for every mode, times scaled by --quick): steady HTTP load from two clients at the VIP;
after a warm-up, region ``eu``'s link degrades gradually (one-way latency ramps up, loss joins at the
end) and then goes down hard; earlier, region ``ap`` has a short benign latency spike that must not move
traffic. Modes:
- ``static``: the controller installs the groups and is then stopped: no controller action at all
  (OVS itself still skips a bucket whose uplink lost carrier: watch_port liveness).
- ``reactive``: the daemon with the same criteria as the shipped default policy, on observed values
  only, no predictor, and an immediate full move when they fire or when the link fails.
- ``predictive``: the daemon with the shipped policies (policies/*.yaml) and the predictive engine.

Needs root and Open vSwitch. Results: JSON (--json) and a PNG next to it.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MODES = ("static", "reactive", "predictive")

REACTIVE_POLICY = """\
# Reactive baseline: the default policy's thresholds on observed values only, no predictor, and an
# immediate full move (what a threshold/health-check failover does).
policies:
  - name: reactive
    priority: 0
    criteria:
      - {metric: latency_ms, op: ">", threshold: 150, weight: 0.3, apply_to: observed}
      - {metric: loss_pct, op: ">", threshold: 2, weight: 0.4, apply_to: observed}
    risk:
      probability: criteria
      thresholds: {warn: 0.2, act: 0.4}
    actions:
      shift_traffic: {to: auto, step_percent: 100, step_interval_s: 1, max_percent: 100}
    safety: {min_dwell_s: 1, cooldown_s: 1, min_share_percent: 0, max_regions_drained: 1}
    failback: {below: 0.1, stable_s: 600, step_percent: 10, step_interval_s: 30}
"""


@dataclass
class Scenario:
    warmup_s: float = 90.0
    benign_at_s: float = 40.0  # after start: ap latency spike
    benign_s: float = 6.0
    benign_ms: float = 60.0
    ramp_s: float = 120.0  # eu one-way latency 0 -> ramp_ms, loss joins in the last loss_tail of it
    ramp_ms: float = 200.0
    loss_tail: float = 0.25
    loss_pct: float = 6.0
    after_s: float = 25.0
    degrade_region: str = "eu"
    benign_region: str = "ap"
    concurrency: int = 6  # per client, two clients
    sla_ms: float = 200.0

    @classmethod
    def quick(cls) -> Scenario:
        return cls(warmup_s=60.0, benign_at_s=30.0, ramp_s=80.0, after_s=20.0)

    @classmethod
    def demo(cls) -> Scenario:
        """Short enough for ``make demo`` to run it twice (predictive, reactive)."""
        return cls(warmup_s=16.0, benign_at_s=6.0, benign_s=4.0, ramp_s=60.0, after_s=4.0)

    @property
    def failure_at_s(self) -> float:
        return self.warmup_s + self.ramp_s

    @property
    def duration_s(self) -> float:
        return self.failure_at_s + self.after_s


def register(sub) -> None:
    p = sub.add_parser("failover", help="static vs reactive vs predictive failover on Mininet (root)",
                       description=__doc__)
    p.add_argument("--json", metavar="OUT", required=True, help="results JSON; the PNG goes next to it")
    p.add_argument("--quick", action="store_true", help="shorter scenario (whole run under 10 minutes)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    p.add_argument("--workdir", help="keep per-mode logs here (default: a temp dir)")
    p.set_defaults(func=_main)


class _Poller(threading.Thread):
    """Samples the switch's bucket weights (and the daemon's risk) every 0.25 s."""

    def __init__(self, lab, t0: float, api: bool):
        super().__init__(daemon=True)
        self.lab, self.t0, self.api = lab, t0, api
        self.rows: list[dict] = []
        self.stop_ev = threading.Event()

    def run(self) -> None:
        while not self.stop_ev.is_set():
            row = {"t": time.time() - self.t0}
            try:
                row["weights"] = dict(zip(self.lab.spec.regions, self.lab.switch_weights(), strict=False))
            except Exception:
                pass
            if self.api:
                try:
                    preds = self.lab.api.get("/api/v1/predictions", timeout=1).json().get("predictions", {})
                    row["p"] = {ep: v["probability"] for ep, v in preds.items()}
                except Exception:
                    pass
            self.rows.append(row)
            self.stop_ev.wait(0.25)


def run_mode(mode: str, sc: Scenario, workdir: Path, log=print, live=None) -> dict:
    """One mode of the scenario. ``live(t, lab, reqlog)`` (optional) is called about once a second."""
    from mininet_topologies.lab import Lab

    workdir.mkdir(parents=True, exist_ok=True)
    extra = {"poll_interval_s": 0.5}
    paths = None
    if mode == "reactive":
        (workdir / "policies").mkdir(exist_ok=True)
        (workdir / "policies" / "reactive.yaml").write_text(REACTIVE_POLICY)
        paths = [str(workdir / "policies")]
        extra["predict"] = {"enabled": False}
    if mode == "predictive":
        # The lab compresses a degradation into 1-2 minutes: the engine runs at that time scale (2 s steps,
        # 60 s horizon, 15 s trend), where the shipped model (10 s / 300 s) does not apply: forecast-only.
        extra["predict"] = {"step_s": 2.0, "horizon_s": 60.0, "trend_tau_s": 15.0, "model_path": None}
    lab = Lab(workdir, extra_config=extra, policy_paths=paths)
    try:
        lab.start()
        if mode == "static":
            # No controller from here on: groups stay on the switches (fail-mode secure). Nobody answers
            # ARP for the VIP any more, so give the clients a permanent neighbour entry for it.
            for c in ("c1", "c2"):
                h = lab.net.host(c)
                h.cmd(f"ip neigh replace {lab.spec.vip} lladdr {lab.spec.vip_mac} dev {h.defaultIntf()} nud permanent")
            lab.stop_daemon()
        reqlog = workdir / "requests.jsonl"
        t0 = time.time()
        poller = _Poller(lab, t0, api=mode != "static")
        poller.start()
        for c in ("c1", "c2"):
            lab.net.start_client(c, ["--url", f"http://{lab.spec.vip}/", "--duration", str(sc.duration_s),
                                     "--concurrency", str(sc.concurrency), "--timeout", "2", "--log", str(reqlog)])
        imp = lab.net.impairer
        events = []
        live_stop = threading.Event()
        if live is not None:
            def _live() -> None:
                while not live_stop.wait(2.0):
                    try:
                        live(time.time() - t0, lab, reqlog)
                    except Exception as exc:  # the view must never break the run
                        log(f"  (live view: {exc})")

            threading.Thread(target=_live, daemon=True).start()

        def at(t_rel: float) -> None:
            delay = t0 + t_rel - time.time()
            if delay > 0:
                time.sleep(delay)

        at(sc.benign_at_s)
        imp.set_delay(sc.benign_region, sc.benign_ms)
        events.append({"t": time.time() - t0, "event": f"benign spike {sc.benign_region} {sc.benign_ms:g} ms"})
        at(sc.benign_at_s + sc.benign_s)
        imp.set_delay(sc.benign_region, 0)
        at(sc.warmup_s)
        events.append({"t": time.time() - t0, "event": f"degradation of {sc.degrade_region} starts"})
        steps = max(1, int(sc.ramp_s))  # one change per second
        for k in range(1, steps + 1):
            at(sc.warmup_s + sc.ramp_s * k / steps)
            frac = k / steps
            if k < steps:
                imp.set_delay(sc.degrade_region, sc.ramp_ms * frac)
                tail = (frac - (1 - sc.loss_tail)) / sc.loss_tail
                if tail > 0:
                    imp.set_loss(sc.degrade_region, sc.loss_pct * tail)
        imp.link_down(sc.degrade_region)
        t_fail = time.time() - t0
        events.append({"t": t_fail, "event": f"{sc.degrade_region} link down (failure)"})
        log(f"  [{mode}] failure injected at t={t_fail:.1f}s")
        at(sc.duration_s + 3)
        live_stop.set()
        poller.stop_ev.set()
        poller.join()
        result = summarise(mode, sc, reqlog, poller.rows, t0, t_fail)
        result["events"] = events
        (workdir / "timeline.json").write_text(json.dumps({"weights": poller.rows, "events": events}))
        return result
    finally:
        lab.stop()


def summarise(mode: str, sc: Scenario, reqlog: Path, rows: list[dict], t0: float, t_fail: float) -> dict:
    reqs = [json.loads(line) for line in reqlog.read_text().splitlines()]
    for r in reqs:
        r["t"] = r["ts"] - t0
        r["region"] = r["server"].rsplit("-", 1)[0] if r["server"] else None
    sent = len(reqs)
    failed = [r for r in reqs if r["server"] is None]
    over = [r for r in reqs if r["server"] is not None and r["latency_s"] * 1000 > sc.sla_ms]
    region = sc.degrade_region
    nominal = rows[0]["weights"][region] if rows and "weights" in rows[0] else None
    at_fail = [r for r in rows if r["t"] <= t_fail and "weights" in r]
    w_fail = at_fail[-1]["weights"] if at_fail else None
    total = sum(w_fail.values()) if w_fail else 0
    first_shift = next((r["t"] for r in rows if "weights" in r and nominal is not None
                        and r["weights"][region] < nominal), None)
    after = [r for r in failed if r["t"] >= t_fail]
    benign_nominal = rows[0]["weights"][sc.benign_region] if rows and "weights" in rows[0] else None
    benign_shift = any(r["weights"][sc.benign_region] < benign_nominal for r in rows
                       if "weights" in r and sc.benign_at_s <= r["t"] < sc.warmup_s) if benign_nominal else False
    before = [r for r in reqs if t_fail - 5 <= r["t"] < t_fail and r["region"]]
    lat = sorted(r["latency_s"] for r in reqs if r["server"])
    return {
        "mode": mode,
        "requests_sent": sent,
        "requests_failed": len(failed),
        "requests_over_sla": len(over),
        "lost_pct": round(100.0 * len(failed) / sent, 3) if sent else None,
        "failover_complete_s": round(max(r["t"] for r in after) - t_fail, 3) if after else 0.0,
        "share_in_failing_region_at_failure": round(w_fail[region] / total, 4) if total else None,
        "measured_share_in_failing_region_5s_before_failure":
            round(sum(r["region"] == region for r in before) / len(before), 4) if before else None,
        "lead_s": round(t_fail - first_shift, 2) if first_shift is not None and first_shift < t_fail else None,
        "benign_shift": benign_shift,
        "latency_p50_ms": round(1000 * lat[len(lat) // 2], 2) if lat else None,
        "latency_p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
        "failed_after_failure": len(after),
        "failed_before_failure": len(failed) - len(after),
        "median_latency_ms_last_10s_before_failure": round(1000 * statistics.median(
            [r["latency_s"] for r in reqs if r["server"] and t_fail - 10 <= r["t"] < t_fail]), 2)
        if any(r["server"] and t_fail - 10 <= r["t"] < t_fail for r in reqs) else None,
    }


def _main(args) -> int:
    from mininet_topologies.lab import check_environment

    try:
        check_environment()
    except RuntimeError as exc:
        print(f"pfepo bench failover: {exc}", file=sys.stderr)
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        print(f"pfepo bench failover: unknown mode(s) {', '.join(bad)}; choose from {', '.join(MODES)}",
              file=sys.stderr)
        return 2
    sc = Scenario.quick() if args.quick else Scenario()
    out = Path(args.json)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pfepo-bench-failover-"))
    started = time.monotonic()
    print(f"bench failover: {len(modes)} mode(s) x {sc.duration_s:.0f} s scenario; logs in {workdir}")
    results = {}
    for m in modes:
        print(f"- mode {m} ...", flush=True)
        results[m] = run_mode(m, sc, workdir / m)
        print_row(results[m])
    report = {"scenario": {**asdict(sc), "failure_at_s": sc.failure_at_s, "quick": args.quick},
              "modes": results, "duration_s": round(time.monotonic() - started, 1),
              "command": "pfepo bench failover " + " ".join(sys.argv[3:])}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    png = out.with_suffix(".png")
    from pfepo.bench._failover_plot import plot

    plot(workdir, modes, sc, png)
    print_table(results)
    print(f"\nJSON: {out}\nplot: {png}\nwhole run: {report['duration_s']} s")
    return 0


KEYS = ("requests_sent", "requests_failed", "requests_over_sla", "lost_pct", "failover_complete_s",
        "share_in_failing_region_at_failure", "lead_s", "benign_shift")


def print_row(r: dict) -> None:
    print("  " + ", ".join(f"{k}={r.get(k)}" for k in KEYS), flush=True)


def print_table(results: dict) -> None:
    modes = list(results)
    print("\n" + f"{'':38s}" + "".join(f"{m:>14s}" for m in modes))
    for k in KEYS:
        print(f"{k:38s}" + "".join(f"{str(results[m].get(k)):>14s}" for m in modes))
