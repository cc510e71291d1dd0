"""Embedded history store on DuckDB (columnar; fast scans and aggregates, one process per file).

Batches go in as one ``INSERT ... SELECT`` from a registered DataFrame: DuckDB is ~1000x slower when
fed row by row. See docs/history-store.md for how it compares with SQLiteStore (the default).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from pfepo.samples import Sample
from pfepo.store.base import str_to_tags, tags_to_str

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    ts DOUBLE NOT NULL, subject VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE NOT NULL, tags VARCHAR
);
"""
_COLS = "ts, subject, metric, value, tags"


class DuckDBStore:
    """HistoryStore on one DuckDB file; one connection guarded by a lock (writes are batched)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = duckdb.connect(self.path)
        self._db.execute(_SCHEMA)

    def write(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        df = pd.DataFrame(
            {
                "ts": [s.ts for s in samples],
                "subject": [s.subject for s in samples],
                "metric": [s.metric for s in samples],
                "value": [float(s.value) for s in samples],
                "tags": [tags_to_str(s.tags) for s in samples],
            }
        )
        with self._lock:
            self._db.register("_batch", df)
            try:
                self._db.execute(f"INSERT INTO samples SELECT {_COLS} FROM _batch")
            finally:
                self._db.unregister("_batch")

    def range(self, subject=None, metric=None, start=None, end=None, limit=None) -> list[Sample]:
        where, args = [], []
        for col, op, val in (
            ("subject", "=", subject),
            ("metric", "=", metric),
            ("ts", ">=", start),
            ("ts", "<", end),
        ):
            if val is not None:
                where.append(f"{col} {op} ?")
                args.append(val)
        sql = f"SELECT {_COLS} FROM samples"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts, subject, metric"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return self._query(sql, args)

    def last(self, subject: str, metric: str | None = None, n: int = 100) -> list[Sample]:
        sql = f"SELECT {_COLS} FROM samples WHERE subject = ?"
        args: list = [subject]
        if metric is not None:
            sql += " AND metric = ?"
            args.append(metric)
        sql += " ORDER BY ts DESC, metric DESC LIMIT ?"
        args.append(int(n))
        return list(reversed(self._query(sql, args)))

    def subjects(self) -> list[str]:
        with self._lock:
            return [
                r[0]
                for r in self._db.execute("SELECT DISTINCT subject FROM samples ORDER BY subject").fetchall()
            ]

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
