"""Figures quoted in docs/security.md: a 100 MB unauthenticated PUT, an alias bomb in a hot reload,
config/policy mutants, audit queries on a large rotated log.

Run from the repository root: ``.venv/bin/python benchmarks/security_probe.py`` (about a minute; writes
only under a temporary folder).
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mininet_topologies.multiregion import TopoSpec  # noqa: E402
from pfepo.config import load_config  # noqa: E402
from pfepo.controller.audit import AuditLog  # noqa: E402
from pfepo.policy.loader import load_policies  # noqa: E402
from pfepo.policy.reload import PolicyReloader  # noqa: E402
from pfepo.yamlconf import ConfigError  # noqa: E402
from tests.security.conftest import serve  # noqa: E402
from tests.security.test_yaml_mutation import BOMB, _mutants  # noqa: E402


def _rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def big_body(tmp: Path) -> None:
    cfg = TopoSpec().config(rest_port=0, state_dir=str(tmp / "s"), history_path=str(tmp / "h.sqlite"))
    with serve(cfg) as (_rt, url):
        host, port = url.split("//")[1].split(":")
        r0 = _rss_mb()
        with socket.create_connection((host, int(port))) as s:
            s.settimeout(5)
            t0 = time.perf_counter()
            s.sendall(b"PUT /api/v1/services/web/weights HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: 104857600\r\n\r\n")
            sent, chunk = 0, b"x" * 1_048_576
            try:
                while sent < 104_857_600:
                    s.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            status = s.recv(200).split(b"\r\n")[0].decode()
            took = time.perf_counter() - t0
    print(f"100 MB unauthenticated PUT: {status} after {took * 1000:.0f} ms; {sent / 1e6:.0f} MB sent before the "
          f"server closed; server RSS {_rss_mb() - r0:+.1f} MB")


def yaml_probes(tmp: Path) -> None:
    cfg = load_config(REPO / "configs" / "pfepo.yaml")
    d = tmp / "pol"
    d.mkdir()
    (d / "default.yaml").write_text((REPO / "policies" / "default.yaml").read_text())
    r = PolicyReloader([d], lambda: cfg)
    r.reload()
    (d / "zz.yaml").write_text(BOMB)
    m0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    ok = r.reload()
    took = time.perf_counter() - t0
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - m0) / 1024
    print(f"alias bomb hot reload: rejected={not ok} in {took * 1000:.1f} ms, max RSS +{grew:.1f} MB: {r.last_error[0]}")
    for name, src, load in (("config", (REPO / "configs" / "pfepo.yaml").read_text(), load_config),
                            ("policy", (REPO / "policies" / "default.yaml").read_text(),
                             lambda f: load_policies([f], cfg))):
        counts = {"loaded": 0, "located error": 0, "other": 0}
        worst = 0.0
        for seed in range(2):
            for i, text in enumerate(_mutants(src, 150, seed)):
                f = tmp / f"{name}{seed}-{i}.yaml"
                f.write_text(text)
                t0 = time.perf_counter()
                try:
                    load(f)
                    counts["loaded"] += 1
                except ConfigError:
                    counts["located error"] += 1
                except Exception:  # noqa: BLE001 - counted: this is what the probe looks for
                    counts["other"] += 1
                worst = max(worst, time.perf_counter() - t0)
        print(f"{name} mutants (300): {counts}, slowest {worst * 1000:.0f} ms")


def audit_queries(tmp: Path) -> None:
    path = tmp / "audit" / "audit.jsonl"
    log = AuditLog(path, ring_size=10_000, max_bytes=16 * 1_048_576, keep=8)
    for i in range(400_000):
        log.append("decision", {"ts": float(i), "service": "web", "region": "eu", "reason": "x" * 300})
    log.flush(300)
    files = list(path.parent.iterdir())
    size = sum(f.stat().st_size for f in files)
    t0 = time.perf_counter()
    n = sum(1 for _ in log._scan_file())
    full = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = log.query(since=0, limit=200)
    tail = time.perf_counter() - t0
    t0 = time.perf_counter()
    _none, complete = log.query_page(since=0, kind="nope", limit=200)
    miss = time.perf_counter() - t0
    log.close()
    print(f"audit: {len(files)} files, {size / 1e6:.1f} MB, {n} records; full scan {full:.2f} s; "
          f"query(since=0, limit=200) {tail * 1000:.1f} ms ({len(got)} records); "
          f"no-match filter {miss:.2f} s (complete={complete})")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        big_body(Path(d))
        yaml_probes(Path(d))
        audit_queries(Path(d))
