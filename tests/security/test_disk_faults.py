"""Disk faults on real file systems the test mounts and removes: a full tmpfs, a frozen ext4 loop
device (fsfreeze), a deleted history database. Needs root (mount, losetup, fsfreeze); no OVS."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from mininet_topologies.multiregion import TopoSpec
from tests.security.conftest import bearer, serve
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount")

SIG = "signals-token-0123456789abcdef"


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "4m"):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"pfepo-test-{uuid.uuid4().hex[:6]}", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def ext4_loop(path: Path, workdir: Path, mb: int = 16):
    image = workdir / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(mb * 1_048_576)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    dev = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                         text=True).stdout.strip()
    path.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", dev, str(path)], check=True)
        try:
            yield path
        finally:
            subprocess.run(["fsfreeze", "-u", str(path)], check=False, capture_output=True)
            subprocess.run(["umount", "-l", str(path)], check=False)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def _cfg(root: Path) -> dict:
    cfg = TopoSpec(weights={"eu": 50, "us": 30, "ap": 20}).config(
        rest_port=0, state_dir=str(root / "state"), history_path=str(root / "h.sqlite"))
    cfg["signals"] = {"token": SIG}
    return cfg


def _fill(root: Path) -> Path:
    filler = root / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _push(c: httpx.Client, n: int, value: float) -> httpx.Response:
    now = time.time()
    items = [{"endpoint": "eu-1", "metric": "cpu_pct", "value": value, "timestamp": now - i * 0.001} for i in range(n)]
    return c.post("/api/v1/signals", json=items, headers={"Authorization": f"Bearer {SIG}"})


def test_disk_full_answers_truthfully(tmp_path):
    with tmpfs(tmp_path / "fs") as root, serve(_cfg(root), policies=True) as (rt, url), \
            httpx.Client(base_url=url, timeout=10, headers=bearer("operate")) as c:
        assert c.put("/api/v1/services/web/weights", json={"weights": {"eu": 2, "us": 1, "ap": 1}}).status_code == 200
        assert _push(c, 5, 1.0).json()["stored"] is True
        filler = _fill(root)
        # signals: stored (and readable), or the answer says they were not
        r = _push(c, 200, 77.0)
        stored = [s for s in rt.store.range(subject="eu-1", metric="cpu_pct") if s.value == 77.0]
        if r.status_code == 200:
            assert r.json()["stored"] is True and len(stored) == 200
        else:
            assert r.status_code == 503 and r.json()["stored"] is False and not stored
        # a weight change that cannot be saved: 503 with the reason, never 500
        r = c.put("/api/v1/services/web/weights", json={"weights": {"eu": 1, "us": 1, "ap": 1}})
        assert r.status_code == 503 and "not saved, nothing changed" in r.text
        # audit records are queued and counted, not lost
        for i in range(10):
            rt.audit.append("fault_test", {"i": i, "pad": "z" * 5000})  # > a page each (tmpfs)
        assert not rt.audit.flush(0.5)
        health = c.get("/api/v1/health").json()["storage"]["audit"]
        assert health["pending"] >= 10 and health["write_failures"] >= 1 and health["last_error"]
        filler.unlink()
        assert rt.audit.flush(10)
        written = [line for line in (root / "state" / "audit.jsonl").read_text().splitlines() if "fault_test" in line]
        assert len(written) == 10 and rt.audit.stats()["lost"] == 0


def test_disk_full_override_changes_nothing(tmp_path):
    with tmpfs(tmp_path / "fs") as root, serve(_cfg(root), policies=True) as (rt, url), \
            httpx.Client(base_url=url, timeout=10, headers=bearer("operate")) as c:
        assert c.put("/api/v1/services/web/weights", json={"weights": {"eu": 2, "us": 1, "ap": 1}}).status_code == 200
        before = (dict(rt.state.baseline["web"]), rt.state.baseline_version)
        _fill(root)
        assert c.put("/api/v1/services/web/weights", json={"weights": {"eu": 1, "us": 1, "ap": 1}}).status_code == 503
        assert c.put("/api/v1/services/web/bandwidth", json={"bandwidth_mbps": {"eu": 5}}).status_code == 503
        assert (dict(rt.state.baseline["web"]), rt.state.baseline_version) == before
        assert rt.state.bandwidth["web"]["eu"] is None


def test_deleted_database_is_detected_and_recreated(tmp_path):
    with serve(_cfg(tmp_path)) as (rt, url), httpx.Client(base_url=url, timeout=10, headers=bearer("read")) as c:
        assert _push(c, 3, 1.0).json()["stored"] is True
        db = tmp_path / "h.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        assert _push(c, 2, 2.0).json()["stored"] is True
        assert db.exists()
        hist = c.get("/api/v1/health").json()["storage"]["history"]
        assert hist["replaced"] == 1 and "deleted" in hist["last_problem"]
        assert 'pfepo_history_backend{kind="replaced"} 1.0' in c.get("/metrics").text
        got = c.get("/api/v1/samples", params={"subject": "eu-1", "metric": "cpu_pct"}).json()["samples"]
        assert [s["value"] for s in got] == [2.0, 2.0]  # the API shows what the new file holds, not ghosts


def test_replaced_database_is_detected(tmp_path):
    import sqlite3

    with serve(_cfg(tmp_path)) as (rt, url), httpx.Client(base_url=url, timeout=10, headers=bearer("read")) as c:
        assert _push(c, 3, 1.0).json()["stored"] is True
        db = tmp_path / "h.sqlite"
        other = tmp_path / "other.sqlite"
        sqlite3.connect(other).close()
        os.replace(other, db)
        assert c.get("/api/v1/samples", params={"subject": "eu-1"}).status_code == 200
        assert rt.store.stats()["replaced"] == 1 and "replaced" in rt.store.stats()["last_problem"]


@pytest.mark.skipif(not shutil.which("fsfreeze") or not shutil.which("losetup"), reason="fsfreeze/losetup missing")
def test_frozen_disk_does_not_freeze_the_api(tmp_path):
    with ext4_loop(tmp_path / "mnt", tmp_path) as root, serve(_cfg(root), policies=True) as (rt, url), \
            httpx.Client(base_url=url, timeout=10, headers=bearer("operate")) as c:
        assert c.put("/api/v1/services/web/weights", json={"weights": {"eu": 2, "us": 1, "ap": 1}}).status_code == 200
        subprocess.run(["fsfreeze", "-f", str(root)], check=True)
        try:
            t0 = time.monotonic()
            rt.audit.append("frozen_test", {})  # the decision loop's audit writes must not block
            assert time.monotonic() - t0 < 0.1
            results: list = []
            put = threading.Thread(target=lambda: results.append(
                c.put("/api/v1/services/web/weights", json={"weights": {"eu": 1, "us": 1, "ap": 1}})), daemon=True)
            put.start()
            # the PUT holds the save lock while it waits for the frozen disk
            wait_until(rt.state._save_lock.locked, 5, "the PUT blocked in its write")
            t0 = time.monotonic()
            h = c.get("/api/v1/health", timeout=3)
            assert h.status_code == 200 and time.monotonic() - t0 < 2.0
        finally:
            subprocess.run(["fsfreeze", "-u", str(root)], check=True)
        put.join(15)
        assert results and results[0].status_code == 200
        assert rt.audit.flush(10)
        assert "frozen_test" in (root / "state" / "audit.jsonl").read_text()
