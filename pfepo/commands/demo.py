"""``pfepo demo``: PF-EPO's story on a real (Mininet + userspace OVS) three-region network.

1. Builds the topology (clients, a core switch, three regions with two HTTP servers each, a relay on
   every uplink, a monitor interface for health checks), starts the daemon as a separate process and
   drives HTTP load at the service VIP: short requests plus long-lived keep-alive connections.
2. Predictive run, with a live view (weights, measured shares, probe latency, predicted failure
   probability, events as they happen): the operator changes the weights once through the REST API
   (keep-alive connections stay where they are: connection affinity); region ap has a short benign
   latency spike (must not move traffic); region eu degrades (latency ramps up, loss joins) and then
   fails GRAY: its link stays up while the relay drops every packet (a blackhole), the failure that
   OVS liveness never sees and that reactive failover pays for in lost requests.
3. The same scenario in reactive mode (1 s health checks, probes, thresholds on observed values,
   immediate full move and eviction).
4. A side-by-side table and a PNG of shares and errors over time.
With ``--screenshot PATH``, a headless system Chromium logged in to the console captures the overview
during the predictive run, when the failing region's weight first drops (traffic has moved).
Needs root and Open vSwitch (``make demo`` sets both up).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from pfepo.commands._lab import lab_command


def register(sub) -> None:
    p = sub.add_parser("demo", help="predictive vs reactive failover on a Mininet network, live (root)",
                       description=__doc__)
    p.add_argument("--workdir", help="keep logs, configs, history and results here (default: a temp dir)")
    p.add_argument("--json", metavar="OUT", help="write the results JSON here (default: WORKDIR/demo.json)")
    p.add_argument("--screenshot", metavar="PNG",
                   help="capture the console overview here when the predictive run first moves traffic away from "
                        "the failing region (headless Debian chromium + chromium-driver, Selenium; nothing "
                        "downloads)")
    p.set_defaults(func=_demo)


class OverviewShot:
    """The console's overview captured once, at the moment traffic moves: a headless Chromium logs in with
    the lab's token at the start of the run, then a PNG is saved when the planner first gives ``region``
    less than its nominal weight and the page shows it (and, if they follow within 5 s, the switches'
    applied shares). Runs in its own thread, so the live view keeps its pace; a failure only loses the PNG."""

    def __init__(self, path: Path, region: str, within_s: float):
        self.path, self.region, self.within_s = path, region, within_s
        self.thread: threading.Thread | None = None
        self.outcome = "not started"

    def start(self, lab) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, args=(lab,), daemon=True, name="overview-shot")
            self.thread.start()

    def join(self, timeout_s: float = 30.0) -> str:
        if self.thread is not None:
            self.thread.join(timeout_s)
        return self.outcome

    def _drained(self, lab) -> bool:
        plan = (lab.api.get("/api/v1/decisions").json().get("plan") or {})
        s = ((plan.get("states") or {}).get("web") or {}).get(self.region) or {}
        return s.get("weight") is not None and s.get("nominal") is not None and s["weight"] < s["nominal"]

    def _run(self, lab) -> None:
        from pfepo.console import headless

        deadline = time.monotonic() + self.within_s
        try:
            drv = headless.chromium(1280, 1000)
        except Exception as exc:  # noqa: BLE001 - no browser: the demo goes on without the PNG
            self.outcome = f"no screenshot: the browser did not start ({exc})"
            return
        try:
            headless.login(drv, f"http://127.0.0.1:{lab.rest_port}", lab.api_token, timeout_s=60)
            self.outcome = "no screenshot: traffic never moved away from " + self.region
            while time.monotonic() < deadline and not self._drained(lab):
                time.sleep(0.25)
            if time.monotonic() >= deadline:
                return
            t_moved = time.monotonic()
            nominal = lab.api.get("/api/v1/decisions").json()["plan"]["states"]["web"][self.region]["nominal"]
            shown = ("const e = document.getElementById('wanted-web'); if (!e) return null; "
                     "const kv = Object.fromEntries((e.dataset.weights || '').split(',').filter(Boolean)"
                     ".map(x => x.split(':'))); const v = kv[arguments[0]]; "
                     "return v === undefined ? null : Number(v);")

            def page_drained(d) -> bool:
                w = d.execute_script(shown, self.region)
                return w is not None and w < nominal

            headless.wait(drv, page_drained, 10, "the overview to show the drain")
            in_sync = ("const w = document.getElementById('wanted-web'); const a = document.querySelectorAll("
                       "'[id^=\"applied-web-\"]'); return !!w && a.length > 0 && "
                       "[...a].every(x => x.dataset.weights === w.dataset.weights);")
            try:
                headless.wait(drv, lambda d: d.execute_script(in_sync), 5, "the switches to apply the shares")
            except Exception:  # noqa: BLE001 - the wanted shares alone still show the move
                pass
            headless.full_page(drv, self.path)
            self.outcome = (f"console overview captured {time.monotonic() - t_moved:.1f} s after {self.region} "
                            f"was first drained: {self.path}")
        except Exception as exc:  # noqa: BLE001 - the demo must never fail for its screenshot
            self.outcome = f"no screenshot: {type(exc).__name__}: {exc}"
        finally:
            drv.quit()


class LiveView:
    """Prints a line every 2 s and each new controller event; the same view (and the same operator
    override) in both runs, so both pay the same monitoring load."""

    def __init__(self, override_at_s: float = 3.0, shot: OverviewShot | None = None):
        self.shot = shot
        self.offset = 0
        self.seen_events: int | None = None  # events before the first tick (switch start-up) are not news
        self.override_at_s = override_at_s
        self.overridden = False

    def __call__(self, t: float, lab, reqlog: Path) -> None:
        if self.shot is not None:
            self.shot.start(lab)  # first tick: the run's daemon is up
        if not self.overridden and t >= self.override_at_s:
            self.overridden = True
            weights = {"eu": 50, "us": 25, "ap": 25}
            r = lab.set_weights(weights)
            print(f"  >>> operator: PUT /api/v1/services/web/weights {weights} -> HTTP {r.status_code}")
        counts = {r: 0 for r in lab.spec.regions}
        failed = 0
        if reqlog.exists():
            with reqlog.open() as f:
                f.seek(self.offset)
                chunk = f.read()
            cut = chunk.rfind("\n") + 1
            self.offset += len(chunk[:cut].encode())
            for line in chunk[:cut].splitlines():
                rec = json.loads(line)
                if rec["server"] is None:
                    failed += 1
                else:
                    counts[rec["server"].rsplit("-", 1)[0]] += 1
        total = sum(counts.values()) or 1
        svc = lab.service()
        w = svc["bucket_weights"]
        preds = lab.api.get("/api/v1/predictions").json().get("predictions", {})
        latest = {}
        for reg in lab.spec.regions:
            got = lab.api.get("/api/v1/samples", params={"subject": f"uplink:{reg}", "metric": "latency_ms",
                                                         "limit": 1}).json()["samples"]
            latest[reg] = got[-1]["value"] if got else float("nan")
        cells = []
        for reg in lab.spec.regions:
            p = max((v["probability"] for ep, v in preds.items() if ep.startswith(reg + "-")), default=0.0)
            cells.append(f"{reg} w={w.get(reg, 0):2d} share={100 * counts[reg] / total:5.1f}% "
                         f"lat={latest[reg]:6.1f}ms P={p:4.2f}")
        print(f"  t={t:5.1f}s | " + " | ".join(cells) + f" | errors={failed}", flush=True)
        events = lab.api.get("/api/v1/events", params={"limit": 1000}).json()["events"]
        if self.seen_events is None:
            self.seen_events = len(events)
        for ev in events[self.seen_events:]:
            if ev["kind"] in ("weight_change", "weight_override") or (ev["kind"] == "port_status" and not ev["up"]):
                what = {k: v for k, v in ev.items() if k not in ("ts", "kind")}
                reason = str(what.pop("reason", ""))[:110]
                print(f"      event {ev['kind']}: {what} {reason}", flush=True)
        self.seen_events = len(events)


@lab_command("demo")
def _demo(args) -> int:
    from mininet_topologies.lab import check_environment
    from pfepo_lab.bench._failover_plot import plot
    from pfepo_lab.bench.failover import BenchLab, Scenario, print_table, run_scenario

    try:
        check_environment()
    except RuntimeError as exc:
        print(f"pfepo demo: {exc}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pfepo-demo-"))
    sc = Scenario.demo()
    name = "degrade_blackhole"
    started = time.monotonic()
    print(f"PF-EPO demo (workdir {workdir})")
    print(f"Scenario ({sc.duration_s:.0f} s per run): steady HTTP load on VIP 10.0.100.1:80 from 2 clients plus "
          f"10 keep-alive connections; t={sc.benign_at_s:.0f}s benign {sc.benign_ms:.0f} ms spike on ap for "
          f"{sc.benign_s:.0f} s; t={sc.warmup_s:.0f}s eu latency ramps to {sc.ramp_ms:.0f} ms (loss joins at the "
          f"end); t={sc.failure_at_s:.0f}s eu fails GRAY: the link stays up, every packet is dropped.")
    bl = BenchLab(workdir)
    results: dict = {}
    try:
        bl.start()
        print(f"console: http://127.0.0.1:{bl.lab.rest_port}/ui (token: rest.tokens in {bl.lab.config_path})")
        print("\n== predictive run (live): w = bucket weight of 64, share = requests answered since the last line,"
              " lat = probe one-way latency, P = predicted failure probability ==")
        shot = OverviewShot(Path(args.screenshot).resolve(), sc.degrade_region, sc.duration_s) \
            if args.screenshot else None
        results["predictive"] = run_scenario(bl, name, "predictive", sc, workdir / name / "predictive",
                                             live=LiveView(shot=shot))
        if shot is not None:
            print(f"screenshot: {shot.join()}", flush=True)
        print("\n== reactive run (same scenario and view; health checks every 1 s, thresholds on observed values,"
              " immediate full move) ==", flush=True)
        results["reactive"] = run_scenario(bl, name, "reactive", sc, workdir / name / "reactive", live=LiveView())
    finally:
        bl.stop()
    modes = ["predictive", "reactive"]
    png = workdir / "demo.png"
    plot(workdir, [name], modes, sc, png)
    print_table({name: {"precursor": True, "modes": results}})
    out = Path(args.json or workdir / "demo.json")
    out.write_text(json.dumps({"scenario": sc.__dict__, "name": name, "modes": results,
                               "duration_s": round(time.monotonic() - started, 1)}, indent=2))
    p, r = results["predictive"], results["reactive"]
    print(f"\npredictive moved traffic {p['lead_s']} s before the blackhole (reactive: {r['lead_s']} s); "
          f"share left in eu when it failed: {p['share_in_failing_region_at_failure']} vs "
          f"{r['share_in_failing_region_at_failure']}; failed requests {p['requests_failed']} vs "
          f"{r['requests_failed']}; requests over the 200 ms SLA: {p['requests_over_sla']} vs "
          f"{r['requests_over_sla']}.")
    print(f"plot: {png}\nresults: {out}\ndemo finished in {time.monotonic() - started:.0f} s")
    return 0
