"""Bounded on-disk FIFO of write payloads, in front of a remote history server.

Every batch is appended here and a sender removes it only after the server acknowledged it, so a
server outage (or a daemon restart during one) loses nothing until the bound is reached; then the
configured policy drops the oldest or the newest batches and counts every dropped sample.
SQLite (WAL, synchronous=NORMAL) gives atomic appends and deletes without hand-written file recovery.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, nbytes INTEGER NOT NULL, data BLOB NOT NULL
);
"""


class Spool:
    """FIFO of (payload, sample count) batches with a byte bound.

    ``append`` never waits on anything but the local file. The head batches being sent (``peek``) are
    never dropped by the oldest-first policy, so a sample is either delivered or counted as dropped.
    """

    def __init__(self, path: str | Path, max_bytes: int, drop: Literal["oldest", "newest"] = "oldest"):
        if drop not in ("oldest", "newest"):
            raise ValueError(f"drop policy must be oldest or newest, not {drop!r}")
        self.path = str(path)
        self.max_bytes = int(max_bytes)
        self.drop = drop
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        n, nbytes, batches = self._db.execute(
            "SELECT COALESCE(SUM(n), 0), COALESCE(SUM(nbytes), 0), COUNT(*) FROM spool"
        ).fetchone()
        self.pending = int(n)  # samples not yet acknowledged
        self.bytes = int(nbytes)  # payload bytes held
        self.batches = int(batches)
        self.dropped = 0  # samples dropped by the policy
        self._inflight = 0  # highest id handed out by peek() and not yet acked
        if self.pending:
            log.info("spool %s holds %d samples from a previous run; they will be replayed", self.path, n)

    def append(self, payload: bytes, n: int) -> bool:
        """Queue one batch; False if the policy dropped it (newest) or it alone exceeds the bound."""
        size = len(payload)
        with self._lock:
            if size > self.max_bytes:
                self._count_drop(n, "batch larger than the whole spool")
                return False
            if self.bytes + size > self.max_bytes:
                if self.drop == "newest":
                    self._count_drop(n, "spool full, policy newest")
                    return False
                self._drop_oldest(self.bytes + size - self.max_bytes)
                if self.bytes + size > self.max_bytes:  # only in-flight batches left to drop
                    self._count_drop(n, "spool full of in-flight batches")
                    return False
            self._db.execute("INSERT INTO spool (n, nbytes, data) VALUES (?, ?, ?)", (n, size, payload))
            self.pending += n
            self.bytes += size
            self.batches += 1
            return True

    def peek(self, max_bytes: int = 4 << 20) -> tuple[int, list[bytes], int] | None:
        """The oldest batches up to ``max_bytes`` (at least one): (last id, payloads, samples)."""
        with self._lock:
            rows = self._db.execute("SELECT id, n, nbytes, data FROM spool ORDER BY id LIMIT 1000").fetchall()
            if not rows:
                return None
            out, total, n, last = [], 0, 0, 0
            for rid, rn, rbytes, data in rows:
                if out and total + rbytes > max_bytes:
                    break
                out.append(bytes(data))
                total += rbytes
                n += rn
                last = rid
            self._inflight = last
            return last, out, n

    def ack(self, last_id: int) -> None:
        """Remove every batch up to ``last_id`` (delivered, or rejected for good by the server)."""
        with self._lock:
            n, nbytes, cnt = self._db.execute(
                "SELECT COALESCE(SUM(n), 0), COALESCE(SUM(nbytes), 0), COUNT(*) FROM spool WHERE id <= ?",
                (last_id,),
            ).fetchone()
            self._db.execute("DELETE FROM spool WHERE id <= ?", (last_id,))
            self.pending -= n
            self.bytes -= nbytes
            self.batches -= cnt
            self._inflight = 0

    def release(self) -> None:
        """The peeked batches were not delivered; they stay at the head."""
        with self._lock:
            self._inflight = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _drop_oldest(self, need: int) -> None:
        freed = 0
        rows = self._db.execute(
            "SELECT id, n, nbytes FROM spool WHERE id > ? ORDER BY id", (self._inflight,)
        ).fetchall()
        upto, n = None, 0
        for rid, rn, rbytes in rows:
            if freed >= need:
                break
            freed += rbytes
            n += rn
            upto = rid
        if upto is None:
            return
        cnt = self._db.execute("DELETE FROM spool WHERE id > ? AND id <= ?", (self._inflight, upto)).rowcount
        self.pending -= n
        self.bytes -= freed
        self.batches -= cnt
        self._count_drop(n, "spool full, policy oldest")

    def _count_drop(self, n: int, why: str) -> None:
        self.dropped += n
        log.warning(
            "history spool %s: dropped %d samples (%s); %d dropped so far", self.path, n, why, self.dropped
        )
