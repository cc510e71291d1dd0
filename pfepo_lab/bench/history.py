"""``pfepo bench history``: the same samples through InfluxDB (real influxd), SQLite and DuckDB.

Measures sustained write throughput (points/s, from the first write until the store holds, or the
server acknowledged, everything) and the two queries the daemon runs: the last N samples of one
subject and one subject/metric over the last hour. Also holds the throw-away local servers
(influxd 1.x, VictoriaMetrics) the benchmark and tests/store start: temp dir, free loopback ports,
stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from pfepo.telemetry.samples import Sample

# --- throw-away local servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _LocalServer:
    """A server process we started: stopped by its PID only, its temp dir removed on ``cleanup``."""

    exe = ""
    ready_path = "/ping"

    def __init__(self, base: str | None = None):
        if not shutil.which(self.exe):
            raise FileNotFoundError(f"{self.exe} not installed (make system installs it)")
        self.base = Path(base or tempfile.mkdtemp(prefix=f"pfepo-{self.exe}-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        log = open(self.base / "server.log", "ab")
        self.proc = subprocess.Popen(
            self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + self.ready_path, timeout=0.5).status_code < 300:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        tail = (self.base / "server.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.exe} did not become ready on {self.url}:\n{tail}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """Crash it (SIGKILL): what a power cut or OOM kill looks like to the client."""
        self.stop(signal.SIGKILL)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


class LocalInfluxd(_LocalServer):
    """Debian's influxd 1.x with data, WAL, meta, HTTP and RPC ports all private to this instance."""

    exe = "influxd"

    def __init__(self, base: str | None = None, auth: bool = False):
        super().__init__(base)
        self.rpc_port = free_port()
        self.auth = auth
        for d in ("meta", "data", "wal"):
            (self.base / d).mkdir(exist_ok=True)
        (self.base / "influxdb.conf").write_text(f"""\
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.base}/meta"
[data]
  dir = "{self.base}/data"
  wal-dir = "{self.base}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  auth-enabled = {"true" if auth else "false"}
[logging]
  level = "warn"
""")

    def argv(self) -> list[str]:
        return [shutil.which(self.exe) or self.exe, "-config", str(self.base / "influxdb.conf")]

    def query(self, q: str, db: str | None = None, auth: tuple[str, str] | None = None) -> dict:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        r = httpx.post(self.url + "/query", data=params, auth=auth, timeout=30)
        r.raise_for_status()
        return r.json()


class LocalVictoriaMetrics(_LocalServer):
    """Debian's victoria-metrics: accepts influxdb-client v2 writes on /api/v2/write."""

    exe = "victoria-metrics"
    ready_path = "/health"

    def argv(self) -> list[str]:
        return [
            shutil.which(self.exe) or self.exe,
            f"-storageDataPath={self.base / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-loggerLevel=WARN",
            "-retentionPeriod=100y",
        ]

    def export(self, match: str) -> list[dict]:
        """Raw samples of every series matching ``match`` (JSON lines of /api/v1/export), after a flush."""
        httpx.get(self.url + "/internal/force_flush", timeout=10)
        r = httpx.post(self.url + "/api/v1/export", data={"match[]": match}, timeout=30)
        r.raise_for_status()
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]


# --- the benchmark --------------------------------------------------------------------------------------

METRICS = ("latency_ms", "loss_pct", "utilization_pct", "cpu_pct", "rx_bps")


def synthetic(rows: int, endpoints: int = 50, end: float | None = None) -> list[Sample]:
    """``rows`` samples: ``endpoints`` x 5 metrics at 1 s ticks ending at ``end`` (now), time-ordered."""
    end = time.time() if end is None else end
    per_tick = endpoints * len(METRICS)
    ticks = max(1, rows // per_tick)
    t0 = end - ticks
    out = []
    for t in range(ticks):
        ts = t0 + t
        for e in range(endpoints):
            tags = (("endpoint", f"ep{e}"), ("region", f"r{e % 3}"), ("service", "web"))
            for k, m in enumerate(METRICS):
                out.append(Sample(ts, f"ep{e}", m, float((t * 7 + e * 13 + k) % 1000) / 10.0, tags))
    return out[:rows]


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def _aggregate(store, start: float) -> int:
    """Training-style read: 1-minute means of every series over the last hour, done by the engine."""
    from pfepo.store.influx import InfluxStore

    if isinstance(store, InfluxStore):
        q = f"SELECT mean(*) FROM pfepo_metric WHERE time >= {round(start * 1e9)} GROUP BY time(1m), *"
        return sum(len(s["values"]) for s in store._read().query(q))
    sql = (
        "SELECT subject, metric, CAST(floor(ts / 60) AS INTEGER), avg(value) FROM samples WHERE ts >= ? "
        "GROUP BY 1, 2, 3"
    )
    with store._lock:
        return len(store._db.execute(sql, [start]).fetchall())


def _bench_store(name: str, store, samples: list[Sample], batch: int, done, reps: int, last_n: int) -> dict:
    t = time.perf_counter()
    for i in range(0, len(samples), batch):
        store.write(samples[i : i + batch])
    submit = time.perf_counter() - t
    done()
    total = time.perf_counter() - t
    end = samples[-1].ts + 1
    last = _median_ms(lambda: store.last("ep7", None, last_n), reps)
    rng = _median_ms(lambda: store.range("ep7", "latency_ms", end - 3600, end), reps)
    wide = _median_ms(lambda: store.range(None, "latency_ms", end - 600, end), max(3, reps // 4))
    agg = _median_ms(lambda: _aggregate(store, end - 3600), max(3, reps // 4))
    got_last = len(store.last("ep7", None, last_n))
    got_range = len(store.range("ep7", "latency_ms", end - 3600, end))
    got_wide = len(store.range(None, "latency_ms", end - 600, end))
    return {
        "store": name,
        "points": len(samples),
        "write_s": round(total, 3),
        "points_per_s": round(len(samples) / total),
        "caller_s": round(submit, 3),
        f"last{last_n}_ms": last,
        "range_1h_ms": rng,
        "all_10m_ms": wide,
        "agg_1h_1m_ms": agg,
        "last_rows": got_last,
        "range_rows": got_range,
        "all_10m_rows": got_wide,
    }


_OPEN_PROBE = (
    "import sys, {mod}; c = {mod}.connect(sys.argv[1]); "
    "print(c.execute('select count(*) from samples').fetchone()[0])"
)


def second_process_can_read(kind: str, path: Path) -> bool:
    """Can another process read the file while this one has it open (CLI, REST worker, tests)?"""
    import sys

    r = subprocess.run(
        [sys.executable, "-c", _OPEN_PROBE.format(mod=kind.replace("sqlite", "sqlite3")), str(path)],
        capture_output=True,
        timeout=60,
    )
    return r.returncode == 0


def run(rows: int, batch: int = 5000, reps: int = 20, last_n: int = 600, with_vm: bool = True) -> dict:
    from pfepo.store.duckdb import DuckDBStore
    from pfepo.store.influx import InfluxStore
    from pfepo.store.influx_config import InfluxConfig
    from pfepo.store.sqlite import SQLiteStore

    samples = synthetic(rows)
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="pfepo-bench-history-"))
    try:
        for name, cls, fname in (("sqlite", SQLiteStore, "h.sqlite"), ("duckdb", DuckDBStore, "h.duckdb")):
            store = cls(tmp / fname)
            r = _bench_store(name, store, samples, batch, lambda: None, reps, last_n)
            r["second_process_reads"] = second_process_can_read(name, tmp / fname)
            store.close()
            r["file_mb"] = round(sum(p.stat().st_size for p in tmp.glob(fname + "*")) / 2**20, 1)
            results.append(r)
        if shutil.which("influxd"):
            with LocalInfluxd() as srv:
                srv.query("CREATE DATABASE pfepo")
                cfg = InfluxConfig(url=srv.url, spool_path=str(tmp / "spool-v1.sqlite"), timeout_s=30)
                store = InfluxStore(cfg)
                r = _bench_store(
                    "influxdb-1.6 (v1, line protocol)",
                    store,
                    samples,
                    batch,
                    lambda: store.flush(600),
                    reps,
                    last_n,
                )
                r.update(sent=store.sent, dropped=store.dropped)
                store.close()
                results.append(r)
        else:
            results.append({"store": "influxdb", "skipped": "influxd not installed"})
        if with_vm and shutil.which("victoria-metrics"):
            with LocalVictoriaMetrics() as vm:
                cfg = InfluxConfig(
                    api="v2",
                    url=vm.url,
                    org="pfepo",
                    bucket="pfepo",
                    read_via="none",
                    spool_path=str(tmp / "spool-v2.sqlite"),
                    timeout_s=30,
                )
                store = InfluxStore(cfg)
                t = time.perf_counter()
                for i in range(0, len(samples), batch):
                    store.write(samples[i : i + batch])
                store.flush(600)
                total = time.perf_counter() - t
                results.append(
                    {
                        "store": "victoria-metrics (v2, influxdb-client)",
                        "points": len(samples),
                        "write_s": round(total, 3),
                        "points_per_s": round(len(samples) / total),
                        "sent": store.sent,
                        "dropped": store.dropped,
                    }
                )
                store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows, "batch": batch, "query_reps": reps, "cpus": os.cpu_count(), "results": results}


def _print(report: dict) -> None:
    print(f"{report['rows']} samples, batches of {report['batch']}, query times are medians in ms")
    cols = [
        ("points/s", "points_per_s"),
        ("write s", "write_s"),
        ("caller s", "caller_s"),
        ("last600", "last600_ms"),
        ("1 subj/metric 1h", "range_1h_ms"),
        ("1 metric all 10m", "all_10m_ms"),
        ("1-min means 1h", "agg_1h_1m_ms"),
        ("file MB", "file_mb"),
        ("2nd process", "second_process_reads"),
    ]
    print(f"{'store':40s}" + "".join(f"{c:>18s}" for c, _ in cols))
    for r in report["results"]:
        if "skipped" in r:
            print(f"{r['store']:40s} skipped: {r['skipped']}")
            continue
        print(f"{r['store']:40s}" + "".join(f"{r.get(k, '-')!s:>18s}" for _, k in cols))


def _handler(args) -> int:
    if args.rows < 1000:
        print("pfepo bench history: --rows must be at least 1000")
        return 2
    if args.batch < 1:
        print("pfepo bench history: --batch must be at least 1")
        return 2
    try:
        report = run(args.rows, batch=args.batch, with_vm=not args.no_vm)
    except (OSError, RuntimeError) as e:
        print(f"pfepo bench history: {e}")
        return 1
    _print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "history",
        help="write throughput and query latency: InfluxDB (real influxd) vs embedded SQLite and DuckDB",
        description="Writes the same synthetic samples into SQLite, DuckDB, a throw-away influxd (v1 mode "
        "through the spool) and, if installed, VictoriaMetrics (v2 mode); then times last-N and range "
        "queries "
        "through the HistoryStore API and a 1-minute aggregation done by each engine. Servers run on free "
        "loopback ports in temp dirs and are stopped by PID.",
    )
    p.add_argument("--rows", type=int, default=500_000, help="samples to write (default 500000)")
    p.add_argument("--batch", type=int, default=5000, help="samples per write call (default 5000)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument("--no-vm", action="store_true", help="skip the VictoriaMetrics v2 run")
    p.set_defaults(func=_handler)
