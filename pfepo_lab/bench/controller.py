"""``pfepo bench controller``: the daemon against N fake OpenFlow 1.3 switches (control-plane scale).

Per N: the real daemon (``pfepo run``, a separate process: its CPU is its own) with a generated config
-- one client-side switch whose three uplinks lead to three region switches, N-4 more switches, 48
ports each, SQLite history in a temp dir, the shipped policies and model -- and N asyncio fake switches
(pfepo_lab/bench/_fakeswitches.py) on loopback that answer every poll and loop probes back instantly. After
a warm-up, a steady window measures what the switches see (poll intervals), what the daemon stores
(history rows), its CPU/RSS, REST latency, and weight changes although nothing failed. Then failover
trials: PortStatus down on an uplink, timed until the GroupMod setting that bucket to 0 arrives at
the switch; then up again (and, if the planner holds the region drained, an operator override resets
the split, so every trial starts from the same state).

``--src LABEL=DIR`` (repeatable) runs the daemon from another source tree (e.g. ``git archive`` of an
old commit), interleaved per N with the others, so old and new code are measured side by side under
the same machine load.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from pfepo_lab.bench._fakeswitches import Fabric, intervals

PORT_METRICS = ("rx_bps", "tx_bps", "rx_pps", "tx_pps", "drops_ps", "errors_ps", "utilization_pct")
CLIENT_DPID = 1
REGIONS = ("eu", "us", "ap")
BASE_WEIGHTS = {"eu": 50, "us": 30, "ap": 20}
RESET_WEIGHTS = ({"eu": 50, "us": 30, "ap": 20}, {"eu": 52, "us": 30, "ap": 18})
REPO = Path(__file__).resolve().parents[2]
TRIAL_TIMEOUT_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def make_config(n: int, ports: int, interval: float, tmp: Path, src: Path, of_port: int, rest_port: int) -> dict:
    """N switches: c0 (clients, dpid 1) with uplinks 1-3 to region switches r1-r3 (port 1 back), rest plain."""
    if n < 4:
        raise ValueError("--switches: at least 4 (one client-side switch and three region switches)")
    switches = [{"name": "c0", "dpid": CLIENT_DPID}]
    switches += [{"name": f"r{i}", "dpid": 0x10 + i} for i in range(1, 4)]
    switches += [{"name": f"s{i}", "dpid": 0x1000 + i} for i in range(n - 4)]
    regions = []
    for i, name in enumerate(REGIONS, start=1):
        regions.append({
            "name": name, "switch": f"r{i}", "uplink": {"switch": "c0", "port": i, "capacity_mbps": 1000},
            "endpoints": [{"name": f"{name}-{k}", "ip": f"10.0.{i}.{k}", "mac": f"00:00:00:00:0{i}:0{k}",
                           "port": 1 + k} for k in (1, 2)],
        })
    return {
        "openflow": {"listen_host": "127.0.0.1", "listen_port": of_port},
        "rest": {"host": "127.0.0.1", "port": rest_port},
        "poll_interval_s": interval,
        "state_dir": str(tmp / "state"),
        "history": {"backend": "sqlite", "path": str(tmp / "history.sqlite")},
        "policy": {"paths": [str(src / "policies")], "interval_s": 1.0},
        "predict": {"enabled": True, "horizon_s": 300, "step_s": 10, "model_path": "shipped"},
        "switches": switches,
        "regions": regions,
        "services": [{"name": "web", "vip": "10.0.100.1", "vip_mac": "02:00:00:00:00:64", "port": 80,
                      "weights": dict(BASE_WEIGHTS), "priority": "high",
                      "sla": {"latency_ms": 200, "availability_pct": 99.9, "weight": 2.0}}],
    }


def build_fabric(n: int, ports: int) -> Fabric:
    fab = Fabric()
    fab.add(CLIENT_DPID, ports)
    for i in range(1, 4):
        fab.add(0x10 + i, ports)
        fab.link((CLIENT_DPID, i), (0x10 + i, 1))
    for i in range(n - 4):
        fab.add(0x1000 + i, ports)
    return fab


class Daemon:
    """``pfepo run`` in its own process group; stopped by its PID."""

    def __init__(self, cfg_path: Path, tmp: Path, src: Path | None):
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        if src is not None:
            env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
        self.log_path = tmp / "daemon.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from pfepo.cli import main; sys.exit(main())",
             "run", "--config", str(cfg_path), "--log-level", "WARNING"],
            cwd=tmp, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def stored_port_samples(db: Path, start: float, end: float) -> int:
    """Port-rate samples in history with start <= ts < end (long rows, or wide rows x 7 if present)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        q = ",".join("?" * len(PORT_METRICS))
        n = con.execute(f"SELECT COUNT(*) FROM samples WHERE ts >= ? AND ts < ? AND metric IN ({q})",
                        (start, end, *PORT_METRICS)).fetchone()[0]
        has_wide = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'port_rates'").fetchone()
        if has_wide:
            n += len(PORT_METRICS) * con.execute("SELECT COUNT(*) FROM port_rates WHERE ts >= ? AND ts < ?",
                                                 (start, end)).fetchone()[0]
        return n
    finally:
        con.close()


def other_samples(db: Path, start: float, end: float) -> int:
    """Samples in the window that are not port rates (probes, risk, weights)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        q = ",".join("?" * len(PORT_METRICS))
        return con.execute(f"SELECT COUNT(*) FROM samples WHERE ts >= ? AND ts < ? AND metric NOT IN ({q})",
                           (start, end, *PORT_METRICS)).fetchone()[0]
    finally:
        con.close()


def probe_latency_ms(db: Path, start: float, end: float) -> list[float]:
    """Uplink probe latencies the daemon stored in the window (the fake links add none: ideal is ~0)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return [r[0] for r in con.execute("SELECT value FROM samples WHERE metric = 'latency_ms' AND subject LIKE "
                                          "'uplink:%' AND ts >= ? AND ts < ?", (start, end))]
    finally:
        con.close()


def profile_summary(raw: Path, top: int = 25) -> list[str]:
    """py-spy raw (collapsed) stacks -> the functions holding the GIL most, inclusive share %."""
    import collections
    import re

    incl: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        seen = set()
        for f in stack.split(";"):
            key = re.sub(r":\d+\)", ")", f)
            if key.startswith("thread (") or key in seen:
                continue
            seen.add(key)
            incl[key] += int(n)
    return [f"{100 * v / total:5.1f}% {k}" for k, v in incl.most_common(top)] if total else []


def handler_maxima(text: str) -> dict[str, tuple[float, float]]:
    """event type -> (longest recent handling s wall, CPU), from ``pfepo_openflow_handler_seconds_max``."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        if line.startswith("pfepo_openflow_handler_seconds_max{"):
            labels, _, value = line.partition("} ")
            fields = dict(kv.split("=", 1) for kv in labels.split("{", 1)[1].split(","))
            pair = out.setdefault(fields["event"].strip('"'), [0.0, 0.0])
            pair[fields["clock"].strip('"') == "cpu"] = float(value)
    return {k: (w, c) for k, (w, c) in out.items()}


def metric_value(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + labels + " ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _wait(cond, timeout: float, step: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await cond():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


async def run_point(n: int, ports: int, interval: float, window: float, warmup: float, trials: int,
                    label: str, src: Path | None, keep: bool = False, profile: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"pfepo-bench-ctl-{n}-"))
    of_port, rest_port = free_port(), free_port()
    cfg = make_config(n, ports, interval, tmp, src or REPO, of_port, rest_port)
    token = None
    if "class ApiToken" in ((src or REPO) / "pfepo" / "config.py").read_text():  # REST behind bearer tokens
        import secrets

        token = secrets.token_hex(24)
        cfg["rest"]["tokens"] = [{"name": "bench", "role": "admin", "token": token}]
    cfg_path = tmp / "pfepo.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    daemon = Daemon(cfg_path, tmp, src)
    base = f"http://127.0.0.1:{rest_port}"
    fab = build_fabric(n, ports)
    client = httpx.AsyncClient(base_url=base, timeout=10.0,
                               headers={"Authorization": f"Bearer {token}"} if token else {})
    point: dict = {"label": label, "switches": n, "ports": ports, "interval_s": interval, "window_s": window}

    async def call(method: str, path: str, **kw) -> httpx.Response:
        """One retry on a transport error: uvicorn may close an idle keep-alive connection as we reuse it."""
        try:
            return await client.request(method, path, **kw)
        except httpx.TransportError:
            return await client.request(method, path, **kw)

    try:
        async def rest_up():
            if daemon.proc.poll() is not None:
                raise RuntimeError(f"daemon exited ({daemon.proc.returncode}); see {daemon.log_path}")
            try:
                return (await client.get("/api/v1/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await _wait(rest_up, 90, what="the daemon's REST API")
        await fab.connect_all("127.0.0.1", of_port)
        c0 = fab.switches[CLIENT_DPID]

        async def ready():
            if daemon.proc.poll() is not None:
                raise RuntimeError(f"daemon exited; see {daemon.log_path}")
            return all(c0.bucket_weight(p) for p in (1, 2, 3)) and all(s.stats_replies >= 2 for s in fab.switches.values())

        await _wait(ready, 60 + n * 0.2, what="groups on c0 and two polls of every switch")
        await asyncio.sleep(warmup)

        # --- steady window ----------------------------------------------------------------------
        m0 = (await call("GET", "/metrics")).text
        cpu0, t0, wall0 = daemon.cpu_s(), time.perf_counter(), time.time()
        rest_lat: list[float] = []
        rest_errors: list[str] = []
        spy = None
        if profile:  # who holds the GIL during the window (py-spy samples the daemon; --nonblocking: the daemon is never paused)
            import shutil

            exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            spy = subprocess.Popen([exe, "record", "-p", str(daemon.proc.pid), "-d", str(int(window)), "-r", "50", "--nonblocking",
                                    "--gil", "-f", "raw", "-o", str(tmp / "profile.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        async def rest_probe():
            paths = ("/api/v1/health", "/api/v1/services", "/api/v1/regions")
            i = 0
            while time.perf_counter() - t0 < window:
                a = time.perf_counter()
                try:
                    r = await client.get(paths[i % len(paths)])
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    rest_lat.append(time.perf_counter() - a)
                else:
                    rest_errors.append(paths[i % len(paths)])
                i += 1
                await asyncio.sleep(0.1)

        await rest_probe()
        await asyncio.sleep(max(0.0, window - (time.perf_counter() - t0)))
        t1, wall1, cpu1 = time.perf_counter(), time.time(), daemon.cpu_s()
        m1 = (await call("GET", "/metrics")).text
        if spy is not None:
            try:
                spy.wait(30)
                point["profile_top"] = profile_summary(tmp / "profile.txt")
            except (subprocess.TimeoutExpired, OSError) as exc:
                point["profile_top"] = [f"py-spy failed: {exc}"]
                spy.kill()
        # backpressure as the daemon reports it at the window's end (absent in older code: 0)
        point["poll_stretch"] = metric_value(m1, "pfepo_poll_stretch")
        point["wake_lag_p90_ms"] = round(1000 * metric_value(m1, "pfepo_wake_lag_p90_seconds"), 1)
        point["gc_pause_max_ms"] = round(1000 * max(metric_value(m1, "pfepo_gc_pause_max_seconds",
                                                                 f'{{generation="{g}"}}') for g in "012"), 1)
        # the history writer setting the poll pace (polls deferred rather than samples dropped; absent: 0)
        point["gc_frozen_objects"] = int(metric_value(m1, "pfepo_gc_frozen_objects"))
        point["history_bound"] = bool(metric_value(m1, "pfepo_poll_history_bound"))
        point["polls_held_for_history"] = int(metric_value(m1, "pfepo_poll_held_for_history_total")
                                              - metric_value(m0, "pfepo_poll_held_for_history_total"))
        point["cpu_pct"] = round(100 * (cpu1 - cpu0) / (t1 - t0), 1)
        point["rss_mb"] = round(daemon.status("VmRSS") / 1024, 1)
        point["threads"] = daemon.status("Threads")

        gaps = [g for s in fab.switches.values() for g in intervals(s.poll_times, t0, t1)]
        requests = sum(sum(1 for t in s.poll_times if t0 <= t < t1) for s in fab.switches.values())
        point["poll_interval_p50_s"] = round(pct(gaps, 0.5) or 0, 3)
        point["poll_interval_p99_s"] = round(pct(gaps, 0.99) or 0, 3)
        produced = requests * ports * len(PORT_METRICS)
        db = tmp / "history.sqlite"
        # Stored = what the history writer wrote during the window (its own counter, as a rate: under
        # overload it writes rows produced earlier, and the queue in between is bounded). By timestamp,
        # once the writer had a few seconds to catch up, for comparison.
        written = metric_value(m1, "pfepo_history_samples", '{kind="written"}') - metric_value(
            m0, "pfepo_history_samples", '{kind="written"}')
        await asyncio.sleep(3)
        point["samples_stored_by_ts"] = stored_port_samples(db, wall0, wall1)
        stored = max(0, round(written - other_samples(db, wall0, wall1)))  # less probe/risk/weight rows
        expected = n * ports * len(PORT_METRICS) * (t1 - t0) / interval
        point["samples_produced"] = produced
        point["samples_stored"] = stored
        # Dropped: what the daemon itself gave up (its writer's drop counter over the window). Produced but
        # not stored in the window (replies still queued, or never handled) is ``samples_unstored``; it
        # also holds +-1 writer batch of counting noise at the window's edges.
        point["writer_dropped"] = int(metric_value(m1, "pfepo_history_samples", '{kind="dropped"}')
                                      - metric_value(m0, "pfepo_history_samples", '{kind="dropped"}'))
        point["samples_dropped"] = point["writer_dropped"]
        point["samples_unstored"] = max(0, produced - stored)
        lats = probe_latency_ms(db, wall0, wall1)
        point["probe_latency_p50_ms"] = round(pct(lats, 0.5), 2) if lats else None
        point["probe_latency_max_ms"] = round(max(lats), 2) if lats else None
        point["polls_kept"] = round(min(1.0, stored / expected), 3) if expected else 0.0
        point["stored_per_s"] = round(stored / (t1 - t0))
        point["produced_per_s"] = round(produced / (t1 - t0))
        changes, last_w = 0, {}
        for ev in c0.group_events[:]:
            prev = last_w.get(ev.group_id)
            last_w[ev.group_id] = ev.weights
            if ev.ts >= t0 and ev.ts < t1 and prev is not None and prev != ev.weights:
                changes += 1
        point["weight_changes_without_failure"] = changes
        try:
            evs = (await call("GET", "/api/v1/events", params={"limit": 1000})).json()
            evs = evs.get("events", evs) if isinstance(evs, dict) else evs
            changed = [e for e in evs if e.get("kind") == "weight_change" and wall0 <= e.get("ts", 0) < wall1]
            point["weight_change_events"] = len(changed)
            point["weight_change_reasons"] = sorted({str(e.get("reason", ""))[:200] for e in changed})[:5]
        except Exception:
            point["weight_change_events"] = None
        point["rest_p50_ms"] = round(1000 * (pct(rest_lat, 0.5) or 0), 1)
        point["rest_p99_ms"] = round(1000 * (pct(rest_lat, 0.99) or 0), 1)
        point["rest_requests"] = len(rest_lat) + len(rest_errors)
        point["rest_errors"] = len(rest_errors)

        # --- failover trials --------------------------------------------------------------------
        lat_ms, timeouts, resets = [], 0, 0

        async def restore(p: int) -> bool:
            """Give port p's bucket its weight back with an operator split; True once the switch has it."""
            nonlocal resets
            resets += 1
            await call("PUT", "/api/v1/services/web/weights", json={"weights": RESET_WEIGHTS[resets % 2]})
            try:
                await asyncio.wait_for(c0.wait_group(lambda ev: ev.weights.get(p, 0) > 0), 5)
            except TimeoutError:
                return False
            return True

        deadline = time.monotonic() + max(60.0, trials * 4.0)
        for i in range(trials):
            if time.monotonic() > deadline:
                break
            port = 1 + i % 3
            if not c0.bucket_weight(port) and not await restore(port):
                continue
            fut = c0.wait_group(lambda ev, p=port: ev.weights.get(p) == 0)
            a = time.perf_counter()
            c0.port_status(port, up=False)
            try:
                ev = await asyncio.wait_for(fut, TRIAL_TIMEOUT_S)
                lat_ms.append(1000 * (ev.ts - a))
            except TimeoutError:
                timeouts += 1
            up = c0.wait_group(lambda ev, p=port: ev.weights.get(p, 0) > 0)
            c0.port_status(port, up=True)
            try:
                await asyncio.wait_for(up, 1.5)
            except TimeoutError:
                await restore(port)
            await asyncio.sleep(random.uniform(0.1, 0.4))  # not phase-locked with the poll loop
        point["failover_trials"] = len(lat_ms) + timeouts
        point["failover_timeouts"] = timeouts
        point["failover_resets"] = resets
        # A trial with no zeroing GroupMod within TRIAL_TIMEOUT_S counts as that long: p50/p99 are then
        # lower bounds, flagged, never a better figure than what happened.
        all_ms = lat_ms + [1000 * TRIAL_TIMEOUT_S] * timeouts
        point["failover_p50_ms"] = round(pct(all_ms, 0.5), 2) if all_ms else None
        point["failover_p99_ms"] = round(pct(all_ms, 0.99), 2) if all_ms else None
        point["failover_max_ms"] = round(max(all_ms), 2) if all_ms else None
        point["failover_is_lower_bound"] = timeouts > 0
        # the daemon's own part (absent in older code): socket -> handler, handler -> GroupMods sent
        try:
            m2 = (await call("GET", "/metrics")).text
            for stage in ("queued", "handled", "read"):
                for stat in ("p50", "max"):
                    point[f"daemon_port_status_{stage}_{stat}_ms"] = round(1000 * metric_value(
                        m2, "pfepo_port_status_seconds", f'{{stage="{stage}",stat="{stat}"}}'), 2)
            # what held the daemon's threads up during the window and the trials (absent in older code: 0)
            point["gc_pause_max_ms_end"] = round(1000 * max(metric_value(m2, "pfepo_gc_pause_max_seconds",
                                                                         f'{{generation="{g}"}}') for g in "012"), 1)
            point["gc_pause_max_ms_by_generation"] = [round(1000 * metric_value(
                m2, "pfepo_gc_pause_max_seconds", f'{{generation="{g}"}}'), 1) for g in "012"]
            point["io_round_max_ms"] = {c: round(1000 * metric_value(m2, "pfepo_openflow_io_round_seconds_max",
                                                                     f'{{clock="{c}"}}'), 1) for c in ("wall", "cpu")}
            took = handler_maxima(m2)  # event -> (wall, cpu)
            point["event_handler_max_ms"] = {k: [round(1000 * v, 1) for v in wc] for k, wc in
                                             sorted(took.items(), key=lambda kv: -kv[1][0])[:4]}
        except httpx.HTTPError:
            pass
        point["load_avg_1m"] = os.getloadavg()[0]
        return point
    except Exception as exc:
        point["error"] = f"{type(exc).__name__}: {exc}"
        keep = True
        return point
    finally:
        await client.aclose()
        await fab.close()
        daemon.stop()
        if keep:
            point["tmp"] = str(tmp)
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def plot(points: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("polls_kept", "polls kept (fraction)"), ("cpu_pct", "daemon CPU %"),
              ("stored_per_s", "history samples stored /s"), ("failover_p99_ms", "failover p99 ms (log)"),
              ("rest_p99_ms", "REST p99 ms"), ("weight_changes_without_failure", "weight changes, no failure")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    labels = list(dict.fromkeys(p["label"] for p in points))
    for ax, (key, title) in zip(axes.flat, panels, strict=False):
        for i, lab in enumerate(labels):
            color = f"C{i}"  # one colour per source tree in every panel
            pts = [p for p in points if p["label"] == lab and p.get(key) is not None and "error" not in p]
            ys = [p[key] for p in pts]
            ax.plot([p["switches"] for p in pts], ys, marker="o", label=lab, color=color)
            if key == "stored_per_s":
                ax.plot([p["switches"] for p in pts], [p["produced_per_s"] for p in pts], ls="--", lw=0.8,
                        label=f"{lab} produced", color=color)
        ax.set_title(title)
        ax.set_xlabel("switches")
        if key == "failover_p99_ms":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


async def _run_all(args) -> list[dict]:
    sizes = [int(x) for x in str(args.switches).split(",") if x.strip()]
    srcs: list[tuple[str, Path | None]] = []
    for s in args.src or []:
        label, _, path = s.partition("=")
        srcs.append((label, Path(path).resolve()))
    if not srcs:
        srcs = [("current", None)]
    points = []
    for n in sizes:
        for label, src in srcs:
            print(f"[{time.strftime('%H:%M:%S')}] {label}: {n} switches ...", file=sys.stderr, flush=True)
            p = await run_point(n, args.ports, args.interval, args.window, args.warmup, args.trials, label, src,
                                keep=args.keep, profile=args.profile)
            print(json.dumps(p), file=sys.stderr, flush=True)
            points.append(p)
    return points


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt  # so a SIGTERM runs the finally blocks: the daemon is stopped by its PID


def _handler(args) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    points = asyncio.run(_run_all(args))
    out = {"points": points, "command": " ".join(sys.argv), "cpus": os.cpu_count(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    cols = ("label", "switches", "polls_kept", "poll_interval_p99_s", "cpu_pct", "rss_mb", "stored_per_s",
            "produced_per_s", "samples_dropped", "failover_p50_ms", "failover_p99_ms",
            "weight_changes_without_failure", "rest_p99_ms", "load_avg_1m")
    print(" | ".join(cols))
    for p in points:
        print(" | ".join(str(p.get(c, p.get("error", ""))) for c in cols))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
        png = Path(args.png) if args.png else Path(args.json).with_suffix(".png")
        plot(points, png)
        print(f"wrote {args.json} and {png}")
    return 1 if any("error" in p for p in points) else 0


def register(sub) -> None:
    p = sub.add_parser(
        "controller",
        help="control-plane scale: the daemon against N fake OpenFlow switches (polls, CPU, history, failover)",
        description="Runs `pfepo run` as a separate process against N asyncio fake OpenFlow 1.3 switches on "
        "loopback, one point per N: steady window (poll intervals, CPU, RSS, history stored vs produced, REST "
        "p99, weight changes with no failure), then PortStatus->GroupMod failover trials.",
    )
    p.add_argument("--switches", default="10,50,100", help="comma-separated switch counts (each >= 4)")
    p.add_argument("--ports", type=int, default=48, help="ports per switch (default 48)")
    p.add_argument("--interval", type=float, default=1.0, help="daemon poll interval s (default 1)")
    p.add_argument("--window", type=float, default=20.0, help="steady window s (default 20)")
    p.add_argument("--warmup", type=float, default=5.0, help="s after every switch was polled twice")
    p.add_argument("--trials", type=int, default=20, help="failover trials per point (default 20)")
    p.add_argument("--src", action="append", metavar="LABEL=DIR",
                   help="run the daemon from source tree DIR (repeatable; default: this code, label 'current')")
    p.add_argument("--json", metavar="OUT", help="write the points as JSON to OUT and a PNG next to it")
    p.add_argument("--png", metavar="PNG", help="PNG path (default: OUT with .png)")
    p.add_argument("--profile", action="store_true",
                   help="sample the daemon with py-spy (pip install py-spy) during the window: GIL holders")
    p.add_argument("--keep", action="store_true", help="keep each point's temp dir (config, daemon log, history)")
    p.set_defaults(func=_handler)
