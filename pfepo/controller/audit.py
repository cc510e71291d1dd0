"""Audit log: every decision and weight change as one JSON line, with its reasons.

Records go to an append-only JSON-lines file (the durable trail operators grep) and to a bounded
in-memory ring that serves the REST API quickly. ``query`` reads the ring, and falls back to reading
the files newest first (stopping at ``limit`` matches or at records older than ``since``) when asked
for records older than the ring still holds, so a query never rescans a whole history.

The file rotates at ``max_bytes`` or when its first record is ``max_age_s`` old (``audit.jsonl.1`` is
the newest rotated file; ``keep`` of them are kept). A write that fails (disk full, I/O error) is not
lost silently: the line stays queued and is retried on the next append, failures are counted in
``stats()`` (shown in /api/v1/health and /metrics), and only a queue overflow drops records, counted
as ``lost``. Thread-safe: the daemon loop appends while API threads query.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Records carry their own ts (decision time), so lines are only nearly in time order: a reverse scan
# stops this far past ``since``.
ORDER_SLACK_S = 600.0
_BLOCK = 65536


def _clean(v: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every line stays valid JSON."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_clean(x) for x in v]
    return v


def _reverse_lines(path: Path) -> Iterator[bytes]:
    """Lines of a file, last first, reading fixed blocks from the end."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally
    except FileNotFoundError:
        return
    try:
        fh.seek(0, os.SEEK_END)
        pos = fh.tell()
        rest = b""
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield line
        if rest:
            yield rest
    finally:
        fh.close()


def _record(line: bytes) -> dict | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None  # a torn line after a crash or a full disk must not break the API
    return rec if isinstance(rec, dict) else None


class AuditLog:
    """``append(kind, record)``; ``query(since=, service=, kind=, limit=)``, oldest first."""

    def __init__(self, path: str | Path | None = None, ring_size: int = 10_000, fsync: bool = False,
                 max_bytes: int = 16 * 1_048_576, max_age_s: float = 86400.0, keep: int = 8,
                 pending_max: int = 10_000, clock=time.time):
        self.path = Path(path) if path else None
        self.fsync = fsync
        self.max_bytes, self.max_age_s, self.keep = max_bytes, max_age_s, keep
        self.clock = clock
        self._ring: deque[dict] = deque(maxlen=ring_size)
        self._lock = threading.Lock()
        self._dropped_from_ring = False
        self._last_decision: dict[tuple, tuple] = {}
        self._pending: deque[tuple[bytes, float]] = deque()  # (line, ts) not yet on disk, oldest first
        self._pending_max = pending_max
        self._cond = threading.Condition(self._lock)
        self._stop = False
        self._fd: int | None = None
        self._size = 0
        self._first_ts: float | None = None
        self._torn = False
        self.counters = {"written": 0, "write_failures": 0, "lost": 0, "rotations": 0}
        self.last_error: str | None = None
        self._writer: threading.Thread | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            newest_first = []
            for rec in self._scan_newest_first():  # resume: the API shows history from before a restart
                if len(newest_first) == ring_size:
                    self._dropped_from_ring = True
                    break
                newest_first.append(rec)
            self._ring.extend(reversed(newest_first))
            self._open()
            # Appends never touch the disk: a full or frozen disk must not stall the decision loop.
            self._writer = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
            self._writer.start()

    # --- writing --------------------------------------------------------------------------------------
    def _open(self) -> None:
        assert self.path is not None
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._first_ts = None
        if self._size:
            with open(self.path, "rb") as fh:
                first = _record(fh.readline())
            self._first_ts = float(first.get("ts", 0) or 0) if first else None

    def append(self, kind: str, record: dict | None = None, ts: float | None = None) -> dict:
        rec = _clean({**(record or {})})
        rec["kind"] = kind
        rec["ts"] = float(rec["ts"]) if rec.get("ts") is not None else (time.time() if ts is None else ts)
        line = (json.dumps(rec, sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            if len(self._ring) == self._ring.maxlen:
                self._dropped_from_ring = True
            self._ring.append(rec)
            if self.path is not None:
                # A healthy but busy writer slows the appender down a little (backpressure); records are
                # dropped (and counted) only when the disk is failing or the writer is stuck.
                deadline = time.monotonic() + 1.0
                while (len(self._pending) >= self._pending_max and self.last_error is None
                       and time.monotonic() < deadline):
                    self._cond.wait(0.05)
                if len(self._pending) >= self._pending_max:
                    self._pending.popleft()
                    self.counters["lost"] += 1
                    if self.counters["lost"] == 1 or self.counters["lost"] % 1000 == 0:
                        log.error("audit log %s: %d record(s) lost (write queue full: %s)", self.path,
                                  self.counters["lost"], self.last_error or "writer behind")
                self._pending.append((line, rec["ts"]))
                self._cond.notify_all()
        return rec

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every appended record is on disk; False on timeout (disk full or frozen)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def _write_loop(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop and (not self._pending or backoff):
                    return
                batch = list(self._pending)
            done = self._write(batch)
            with self._cond:
                for _ in range(done):
                    self._pending.popleft()
                self._cond.notify_all()
                if done < len(batch):  # failed: retry later, sooner when new records arrive
                    backoff = min(5.0, max(0.2, backoff * 2))
                    self._cond.wait(backoff)
                else:
                    backoff = 0.0

    def _write(self, batch: list[tuple[bytes, float]]) -> int:
        """Write lines in order (writer thread only), one write per run of lines between rotations;
        returns how many lines are fully on disk."""
        done = 0
        try:
            if self._fd is None:
                self._open()
            i = 0
            while i < len(batch):
                self._maybe_rotate(batch[i][1])
                chunk = [b"\n"] if self._torn else []
                size, first, j = self._size + len(chunk), self._first_ts, i
                while j < len(batch) and (j == i or (size < self.max_bytes and not (
                        first is not None and batch[j][1] - first >= self.max_age_s))):
                    chunk.append(batch[j][0])
                    size += len(batch[j][0])
                    first = batch[j][1] if first is None else first
                    j += 1
                data = b"".join(chunk)
                n = os.write(self._fd, data)
                if n < len(data):  # cut a partial line off again, else end it so it stays one bad line
                    kept, pos = 0, len(chunk[0]) if self._torn else 0
                    for line, _ts in batch[i:j]:
                        if pos + len(line) > n:
                            break
                        pos += len(line)
                        kept += 1
                    try:
                        os.ftruncate(self._fd, self._size + pos)
                        self._size += pos
                    except OSError:
                        self._size += n
                        self._torn = True
                    else:
                        self._torn = False
                    self._count(batch[i:i + kept])
                    done += kept
                    raise OSError(errno.ENOSPC, "short write (disk full?)")
                self._size += n
                self._torn = False
                self._count(batch[i:j])
                done += j - i
                i = j
            if self.fsync:
                os.fsync(self._fd)
            if self.last_error is not None:
                log.warning("audit log %s: writing again", self.path)
            self.last_error = None
        except OSError as exc:
            self.counters["write_failures"] += 1
            if self.last_error is None:
                log.error("audit log %s: write failed, %d record(s) queued for retry: %s", self.path,
                          len(batch) - done, exc)
            self.last_error = f"{exc.strerror or exc}"
        return done

    def _count(self, lines: list[tuple[bytes, float]]) -> None:
        self.counters["written"] += len(lines)
        if lines and self._first_ts is None:
            self._first_ts = lines[0][1]

    def _maybe_rotate(self, now: float) -> None:
        if not self._size:
            return
        aged = self._first_ts is not None and now - self._first_ts >= self.max_age_s
        if self._size < self.max_bytes and not aged:
            return
        assert self.path is not None and self._fd is not None
        os.close(self._fd)
        self._fd = None
        base = str(self.path)
        oldest = Path(f"{base}.{self.keep}")
        if oldest.exists():
            oldest.unlink()
        for i in range(self.keep - 1, 0, -1):
            src = Path(f"{base}.{i}")
            if src.exists():
                os.replace(src, f"{base}.{i + 1}")
        os.replace(self.path, f"{base}.1")
        self.counters["rotations"] += 1
        self._open()

    def rotated_files(self) -> list[Path]:
        """Rotated files, newest first."""
        if self.path is None:
            return []
        out = []
        for i in range(1, self.keep + 1):
            p = Path(f"{self.path}.{i}")
            if p.exists():
                out.append(p)
        return out

    def stats(self) -> dict:
        """Write health; lock-free so /health answers even while a write is stuck on a frozen disk."""
        return {**self.counters, "pending": len(self._pending), "last_error": self.last_error}

    def log_decisions(self, decisions: Iterable[Any], levels: tuple[str, ...] = ("warn", "act"),
                      repeat_after_s: float = 0.0) -> int:
        """Decisions (objects with ``to_dict``) at the given levels; returns how many were written.

        With ``repeat_after_s`` > 0 a decision identical to the last one logged for its (service,
        endpoint) -- same level, policy and fired criteria -- is written again only after that long,
        so a region at risk for an hour does not write a line per loop tick; any change is written at once.
        """
        n = 0
        for d in decisions:
            rec = d.to_dict()
            key = (rec.get("service"), rec.get("endpoint"))
            sig = (rec.get("level"), rec.get("policy"),
                   tuple(c.get("metric") for c in rec.get("criteria", ()) if c.get("fired")))
            last = self._last_decision.get(key)
            ts = float(rec.get("ts") or 0.0)
            if rec.get("level") not in levels:
                self._last_decision.pop(key, None)
                continue
            if last is not None and last[0] == sig and ts - last[1] < repeat_after_s:
                continue
            self._last_decision[key] = (sig, ts)
            self.append("decision", rec)
            n += 1
        return n

    def log_plan(self, plan: Any) -> int:
        """A planner Plan's weight changes, state transitions/holds and action requests."""
        n = 0
        for rec in plan.changes:
            self.append(rec.get("kind", "weight_change"), rec)
            n += 1
        for rec in plan.events:
            self.append(rec.get("kind", "transition"), rec)
            n += 1
        for rec in plan.actions:
            self.append("action", rec)
            n += 1
        return n

    def query(self, since: float | None = None, service: str | None = None, kind: str | None = None,
              limit: int = 100, region: str | None = None) -> list[dict]:
        """The newest ``limit`` matching records, oldest first."""
        return self.query_page(since, service, kind, limit, region)[0]

    def query_page(self, since: float | None = None, service: str | None = None, kind: str | None = None,
                   limit: int = 100, region: str | None = None,
                   max_scan_bytes: int = 16 * 1_048_576) -> tuple[list[dict], bool]:
        """``query`` plus whether the answer is complete: a file scan stops after ``max_scan_bytes``
        (so a filter that matches nothing cannot make every request read the whole history)."""
        limit = max(0, int(limit))
        if limit == 0:
            return [], True
        with self._lock:
            ring = list(self._ring)
            partial = self._dropped_from_ring

        def ok(rec: dict) -> bool:
            return not ((since is not None and rec.get("ts", 0) < since)
                        or (service is not None and rec.get("service") != service)
                        or (kind is not None and rec.get("kind") != kind)
                        or (region is not None and rec.get("region") != region))

        older_than_ring = since is not None and bool(ring) and since < ring[0]["ts"]
        if not (partial and older_than_ring and self.path is not None):
            out: deque[dict] = deque(maxlen=limit)
            out.extend(r for r in ring if ok(r))
            return list(out), True
        self.flush(1.0)  # what the ring holds should be in the files too
        found: list[dict] = []
        complete = True
        scanned = 0
        # Lines are written with json.dumps' default separators, so an exact field is a byte substring:
        # lines without it are skipped unparsed.
        needles = [f'"{k}": {json.dumps(v)}'.encode() for k, v in
                   (("kind", kind), ("service", service), ("region", region)) if v is not None]
        for size, rec in self._scan_newest_first(with_size=True, needles=needles):
            scanned += size
            if scanned > max_scan_bytes:
                complete = False
                break
            if not rec:
                continue
            ts = rec.get("ts", 0)
            if since is not None and isinstance(ts, int | float) and ts < since - ORDER_SLACK_S:
                break
            if ok(rec):
                found.append(rec)
                if len(found) == limit:
                    break
        found.reverse()
        return found, complete

    def _scan_newest_first(self, with_size: bool = False, needles: list[bytes] | None = None) -> Iterator:
        """Records newest first across the current and rotated files (``(bytes, record)`` with_size);
        lines lacking one of ``needles`` yield ``(bytes, {})`` (counted, not parsed)."""
        assert self.path is not None
        for p in [self.path, *self.rotated_files()]:
            for line in _reverse_lines(p):
                if needles and not all(n in line for n in needles):
                    if with_size:
                        yield len(line) + 1, {}
                    continue
                rec = _record(line)
                if rec is not None:
                    yield (len(line) + 1, rec) if with_size else rec

    def _scan_file(self) -> Iterator[dict]:
        """Every record, oldest first (rotated files first): for tools and tests, not the API."""
        assert self.path is not None
        for p in [*reversed(self.rotated_files()), self.path]:
            try:
                with open(p, "rb") as fh:
                    for line in fh:
                        rec = _record(line)
                        if rec is not None:
                            yield rec
            except FileNotFoundError:
                continue

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to ``timeout``), then stop the writer and close the file."""
        if self._writer is not None:
            if not self.flush(timeout):
                log.error("audit log %s: %d record(s) not written at close: %s", self.path, len(self._pending),
                          self.last_error)
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            self._writer.join(timeout)
            if self._writer.is_alive():
                return  # stuck in a write (frozen disk): the daemon thread keeps the descriptor
            self._writer = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
