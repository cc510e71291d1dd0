"""Embedded default history store: SQLite in WAL mode.

Chosen over DuckDB (see docs/history-store.md for the measurement) because the daemon, the CLI and the
tests can open the same file at once; DuckDB allows a single process per file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from pfepo.samples import Sample, SampleBatch
from pfepo.store.base import tags_str_cached, tags_to_str
from pfepo.store.sql import SqlHistory
from pfepo.telemetry.rates import PORT_METRICS

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
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.executescript(_WIDE_SCHEMA)

    def write(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        rows = [(s.ts, s.subject, s.metric, s.value, tags_to_str(s.tags)) for s in samples]
        with self._lock, self._db:
            self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", rows)

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
        with self._lock, self._db:
            if wide:
                self._db.executemany(f"INSERT INTO port_rates VALUES ({marks})", wide)
            if long:
                self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)", long)
