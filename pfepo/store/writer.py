"""Batching writer: the OpenFlow event path only enqueues; a thread writes batches to the store."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable

from pfepo.samples import Sample
from pfepo.store.base import HistoryStore

log = logging.getLogger(__name__)

_WAKE = object()


class BatchWriter:
    """Bounded queue in front of a HistoryStore.

    ``put`` never blocks: when the queue is full the sample is dropped and counted (the event thread
    must not stall on a slow disk). Batches go out every ``flush_interval_s`` or at ``batch_size``.
    """

    def __init__(self, store: HistoryStore, batch_size: int = 5000, flush_interval_s: float = 1.0,
                 queue_max: int = 200_000):
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._q: queue.Queue[Sample] = queue.Queue(maxsize=queue_max)
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self.written = 0
        self.dropped = 0
        self.failed_batches = 0
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def put(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            try:
                self._q.put_nowait(s)
            except queue.Full:
                self.dropped += 1

    @property
    def queued(self) -> int:
        return self._q.qsize()

    def _drain(self, first: Sample | None) -> list[Sample]:
        batch = [first] if first is not None else []
        while len(batch) < self.batch_size:
            try:
                s = self._q.get_nowait()
            except queue.Empty:
                break
            if s is not _WAKE:
                batch.append(s)
        return batch

    def _run(self) -> None:
        while not self._stop.is_set() or not self._q.empty():
            try:
                first = self._q.get(timeout=self.flush_interval_s)
            except queue.Empty:
                first = None
            if first is _WAKE:
                first = None
            batch = self._drain(first)
            if batch:
                self._write(batch)
            with self._flushed:
                self._flushed.notify_all()

    def _write(self, batch: list[Sample]) -> None:
        for attempt in range(3):
            try:
                self.store.write(batch)
                self.written += len(batch)
                return
            except Exception:  # a store error must never kill the writer thread
                log.exception("history write failed (attempt %d, %d samples)", attempt + 1, len(batch))
                time.sleep(0.2 * (attempt + 1))
        self.failed_batches += 1
        self.dropped += len(batch)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far has been written (used by tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._q.qsize() and time.monotonic() < deadline:
            with self._flushed:
                self._flushed.wait(0.05)

    def close(self) -> None:
        self._stop.set()
        try:
            self._q.put_nowait(_WAKE)  # wake the thread now instead of after flush_interval_s
        except queue.Full:
            pass
        self._thread.join(timeout=10)
        self.store.close()


def open_store(cfg) -> HistoryStore:
    """The configured history store (``cfg`` is config.HistoryConfig)."""
    if cfg.backend == "sqlite":
        from pfepo.store.sqlite import SQLiteStore

        return SQLiteStore(cfg.path)
    if cfg.backend == "duckdb":
        from pfepo.store.duckdb import DuckDBStore

        return DuckDBStore(cfg.path)
    if cfg.backend == "influxdb":
        from pfepo.store.influx import open_influx_store

        return open_influx_store(cfg)
    raise ValueError(f"unknown history backend {cfg.backend!r}")
