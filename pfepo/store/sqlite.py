"""Embedded default history store: SQLite in WAL mode.

Chosen over DuckDB (see docs/history-store.md for the measurement) because the daemon, the CLI and the
tests can open the same file at once; DuckDB allows a single process per file.

A database file deleted or replaced under the daemon would otherwise go unnoticed: SQLite keeps writing
to the unlinked inode, the API keeps showing data, and everything is gone at the next restart. Every
write and read first compares the path's (device, inode) with the open file's; on a mismatch the store
reports it (``stats()``: ``replaced``, ``last_problem``; /metrics and /api/v1/health show them) and
opens a new file at the path.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pfepo.store.base import tags_str_cached, tags_to_str
from pfepo.store.sql import SqlHistory
from pfepo.telemetry.rates import PORT_METRICS
from pfepo.telemetry.samples import Sample, SampleBatch

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    ts REAL NOT NULL, subject TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, tags TEXT
);
CREATE INDEX IF NOT EXISTS samples_subject_metric_ts ON samples(subject, metric, ts);
CREATE INDEX IF NOT EXISTS samples_subject_ts ON samples(subject, ts);
CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts);
"""

# Port rates arrive 48 ports x 7 metrics per switch reply: one wide row per port costs a seventh of the
# inserts and index entries of long rows (docs/scale.md has the measurement). Reads see both through a view.
_WIDE_COLS = ", ".join(PORT_METRICS)
_WIDE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS port_rates (ts REAL NOT NULL, subject TEXT NOT NULL, tags TEXT, {_WIDE_COLS});
CREATE INDEX IF NOT EXISTS port_rates_subject_ts ON port_rates(subject, ts);
CREATE INDEX IF NOT EXISTS port_rates_ts ON port_rates(ts);
CREATE VIEW IF NOT EXISTS all_samples AS SELECT ts, subject, metric, value, tags FROM samples
""" + "".join(f"\n  UNION ALL SELECT ts, subject, '{m}', {m}, tags FROM port_rates" for m in PORT_METRICS) + ";"


class SQLiteStore(SqlHistory):
    """HistoryStore on one SQLite file; one connection guarded by a lock (writes are batched)."""

    _source = "all_samples"

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
        self.replaced = 0
        self.write_errors = 0
        self.last_problem: str | None = None
        self.last_problem_at: float | None = None
        self._identity: tuple[int, int] | None = None
        self._connect()

    def _connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.executescript(_WIDE_SCHEMA)
        self._identity = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        if self.path == ":memory:":
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def _check_file(self) -> None:
        """Reopen at the path when the file was deleted or replaced (lock held)."""
        if self.path == ":memory:":
            return
        now = self._stat()
        if now == self._identity and now is not None:
            return
        what = "deleted" if now is None else "replaced"
        self.replaced += 1
        self.last_problem = f"history file {self.path} was {what} while open; a new one was created"
        self.last_problem_at = time.time()
        log.error("%s (history before this point is not in the new file)", self.last_problem)
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self._connect()

    def write(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        rows = [(s.ts, s.subject, s.metric, s.value, tags_to_str(s.tags)) for s in samples]
        with self._lock:
            self._check_file()
            try:
                with self._db:
                    self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", rows)
            except sqlite3.Error:
                self.write_errors += 1
                raise

    def _rows(self, sql: str, args: list) -> list[tuple]:
        with self._lock:
            self._check_file()
        return super()._rows(sql, args)

    def stats(self) -> dict:
        """Counters for /metrics and /api/v1/health."""
        return {"replaced": self.replaced, "write_errors": self.write_errors,
                "last_problem": self.last_problem, "last_problem_at": self.last_problem_at}

    def write_batches(self, batches: Sequence[SampleBatch]) -> None:
        """Columnar batches: port rates as wide rows (one per port), anything else as long rows."""
        wide: list[tuple] = []
        long: list[tuple] = []
        for b in batches:
            if b.metrics == PORT_METRICS:
                ts = b.ts
                wide.extend((ts, subj, tags_str_cached(tags), *row)
                            for subj, tags, row in zip(b.subjects, b.tags, b.values.tolist(), strict=True))
            else:
                long.extend((s.ts, s.subject, s.metric, s.value, tags_to_str(s.tags)) for s in b.samples())
        if not wide and not long:
            return
        marks = ", ".join("?" * (3 + len(PORT_METRICS)))
        with self._lock:
            self._check_file()
            try:
                with self._db:
                    if wide:
                        self._db.executemany(f"INSERT INTO port_rates VALUES ({marks})", wide)
                    if long:
                        self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", long)
            except sqlite3.Error:
                self.write_errors += 1
                raise
