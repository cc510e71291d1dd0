"""``pfepo bench failover``: static vs reactive vs predictive failover on the Mininet lab, per scenario.

Scenarios (the same timeline in every mode; times scaled by --quick):
- ``degrade_link_down``: region ``eu``'s link degrades gradually (one-way latency ramps up, loss joins
  at the end), then goes down hard (carrier loss: OVS ``watch_port`` handles that even with no
  controller);
- ``degrade_blackhole`` / ``degrade_server_hang`` / ``degrade_server_crash`` / ``degrade_brownout``: the
  same degradation, then a gray failure (the link stays up): the relay drops everything; every eu server
  accepts and never answers; refuses/resets; answers half of the requests with 503;
- ``blackhole_no_precursor``: no degradation at all, then a blackhole (predictive has nothing to see).
Every scenario starts with a short benign latency spike on ``ap`` that must not move traffic.

Load: two clients with short HTTP/1.0 requests (each a new TCP connection) plus 10 keep-alive
connections (one request every 0.2 s each), all at the VIP; client timeout 2 s.

Modes:
- ``static``: the controller installs the pipeline and is then stopped: no controller action at all;
- ``reactive``: the daemon's live signals with the best sensible settings (``REACTIVE`` below): link
  probes every 0.5 s, HTTP health checks of every server every 1 s (1 s timeout), region failed and
  emptied at once when every server of a region fails a check or its uplink is down, and an immediate
  full move when observed latency/loss cross the default policy's thresholds; no predictor;
- ``predictive``: the same signals plus the predictive engine and the shipped policies (policies/*.yaml).

Both controller modes get the same drain hook (``DRAIN_EXECUTOR``, a command executor): when a drain
starts, every server of the region answers ``Connection: close`` (``pfepo impair ... server drain``), so
keep-alive clients reconnect through the new split instead of being reset by a later eviction.

One lab (Mininet and OVS) serves every run; the daemon is restarted with a clean state for each run, and
a run starts only once nothing is at risk and every region is at its nominal share for 2 s (a start-up
transient that moved traffic restarts the daemon, at most three times; counted in the results).
Needs root and Open vSwitch. Results: JSON (--json) and a PNG next to it (one panel per scenario).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

MODES = ("static", "reactive", "predictive")
# name -> (failure kind, precursor)
SCENARIOS: dict[str, tuple[str, bool]] = {
    "degrade_link_down": ("link_down", True),
    "degrade_blackhole": ("blackhole", True),
    "degrade_server_hang": ("hang", True),
    "degrade_server_crash": ("crash", True),
    "degrade_brownout": ("brownout", True),
    "blackhole_no_precursor": ("blackhole", False),
}
BROWNOUT_PCT = 50.0
KEEPALIVE = 10

REACTIVE_POLICY = """\
# Reactive baseline: the default policy's thresholds on observed values only, no predictor, and an
# immediate full move (what a threshold/health-check failover does); failed regions are emptied at once.
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
    drain: {empty_after_s: 30, on_failure: true, hook: {executor: lab-drain}}  # as the shipped policy
    failback: {below: 0.1, stable_s: 600, step_percent: 10, step_interval_s: 30}
"""

# What reactive (and predictive) see, documented beside the results.
REACTIVE = {
    "probes": "per uplink, both directions, every poll (0.5 s); loss_pct over the window, one-way latency",
    "health_checks": "GET /health on every server every 1 s, 1 s timeout, through the data plane (the "
                     "relays) from a monitor interface; a region fails when every server fails its latest check",
    "ejection": "region failed -> every slot moved at once and pinned connections evicted (no dwell)",
    "thresholds": "observed latency_ms > 150 or loss_pct > 2 -> immediate full move (step 100 %)",
    "uplink_down": "port-status -> bucket weight 0 at once (and OVS watch_port)",
    "drain_hook": "the same as predictive: servers of a drained region answer Connection: close",
}
DRAIN_EXECUTOR = "lab-drain"


def drain_executor(state_path: str) -> dict:
    """The lab's drain hook (a command executor): ``python -m pfepo_lab.impair.drainhook --state S REGION
    drain|undrain``, the same as ``pfepo impair --state S REGION server drain`` but quick to start."""
    return {"type": "command", "timeout_s": 20,
            "argv": [sys.executable, "-m", "pfepo_lab.impair.drainhook", "--state", state_path, "{region}", "{action}"]}


def predictive_policies(workdir: Path) -> list[str]:
    """The shipped policies as they are, plus the lab's drain hook executor on their ``drain`` (the shipped
    files cannot name an executor that only the lab's daemon config has)."""
    import yaml

    from mininet_topologies.lab import REPO

    out = workdir / "policies"
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted((REPO / "policies").glob("*.y*ml")):
        doc = yaml.safe_load(f.read_text())
        for pol in doc.get("policies", []):
            pol.setdefault("drain", {})["hook"] = {"executor": DRAIN_EXECUTOR}
        (out / f.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return [str(out)]


# The engine's settings of the compressed timelines (--quick, the demo): 2 s steps, 60 s horizon, 15 s
# trend. (Scaling the trend's time constant to 3.25 s was tried on --quick: the benign 4 s spike on ap then
# forecast 390 ms and drained ap.)
SHORT_PREDICT = {"step_s": 2.0, "horizon_s": 60.0, "trend_tau_s": 15.0}


@dataclass
class Scenario:
    """The timeline shared by every scenario (the precursor ramp is skipped without a precursor)."""

    warmup_s: float = 48.0
    # after start: ap latency spike (in the full timeline after the trend's cold start, trend_tau_s, so
    # the spike meets an engine that extrapolates trends)
    benign_at_s: float = 32.0
    benign_s: float = 6.0
    benign_ms: float = 60.0
    ramp_s: float = 150.0  # eu one-way latency 0 -> ramp_ms, loss joins in the last loss_tail of it
    ramp_ms: float = 200.0
    loss_tail: float = 0.25
    loss_pct: float = 6.0
    after_s: float = 12.0
    degrade_region: str = "eu"
    benign_region: str = "ap"
    concurrency: int = 6  # per client, two clients
    sla_ms: float = 200.0
    # without a precursor the failure comes this long after the warm-up (None: after ramp_s, as with one)
    quiet_s: float | None = 30.0
    # The predictive engine's time constants (daemon config ``predict.*``), compressed coherently with the
    # 150 s ramp: 2 s model steps, a 120 s horizon (a warning can come long before the observed breach, at
    # 3/4 of the ramp), a trend time constant of 1/5 of the ramp. The engine's own evidence rules
    # (a forecast breach confirmed over 40 s, no trend in a series' first trend_tau_s) are not settable
    # and not changed: the ramp is long enough for them.
    predict: dict = field(default_factory=lambda: {"step_s": 2.0, "horizon_s": 120.0, "trend_tau_s": 30.0})

    @classmethod
    def quick(cls) -> Scenario:
        """18 runs (6 scenarios x 3 modes) in under 15 minutes: a compressed timeline (a 26 s ramp, shorter
        than the engine's 40 s confirmation: predictive acts on the observed threshold, like reactive)."""
        return cls(warmup_s=7.0, benign_at_s=1.5, benign_s=4.0, ramp_s=26.0, after_s=6.0, quiet_s=None,
                   predict=dict(SHORT_PREDICT))

    @classmethod
    def demo(cls) -> Scenario:
        """Short enough for ``make demo`` to run it twice (predictive, reactive)."""
        return cls(warmup_s=16.0, benign_at_s=6.0, benign_s=4.0, ramp_s=60.0, after_s=10.0, quiet_s=None,
                   predict=dict(SHORT_PREDICT))

    def for_scenario(self, precursor: bool) -> Scenario:
        """The timeline of one scenario: without a precursor, the failure after ``quiet_s``."""
        if precursor or self.quiet_s is None:
            return self
        return replace(self, ramp_s=self.quiet_s)

    @property
    def failure_at_s(self) -> float:
        return self.warmup_s + self.ramp_s

    @property
    def duration_s(self) -> float:
        return self.failure_at_s + self.after_s


def register(sub) -> None:
    p = sub.add_parser("failover", help="static vs reactive vs predictive failover on Mininet (root)",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--json", metavar="OUT", required=True, help="results JSON; the PNG goes next to it")
    p.add_argument("--quick", action="store_true", help="compressed timeline (whole run under 15 minutes)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    p.add_argument("--scenarios", "--scenario", dest="scenarios", default=",".join(SCENARIOS),
                   help="comma-separated subset of " + ",".join(SCENARIOS) + " (one scenario: ~1 min per mode)")
    p.add_argument("--workdir", help="keep per-run logs here (default: a temp dir)")
    p.add_argument("--merge", nargs="+", metavar="PART", help="run nothing: merge the JSONs of earlier runs "
                   "(e.g. one --scenario each, so the OVS lock is held per scenario) into --json, and draw the "
                   "PNG from --workdir (the runs' common workdir)")
    p.set_defaults(func=_main)


# --- observing the switch ---------------------------------------------------------------------------------


def _ofctl(*args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, text=True,
                          timeout=5).stdout


def pinned_connections(zone: int, mark: int) -> int:
    """ESTABLISHED conntrack entries in ``zone`` pinned to region ``mark`` (userspace datapath)."""
    out = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", f"zone={zone}"], capture_output=True,
                         text=True, timeout=5).stdout
    return sum(1 for line in out.splitlines() if f"mark={mark}" in line and "ESTABLISHED" in line)


class _Poller(threading.Thread):
    """Every 0.25 s: bucket weights, whether the failing region is evicted, its pinned connections,
    and (with a daemon) the predicted failure probabilities."""

    def __init__(self, lab, t0: float, api: bool, region: str):
        super().__init__(daemon=True)
        from pfepo.openflow.desired import ff_group_id

        self.lab, self.t0, self.api, self.region = lab, t0, api, region
        self.mark = 1 + list(lab.spec.regions).index(region)
        self.ff = ff_group_id(0, self.mark)
        self.zone = int(lab.config.get("openflow", {}).get("conntrack_zone", 7701))
        self.rows: list[dict] = []
        self.stop_ev = threading.Event()

    def run(self) -> None:
        core = self.lab.spec.core()
        while not self.stop_ev.is_set():
            row = {"t": time.time() - self.t0}
            try:
                groups = _ofctl("dump-groups", core)
                for line in groups.splitlines():
                    if "group_id=1," in line:
                        w = [int(x) for x in re.findall(r"weight:(\d+)", line)]
                        row["weights"] = dict(zip(self.lab.spec.regions, w, strict=False))
                    elif f"group_id={self.ff}," in line:
                        row["evicted"] = "watch_port" not in line
                row["pinned"] = pinned_connections(self.zone, self.mark)
            except Exception:
                pass
            if self.api:
                try:
                    preds = self.lab.api.get("/api/v1/predictions", timeout=1).json().get("predictions", {})
                    row["p"] = {ep: v["probability"] for ep, v in preds.items()}
                    plan = self.lab.api.get("/api/v1/decisions", timeout=1).json().get("plan") or {}
                    row["phase"] = plan.get("states", {}).get("web", {}).get(self.region, {}).get("phase")
                except Exception:
                    pass
            self.rows.append(row)
            self.stop_ev.wait(0.25)


# --- one lab for every run --------------------------------------------------------------------------------


def _mode_config(mode: str, workdir: Path, sc: Scenario) -> tuple[dict, list[str] | None]:
    extra: dict = {"poll_interval_s": 0.5}
    paths = None
    if mode == "reactive":
        (workdir / "policies").mkdir(parents=True, exist_ok=True)
        (workdir / "policies" / "reactive.yaml").write_text(REACTIVE_POLICY)
        paths = [str(workdir / "policies")]
        extra["predict"] = {"enabled": False}
    if mode == "predictive":
        paths = predictive_policies(workdir)
        # The lab compresses a degradation into minutes: the engine runs at that time scale (Scenario.predict,
        # forecast-only), where the shipped model (10 s steps, 300 s horizon) does not apply.
        extra["predict"] = {**sc.predict, "model_path": None}
    return extra, paths


class BenchLab:
    """The Mininet lab kept up across runs; the daemon restarted per run with a clean state."""

    def __init__(self, workdir: Path):
        import secrets

        from mininet_topologies.lab import Lab
        from mininet_topologies.multiregion import TopoSpec

        spec = TopoSpec(prefix="p" + secrets.token_hex(2), weights={"eu": 50, "us": 30, "ap": 20},
                        monitor_ip="10.0.0.250")
        self.workdir = workdir
        self.lab = Lab(workdir / "lab", spec=spec, poll_interval_s=0.5)
        self.lab.api_timeout_s = 90.0  # one slow start on a loaded machine must not lose a whole run
        self.base_config = json.loads(json.dumps(self.lab.config))
        self.mode: str | None = None
        self.restarts = 0

    def start(self) -> None:
        self.lab.start()
        for c in ("c1", "c2"):  # static runs have nobody answering ARP for the VIP
            h = self.lab.net.host(c)
            h.cmd(f"ip neigh replace {self.lab.spec.vip} lladdr {self.lab.spec.vip_mac} dev {h.defaultIntf()} "
                  "nud permanent")

    def configure(self, mode: str, run_dir: Path, sc: Scenario) -> None:
        """Restart the daemon for one run: mode's config, fresh state and history (old ones kept)."""
        lab = self.lab
        extra, paths = _mode_config(mode, run_dir, sc)
        cfg = json.loads(json.dumps(self.base_config))
        cfg.update(extra)
        cfg["executors"] = {**cfg.get("executors", {}), DRAIN_EXECUTOR: drain_executor(str(lab.net.state_path))}
        if paths:
            cfg["policy"] = {**cfg["policy"], "paths": paths}
        lab.config = cfg
        self.restarts = 0
        for attempt in range(3):
            lab.restart_daemon(clean=True, keep_in=run_dir / f"start{attempt}")
            if mode == "static":
                lab.stop_daemon()  # groups and flows stay on the switches (fail-mode secure)
                break
            if self._settled():
                break
            self.restarts += 1  # a start-up transient moved traffic: start again from a clean state
        self.mode = mode

    def _settled(self, calm_s: float = 2.0, timeout_s: float = 15.0) -> bool:
        """Probes and health checks have data, and for ``calm_s`` nothing is at risk and every region is
        at its nominal share. A freshly started daemon is busy and its first probe latencies include its
        own queueing; a run must start from a steady state, not from a drain the start-up caused."""
        lab = self.lab

        def seen(subject: str, metric: str) -> bool:
            got = lab.api.get("/api/v1/samples", params={"subject": subject, "metric": metric, "limit": 1})
            return bool(got.json().get("samples"))

        first = lab.spec.server(0, 0)[0]
        lab.wait_for(lambda: seen(f"uplink:{lab.spec.regions[0]}", "latency_ms") and seen(first, "health_up"),
                     timeout_s, interval=0.25, what="probe and health-check samples")
        calm_since = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            d = lab.api.get("/api/v1/decisions").json()
            states = ((d.get("plan") or {}).get("states") or {}).get("web", {})
            if any(s.get("phase") != "normal" or s.get("weight") != s.get("nominal") for s in states.values()):
                return False
            calm = bool(states) and not d.get("decisions")
            calm_since = (calm_since or time.monotonic()) if calm else None
            if calm_since is not None and time.monotonic() - calm_since >= calm_s:
                return True
            time.sleep(0.25)
        return False

    def reset(self) -> None:
        """Every impairment off, servers back to normal, links up."""
        imp = self.lab.net.impairer
        for r in self.lab.spec.regions:
            imp.clear(r)
            imp.server(r, "ok")

    def stop(self) -> None:
        self.lab.stop()


def inject(imp, kind: str, region: str) -> None:
    match kind:
        case "link_down":
            imp.link_down(region)
        case "blackhole":
            imp.blackhole(region)
        case "hang" | "crash":
            imp.server(region, kind)
        case "brownout":
            imp.server(region, "brownout", BROWNOUT_PCT)
        case _:
            raise ValueError(f"unknown failure {kind!r}")


def run_scenario(bl: BenchLab, name: str, mode: str, sc: Scenario, run_dir: Path, log=print, live=None) -> dict:
    """One (scenario, mode) run on the shared lab. ``live(t, lab, reqlog)`` is called about every 2 s."""
    kind, precursor = SCENARIOS[name]
    sc = sc.for_scenario(precursor)
    lab = bl.lab
    run_dir.mkdir(parents=True, exist_ok=True)
    bl.reset()
    if mode != "static" or bl.mode != "static":  # static: the switches keep the nominal pipeline
        bl.configure(mode, run_dir, sc)
    reqlog, kalog = run_dir / "requests.jsonl", run_dir / "keepalive.jsonl"
    for p in (reqlog, kalog):
        p.unlink(missing_ok=True)
    t0 = time.time()
    poller = _Poller(lab, t0, api=mode != "static", region=sc.degrade_region)
    poller.start()
    procs = [lab.net.start_client(c, ["--url", f"http://{lab.spec.vip}/", "--duration", str(sc.duration_s),
                                      "--concurrency", str(sc.concurrency), "--timeout", "2", "--log", str(reqlog)])
             for c in ("c1", "c2")]
    procs.append(lab.net.start_client("c2", ["--url", f"http://{lab.spec.vip}/", "--keepalive", str(KEEPALIVE),
                                             "--interval", "0.2", "--duration", str(sc.duration_s),
                                             "--timeout", "2", "--log", str(kalog)]))
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

    try:
        at(sc.benign_at_s)
        imp.set_delay(sc.benign_region, sc.benign_ms)
        events.append({"t": time.time() - t0, "event": f"benign spike {sc.benign_region} {sc.benign_ms:g} ms"})
        at(sc.benign_at_s + sc.benign_s)
        imp.set_delay(sc.benign_region, 0)
        at(sc.warmup_s)
        if precursor:
            events.append({"t": time.time() - t0, "event": f"degradation of {sc.degrade_region} starts"})
            steps = max(1, int(sc.ramp_s))  # one change per second
            for k in range(1, steps):
                at(sc.warmup_s + sc.ramp_s * k / steps)
                frac = k / steps
                imp.set_delay(sc.degrade_region, sc.ramp_ms * frac)
                tail = (frac - (1 - sc.loss_tail)) / sc.loss_tail
                if tail > 0:
                    imp.set_loss(sc.degrade_region, sc.loss_pct * tail)
        at(sc.failure_at_s)
        inject(imp, kind, sc.degrade_region)
        t_fail = time.time() - t0
        events.append({"t": t_fail, "event": f"{sc.degrade_region} {kind} (failure)"})
        log(f"  [{name}/{mode}] failure injected at t={t_fail:.1f}s")
        at(sc.duration_s + 1)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    finally:
        live_stop.set()
        poller.stop_ev.set()
        poller.join()
        audit = _audit(lab, t0) if mode != "static" else []
        bl.reset()
    (run_dir / "audit.json").write_text(json.dumps(audit))
    result = summarise(mode, sc, [reqlog, kalog], poller.rows, t0, t_fail)
    result.update(drain_summary(audit, t0, t_fail))
    result["events"] = events
    result["daemon_restarts_before_run"] = bl.restarts if mode != "static" else 0
    (run_dir / "timeline.json").write_text(json.dumps({"rows": poller.rows, "events": events, "t_fail": t_fail}))
    return result


def _audit(lab, t0: float) -> list[dict]:
    """The daemon's audit records of this run (evictions, drain hooks and their execution)."""
    try:
        return lab.api.get("/api/v1/audit", params={"since": t0 - 30, "limit": 10000}, timeout=5).json()["records"]
    except Exception:  # noqa: BLE001 - a missing audit must not lose the run's figures
        return []


def drain_summary(audit: list[dict], t0: float, t_fail: float) -> dict:
    """When the drain hook ran (and whether it succeeded) and when the failing region was evicted, in s
    relative to the failure, from the audit log."""
    def rel(rec: dict) -> float:
        return round(float(rec.get("ts", 0.0)) - t0 - (t_fail), 2)

    hooks = [r for r in audit if r.get("event") == "drain_hook"]
    evicts = [r for r in audit if r.get("kind") == "evict"]
    return {
        "drain_hooks": [{"t": rel(r), "action": r.get("action"), "region": r.get("region"),
                         "status": r.get("status")} for r in hooks],
        "evictions": [{"t": rel(r), "region": r.get("region"), "reason": r.get("reason")} for r in evicts],
    }


# --- figures ----------------------------------------------------------------------------------------------


def _first(rows: list[dict], pred, after: float | None = None) -> float | None:
    return next((r["t"] for r in rows if (after is None or r["t"] >= after) and pred(r)), None)


def _settled(rows: list[dict], pred) -> float | None:
    """Start of the final stretch over which ``pred`` holds (None if it does not hold at the end)."""
    t = None
    for r in rows:
        if pred(r):
            t = r["t"] if t is None else t
        else:
            t = None
    return t


def summarise(mode: str, sc: Scenario, logs: list[Path], rows: list[dict], t0: float, t_fail: float) -> dict:
    reqs = []
    for path in logs:
        if path.exists():
            reqs.extend(json.loads(line) for line in path.read_text().splitlines())
    ka = [r for r in reqs if "conn" in r]
    for r in reqs:
        r["t"] = r["ts"] - t0
        r["region"] = r["server"].rsplit("-", 1)[0] if r["server"] else None
    sent = len(reqs)
    failed = [r for r in reqs if r["server"] is None]
    over = [r for r in reqs if r["server"] is not None and r["latency_s"] * 1000 > sc.sla_ms]
    region = sc.degrade_region
    w_rows = [r for r in rows if "weights" in r]
    nominal = w_rows[0]["weights"][region] if w_rows else None
    at_fail = [r for r in w_rows if r["t"] <= t_fail]
    w_fail = at_fail[-1]["weights"] if at_fail else None
    total = sum(w_fail.values()) if w_fail else 0
    first_shift = _first(w_rows, lambda r: nominal is not None and r["weights"][region] < nominal)
    # detection: the controller acts on the region after the failure (weight lowered, or emptied)
    w_at_fail = w_fail[region] if w_fail else None
    evicted_at_fail = bool(at_fail and at_fail[-1].get("evicted"))
    detect = _first(rows, lambda r: ("weights" in r and w_at_fail is not None and r["weights"][region] < w_at_fail)
                    or (r.get("evicted") and not evicted_at_fail) or r.get("phase") == "failed", after=t_fail)
    evict = _first(rows, lambda r: bool(r.get("evicted")))
    no_new = _settled(w_rows, lambda r: r["weights"][region] == 0)
    empty = _settled([r for r in rows if "pinned" in r], lambda r: r["pinned"] == 0)
    # a request counts against the failure when it ended (failed) after it: one sent 1 s before a
    # blackhole that times out 1 s after it was lost to the blackhole, not to the degradation
    after = [r for r in failed if r["t"] + r["latency_s"] >= t_fail]
    benign_nominal = w_rows[0]["weights"][sc.benign_region] if w_rows else None
    benign_shift = any(r["weights"][sc.benign_region] < benign_nominal for r in w_rows
                       if sc.benign_at_s <= r["t"] < sc.warmup_s) if benign_nominal else False
    # a healthy region drained before the failure at any time (noise on a loaded machine can do that
    # outside the benign spike, and max_regions_drained then blocks the failing region's drain)
    others_moved = sorted({reg for r in w_rows if r["t"] < t_fail for reg, w in r["weights"].items()
                           if reg != region and w < w_rows[0]["weights"][reg]})
    lat = sorted(r["latency_s"] for r in reqs if r["server"])
    ka_moved = {}
    for r in ka:
        if r["server"]:
            ka_moved.setdefault(r["conn"], set()).add(r["server"])

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t_fail, 2)

    return {
        "mode": mode,
        "requests_sent": sent,
        "requests_failed": len(failed),
        "requests_over_sla": len(over),
        # the part a controller can change: over-SLA requests the degrading region served (the rest is the
        # shared machine's noise and the benign spike, the same in every mode)
        "requests_over_sla_failing_region": sum(1 for r in over if r["region"] == region),
        "lost_pct": round(100.0 * len(failed) / sent, 3) if sent else None,
        "failed_before_failure": len(failed) - len(after),
        "failed_after_failure": len(after),
        "keepalive_requests": len(ka),
        "keepalive_failed": sum(1 for r in ka if r["server"] is None),
        "share_in_failing_region_at_failure": round(w_fail[region] / total, 4) if total else None,
        "lead_s": round(t_fail - first_shift, 2) if first_shift is not None and first_shift < t_fail else None,
        "time_to_detect_s": rel(detect),
        # negative: already true before the failure (a lead)
        "time_to_no_new_requests_s": rel(no_new),
        "time_to_evict_s": rel(evict),
        # ESTABLISHED conntrack entries pinned to the region: entries of connections that died inside a
        # blackhole stay until their conntrack timeout, so this may never reach 0 within a run
        "time_to_no_connections_s": rel(empty),
        "pinned_at_failure": next((r["pinned"] for r in reversed(rows) if r["t"] <= t_fail and "pinned" in r), None),
        "benign_shift": benign_shift,
        "healthy_regions_drained_before_failure": others_moved,
        "latency_p50_ms": round(1000 * lat[len(lat) // 2], 2) if lat else None,
        "latency_p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
    }


# --- command ----------------------------------------------------------------------------------------------


def _pick(text: str, known, what: str) -> list[str]:
    picked = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in picked if m not in known]
    if bad:
        raise ValueError(f"unknown {what}(s) {', '.join(bad)}; choose from {', '.join(known)}")
    return picked


def merge_reports(parts: list[dict]) -> dict:
    """One report from several runs' reports. A scenario may come in several parts (for example static
    run later than the controller modes): its modes are combined, and a mode in several parts keeps the
    last. The timelines must be the same; the durations add up."""
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]
    for part in parts[1:]:
        if part.get("timeline") != first.get("timeline"):
            raise ValueError("the parts were run with different timelines (--quick in some only?)")
    scenarios: dict = {}
    for part in parts:
        for name, sc in part.get("scenarios", {}).items():
            if name in scenarios:
                sc = {**scenarios[name], **sc, "modes": {**scenarios[name].get("modes", {}), **sc.get("modes", {})}}
            scenarios[name] = sc
    return {**first, "scenarios": scenarios, "duration_s": round(sum(p.get("duration_s", 0.0) for p in parts), 1),
            "command": [p.get("command") for p in parts]}


def _merge(args) -> int:
    try:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        report = merge_reports(parts)
    except (OSError, ValueError) as exc:
        print(f"pfepo bench failover --merge: {exc}", file=sys.stderr)
        return 2
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_table(report["scenarios"])
    if args.workdir:
        from pfepo_lab.bench._failover_plot import plot

        names = [n for n in SCENARIOS if n in report["scenarios"]]
        modes = [m for m in MODES if any(m in report["scenarios"][n]["modes"] for n in names)]
        tl = {k: v for k, v in report["timeline"].items() if k in Scenario.__dataclass_fields__}
        plot(Path(args.workdir), names, modes, Scenario(**tl), out.with_suffix(".png"))
        print(f"plot: {out.with_suffix('.png')}")
    print(f"JSON: {out}")
    return 0


def _main(args) -> int:
    if args.merge:
        return _merge(args)
    from mininet_topologies.lab import check_environment

    try:
        check_environment()
        modes = _pick(args.modes, MODES, "mode")
        names = _pick(args.scenarios, SCENARIOS, "scenario")
    except (RuntimeError, ValueError) as exc:
        print(f"pfepo bench failover: {exc}", file=sys.stderr)
        return 2
    sc = Scenario.quick() if args.quick else Scenario()
    out = Path(args.json)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pfepo-bench-failover-"))
    started = time.monotonic()
    print(f"bench failover: {len(names)} scenario(s) x {len(modes)} mode(s) x {sc.duration_s:.0f} s; logs in {workdir}")
    results: dict = {n: {"precursor": SCENARIOS[n][1], "failure": SCENARIOS[n][0], "modes": {}} for n in names}
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> dict:  # after every run: a later crash keeps the runs already made
        report = {"scenarios": results, "timeline": {**asdict(sc), "failure_at_s": sc.failure_at_s, "quick": args.quick},
                  "reactive_baseline": REACTIVE, "brownout_pct": BROWNOUT_PCT, "keepalive_connections": KEEPALIVE,
                  "duration_s": round(time.monotonic() - started, 1),
                  "command": "pfepo bench failover " + " ".join(sys.argv[3:])}
        out.write_text(json.dumps(report, indent=2))
        return report

    bl = BenchLab(workdir)
    try:
        bl.start()
        for m in modes:  # mode-major: the daemon's config changes least often
            for n in names:
                print(f"- {n} / {m} ...", flush=True)
                results[n]["modes"][m] = run_scenario(bl, n, m, sc, workdir / n / m)
                print_row(results[n]["modes"][m])
                save()
    finally:
        bl.stop()
    report = save()
    png = out.with_suffix(".png")
    from pfepo_lab.bench._failover_plot import plot

    plot(workdir, names, modes, sc, png)
    print_table(results)
    print(f"\nJSON: {out}\nplot: {png}\nwhole run: {report['duration_s']} s")
    return 0


KEYS = ("requests_sent", "requests_failed", "requests_over_sla", "requests_over_sla_failing_region", "keepalive_failed",
        "share_in_failing_region_at_failure", "lead_s", "time_to_detect_s", "time_to_no_new_requests_s",
        "time_to_evict_s", "time_to_no_connections_s", "benign_shift")


def print_row(r: dict) -> None:
    print("  " + ", ".join(f"{k}={r.get(k)}" for k in KEYS), flush=True)


def print_table(results: dict) -> None:
    for name, sc in results.items():
        modes = list(sc["modes"])
        print(f"\n{name} (precursor: {sc['precursor']})")
        print(f"{'':36s}" + "".join(f"{m:>12s}" for m in modes))
        for k in KEYS:
            print(f"{k:36s}" + "".join(f"{str(sc['modes'][m].get(k)):>12s}" for m in modes))
