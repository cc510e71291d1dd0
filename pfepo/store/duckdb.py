"""Embedded history store on DuckDB (columnar; fast scans and aggregates, one process per file).

Batches go in as one ``INSERT ... SELECT`` from a registered DataFrame: DuckDB is ~1000x slower when
fed row by row. See docs/history-store.md for how it compares with SQLiteStore (the default).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pfepo.store.base import tags_str_cached, tags_to_str
from pfepo.store.sql import COLS as _COLS
from pfepo.store.sql import SqlHistory
from pfepo.telemetry.samples import Sample, SampleBatch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    ts DOUBLE NOT NULL, subject VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE NOT NULL, tags VARCHAR
);
"""


class DuckDBStore(SqlHistory):
    """HistoryStore on one DuckDB file; one connection guarded by a lock (writes are batched)."""

    # DuckDB keeps no insertion order: break ties so results are stable.
    _range_order = "ts, subject, metric"
    _last_order = "ts DESC, metric DESC"

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
        self._insert(df)

    def _insert(self, df: pd.DataFrame) -> None:
        """One INSERT ... SELECT from a registered DataFrame (DuckDB reads it in place, columnar)."""
        with self._lock:
            self._db.register("_batch", df)
            try:
                self._db.execute(f"INSERT INTO samples SELECT {_COLS} FROM _batch")
            finally:
                self._db.unregister("_batch")

    def write_batches(self, batches: Sequence[SampleBatch]) -> None:
        """Columnar batches as one columnar append (numpy columns -> DataFrame -> INSERT ... SELECT)."""
        if not batches:
            return
        cols: dict[str, list] = {"ts": [], "subject": [], "metric": [], "value": [], "tags": []}
        for b in batches:
            rows, k = b.values.shape
            cols["ts"].append(np.full(rows * k, b.ts))
            cols["subject"].append(np.repeat(np.array(b.subjects, dtype=object), k))
            cols["metric"].append(np.tile(np.array(b.metrics, dtype=object), rows))
            cols["value"].append(b.values.ravel())
            cols["tags"].append(np.repeat(np.array([tags_str_cached(t) for t in b.tags], dtype=object), k))
        df = pd.DataFrame({c: np.concatenate(v) for c, v in cols.items()})
        df = df[df["value"].notna()]
        self._insert(df)
