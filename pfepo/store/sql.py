"""Queries shared by the embedded SQL stores (SQLite, DuckDB): same table, same ``?`` parameters."""

from __future__ import annotations

from pfepo.store.base import str_to_tags
from pfepo.telemetry.samples import Sample

COLS = "ts, subject, metric, value, tags"


class SqlHistory:
    """HistoryStore reads over a ``samples`` table; subclasses provide ``_db``, ``_lock`` and ``write``.

    ``_range_order``/``_last_order`` let a store add tie-breakers where it keeps no insertion order.
    """

    _range_order = "ts"
    _last_order = "ts DESC"
    _source = "samples"  # table or view the reads run on (SQLite: samples plus wide port-rate rows)

    def range(self, subject=None, metric=None, start=None, end=None, limit=None) -> list[Sample]:
        sql, args = self._range_sql(COLS, subject, metric, start, end, limit)
        return self._query(sql, args)

    def range_rows(self, subject: str, start: float | None = None, end: float | None = None) -> list[tuple]:
        """``range(subject, start=, end=)`` as raw (ts, metric, value) tuples, in the same order (the same
        query): no ``Sample`` objects and no tags, for bulk readers (the console's what-if reads a day of
        every endpoint; building a ``Sample`` per row was most of its reading time)."""
        sql, args = self._range_sql("ts, metric, value", subject, None, start, end, None)
        return self._rows(sql, args)

    def _range_sql(self, cols: str, subject, metric, start, end, limit) -> tuple[str, list]:
        where, args = [], []
        for col, op, val in (("subject", "=", subject), ("metric", "=", metric), ("ts", ">=", start), ("ts", "<", end)):
            if val is not None:
                where.append(f"{col} {op} ?")
                args.append(val)
        sql = f"SELECT {cols} FROM {self._source}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {self._range_order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return sql, args

    def last(self, subject: str, metric: str | None = None, n: int = 100) -> list[Sample]:
        sql = f"SELECT {COLS} FROM {self._source} WHERE subject = ?"
        args: list = [subject]
        if metric is not None:
            sql += " AND metric = ?"
            args.append(metric)
        sql += f" ORDER BY {self._last_order} LIMIT ?"
        args.append(int(n))
        return list(reversed(self._query(sql, args)))

    def subjects(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(f"SELECT DISTINCT subject FROM {self._source} ORDER BY subject").fetchall()]

    def count(self) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {self._source}").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: list) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _query(self, sql: str, args: list) -> list[Sample]:
        return [Sample(ts, subj, met, val, str_to_tags(tags)) for ts, subj, met, val, tags in self._rows(sql, args)]
