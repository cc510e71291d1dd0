"""Embedded default history store: SQLite in WAL mode.

Chosen over DuckDB (see docs/history-store.md for the measurement) because the daemon, the CLI and the
tests can open the same file at once; DuckDB allows a single process per file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from pfepo.samples import Sample
from pfepo.store.base import str_to_tags, tags_to_str

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    ts REAL NOT NULL, subject TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, tags TEXT
);
CREATE INDEX IF NOT EXISTS samples_subject_metric_ts ON samples(subject, metric, ts);
CREATE INDEX IF NOT EXISTS samples_subject_ts ON samples(subject, ts);
CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts);
"""


class SQLiteStore:
    """HistoryStore on one SQLite file; one connection guarded by a lock (writes are batched)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def write(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        rows = [(s.ts, s.subject, s.metric, s.value, tags_to_str(s.tags)) for s in samples]
        with self._lock, self._db:
            self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", rows)

    def range(self, subject=None, metric=None, start=None, end=None, limit=None) -> list[Sample]:
        where, args = [], []
        for col, op, val in (("subject", "=", subject), ("metric", "=", metric), ("ts", ">=", start), ("ts", "<", end)):
            if val is not None:
                where.append(f"{col} {op} ?")
                args.append(val)
        sql = "SELECT ts, subject, metric, value, tags FROM samples"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return self._query(sql, args)

    def last(self, subject: str, metric: str | None = None, n: int = 100) -> list[Sample]:
        sql = "SELECT ts, subject, metric, value, tags FROM samples WHERE subject = ?"
        args: list = [subject]
        if metric is not None:
            sql += " AND metric = ?"
            args.append(metric)
        sql += " ORDER BY ts DESC LIMIT ?"
        args.append(int(n))
        return list(reversed(self._query(sql, args)))

    def subjects(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT subject FROM samples ORDER BY subject")]

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, args: list) -> list[Sample]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Sample(ts, subj, met, val, str_to_tags(tags)) for ts, subj, met, val, tags in rows]
