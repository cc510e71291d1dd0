"""Audit log: every decision and weight change as one JSON line, with its reasons.

Records go to an append-only JSON-lines file (the durable trail operators grep) and to a bounded
in-memory ring that serves the REST API quickly. ``query`` reads the ring, and falls back to
scanning the file when asked for records older than the ring still holds. Thread-safe: the daemon
loop appends while API threads query.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _clean(v: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every line stays valid JSON."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_clean(x) for x in v]
    return v


class AuditLog:
    """``append(kind, record)``; ``query(since=, service=, kind=, limit=)``, oldest first."""

    def __init__(self, path: str | Path | None = None, ring_size: int = 10_000, fsync: bool = False):
        self.path = Path(path) if path else None
        self.fsync = fsync
        self._ring: deque[dict] = deque(maxlen=ring_size)
        self._lock = threading.Lock()
        self._dropped_from_ring = False
        self._last_decision: dict[tuple, tuple] = {}
        self._fh = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():  # resume: the API shows history from before a restart
                for rec in self._scan_file():
                    if len(self._ring) == self._ring.maxlen:
                        self._dropped_from_ring = True
                    self._ring.append(rec)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for appends

    def append(self, kind: str, record: dict | None = None, ts: float | None = None) -> dict:
        rec = _clean({**(record or {})})
        rec["kind"] = kind
        rec["ts"] = float(rec["ts"]) if rec.get("ts") is not None else (time.time() if ts is None else ts)
        line = json.dumps(rec, sort_keys=True, default=str)
        with self._lock:
            if len(self._ring) == self._ring.maxlen:
                self._dropped_from_ring = True
            self._ring.append(rec)
            if self._fh is not None:
                self._fh.write(line + "\n")
                self._fh.flush()
                if self.fsync:
                    os.fsync(self._fh.fileno())
        return rec

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
        limit = max(0, int(limit))
        with self._lock:
            ring = list(self._ring)
            partial = self._dropped_from_ring
        older_than_ring = since is not None and ring and since < ring[0]["ts"]
        source: Iterable[dict] = ring
        if partial and older_than_ring and self.path is not None:
            source = self._scan_file()
        if limit == 0:
            return []
        out: deque[dict] = deque(maxlen=limit)
        for rec in source:
            if since is not None and rec.get("ts", 0) < since:
                continue
            if service is not None and rec.get("service") != service:
                continue
            if kind is not None and rec.get("kind") != kind:
                continue
            if region is not None and rec.get("region") != region:
                continue
            out.append(rec)
        return list(out)

    def _scan_file(self) -> Iterator[dict]:
        assert self.path is not None
        try:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a torn last line after a crash must not break the API
                    if isinstance(rec, dict):
                        yield rec
        except FileNotFoundError:
            return

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
