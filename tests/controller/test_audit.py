"""Audit log: JSON lines on disk, bounded ring in memory, queries by time/service/kind, thread-safe."""

from __future__ import annotations

import json
import math
import os
import threading

from pfepo.controller.audit import AuditLog


def test_append_writes_json_lines_and_queries(tmp_path):
    path = tmp_path / "audit" / "audit.jsonl"
    with AuditLog(path) as log:
        log.append("decision", {"ts": 1.0, "service": "web", "region": "eu", "risk": math.nan})
        log.append("weight_change", {"ts": 2.0, "service": "web", "region": "eu", "from": 21, "to": 16,
                                     "reason": "shift away"})
        log.append("weight_change", {"ts": 3.0, "service": "pay", "region": "us", "from": 5, "to": 9})
        assert [r["ts"] for r in log.query()] == [1.0, 2.0, 3.0]
        assert [r["ts"] for r in log.query(since=2.0)] == [2.0, 3.0]
        assert [r["ts"] for r in log.query(service="web", kind="weight_change")] == [2.0]
        assert [r["ts"] for r in log.query(limit=2)] == [2.0, 3.0]  # newest, oldest first
        assert log.query(limit=0) == []
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 3 and lines[0]["risk"] is None and lines[1]["reason"] == "shift away"
    assert lines[0]["kind"] == "decision"


def test_ring_is_bounded_and_file_serves_older_queries(tmp_path):
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, ring_size=10)
    for i in range(50):
        log.append("event", {"ts": float(i), "service": "web"})
    assert len(log.query(limit=1000)) == 10  # ring only
    older = log.query(since=5.0, limit=1000)  # before the ring's oldest: read from the file
    assert [r["ts"] for r in older] == [float(i) for i in range(5, 50)]
    log.close()
    # Restart: the ring is refilled from the file's tail, a torn line is skipped.
    with open(path, "a") as fh:
        fh.write('{"ts": 99, "kind": "ev')
    again = AuditLog(path, ring_size=10)
    assert [r["ts"] for r in again.query(limit=3)] == [47.0, 48.0, 49.0]
    again.close()


def test_memory_only_and_plan_helpers():
    class D:
        def __init__(self, level):
            self.level = level

        def to_dict(self):
            return {"ts": 1.0, "level": self.level, "service": "web"}

    class P:
        changes = [{"ts": 1.0, "kind": "weight_change", "service": "web"}]
        events = [{"ts": 1.0, "kind": "transition", "service": "web"}]
        actions = [{"ts": 1.0, "type": "allocate_bandwidth", "service": "web"}]

    log = AuditLog(None)
    assert log.log_decisions([D("ok"), D("warn"), D("act")]) == 2
    assert log.log_plan(P()) == 3
    assert [r["kind"] for r in log.query()] == ["decision", "decision", "weight_change", "transition", "action"]


def test_concurrent_appends_keep_every_line_whole(tmp_path):
    path = tmp_path / "c.jsonl"
    log = AuditLog(path, ring_size=100_000)

    def worker(n):
        for i in range(500):
            log.append("event", {"ts": float(i), "service": f"s{n}", "payload": "x" * 200})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2000 and all(json.loads(x)["payload"] == "x" * 200 for x in lines)
    assert len(log.query(service="s3", limit=10_000)) == 500


def test_repeated_decisions_are_thinned_but_changes_logged():
    class D:
        def __init__(self, ts, level, fired=("loss_pct",)):
            self.rec = {"ts": ts, "level": level, "policy": "p", "service": "web", "endpoint": "eu-1",
                        "region": "eu", "criteria": [{"metric": m, "fired": True} for m in fired]}

        def to_dict(self):
            return dict(self.rec)

    log = AuditLog(None)
    written = [log.log_decisions([D(t, "act")], repeat_after_s=60) for t in range(0, 130, 10)]
    assert written == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]  # t = 0, 60, 120
    assert log.log_decisions([D(130, "act", ("loss_pct", "latency_ms"))], repeat_after_s=60) == 1  # changed
    assert log.log_decisions([D(140, "ok")], repeat_after_s=60) == 0
    assert log.log_decisions([D(150, "act", ("loss_pct", "latency_ms"))], repeat_after_s=60) == 1  # back
    assert [r["ts"] for r in log.query(region="eu", kind="decision")] == [0, 60, 120, 130, 150]


def test_rotation_by_size_keeps_n_files_and_queries_across_them(tmp_path):
    path = tmp_path / "r.jsonl"
    log = AuditLog(path, ring_size=50, max_bytes=20_000, keep=3)
    for i in range(2000):
        log.append("event", {"ts": float(i), "service": "web", "pad": "x" * 40})
    assert log.flush()
    rotated = log.rotated_files()
    assert [p.name for p in rotated] == ["r.jsonl.1", "r.jsonl.2", "r.jsonl.3"]
    assert all(p.stat().st_size <= 20_000 + 200 for p in [path, *rotated])
    assert log.stats()["rotations"] > 3 and log.stats()["written"] == 2000
    on_disk = [r["ts"] for r in log._scan_file()]
    assert on_disk == sorted(on_disk) and on_disk[-1] == 1999.0  # oldest files deleted, order kept
    got = log.query(since=on_disk[0], limit=10_000)
    assert [r["ts"] for r in got] == on_disk  # older than the ring: read from every kept file
    assert [r["ts"] for r in log.query(since=0, limit=3)] == [1997.0, 1998.0, 1999.0]
    log.close()


def test_rotation_by_age(tmp_path):
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, max_age_s=10)
    log.append("event", {"ts": 100.0})
    log.append("event", {"ts": 105.0})
    log.flush()
    log.append("event", {"ts": 111.0})  # the file's first record is 11 s old: rotate first
    log.close()
    assert [json.loads(x)["ts"] for x in (tmp_path / "a.jsonl.1").read_text().splitlines()] == [100.0, 105.0]
    assert [json.loads(x)["ts"] for x in path.read_text().splitlines()] == [111.0]


def test_old_queries_do_not_rescan_everything(tmp_path):
    """since=0 with a small limit reads the tail only: far cheaper than a full scan of the files."""
    import time

    path = tmp_path / "big.jsonl"
    log = AuditLog(path, ring_size=100, max_bytes=2_000_000, keep=8)
    for i in range(60_000):
        log.append("event", {"ts": float(i), "service": "web", "pad": "y" * 100})
    assert log.flush(30)
    t0 = time.perf_counter()
    full = sum(1 for _ in log._scan_file())
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = log.query(since=0, limit=200)
    t_query = time.perf_counter() - t0
    assert full > 20_000 and len(got) == 200 and got[-1]["ts"] == 59_999.0
    assert t_query < t_full / 10, (t_query, t_full)
    log.close()


def test_writes_never_block_append_and_failures_are_counted(tmp_path):
    """A write error (here: the folder replaced by a file, so the reopen fails) keeps records queued."""
    path = tmp_path / "d" / "f.jsonl"
    log = AuditLog(path)
    log.append("event", {"ts": 1.0})
    assert log.flush()
    os.close(log._fd)  # simulate the descriptor going bad under the writer
    log._fd = None
    import shutil

    shutil.rmtree(tmp_path / "d")
    (tmp_path / "d").write_text("not a folder")
    for i in range(5):
        log.append("event", {"ts": 2.0 + i})
    assert not log.flush(0.5)
    st = log.stats()
    assert st["pending"] == 5 and st["write_failures"] >= 1 and st["last_error"]
    (tmp_path / "d").unlink()
    (tmp_path / "d").mkdir()
    assert log.flush(10)
    assert log.stats()["last_error"] is None and log.stats()["lost"] == 0
    log.close()
    assert [json.loads(x)["ts"] for x in path.read_text().splitlines()] == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_file_scan_has_a_byte_budget(tmp_path):
    log = AuditLog(tmp_path / "b.jsonl", ring_size=10)
    for i in range(3000):
        log.append("event", {"ts": float(i), "pad": "p" * 100})
    records, complete = log.query_page(since=0, kind="never", limit=10, max_scan_bytes=50_000)
    assert records == [] and not complete
    records, complete = log.query_page(since=0, kind="event", limit=5, max_scan_bytes=50_000)
    assert [r["ts"] for r in records] == [2995.0, 2996.0, 2997.0, 2998.0, 2999.0] and complete
    log.close()
