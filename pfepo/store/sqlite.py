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
from pfepo.store.base import tags_to_str
from pfepo.store.sql import SqlHistory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    ts REAL NOT NULL, subject TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, tags TEXT
);
CREATE INDEX IF NOT EXISTS samples_subject_metric_ts ON samples(subject, metric, ts);
CREATE INDEX IF NOT EXISTS samples_subject_ts ON samples(subject, ts);
CREATE INDEX IF NOT EXISTS samples_ts ON samples(ts);
"""


class SQLiteStore(SqlHistory):
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
