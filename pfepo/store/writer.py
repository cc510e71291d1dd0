"""Batching writer: the OpenFlow event path only enqueues; a thread writes batches to the store."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable

from pfepo.store.base import HistoryStore
from pfepo.telemetry.samples import Sample, SampleBatch, expand

log = logging.getLogger(__name__)


class BatchWriter:
    """Bounded queue in front of a HistoryStore.

    One queue entry per call: a list of ``Sample`` (``put``) or a columnar ``SampleBatch`` (``put_batch``,
    one per switch reply), so a reply costs one append, not one per sample. ``put*`` never blocks: when
    the queue already holds ``queue_max`` samples the entry is dropped and counted (the event thread must
    not stall on a slow disk). Batches go out every ``flush_interval_s`` or at ``batch_size`` samples; a
    store with ``write_batches`` gets the columnar batches as they are.
    """

    def __init__(self, store: HistoryStore, batch_size: int = 5000, flush_interval_s: float = 1.0,
                 queue_max: int = 200_000):
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.queue_max = queue_max
        self._q: collections.deque = collections.deque()
        self._queued = 0  # samples in _q
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._busy = False
        self.written = 0
        self.dropped = 0
        self.failed_batches = 0
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def _enqueue(self, item, n: int) -> bool:
        if n == 0:
            return True
        with self._cv:
            if self._queued + n > self.queue_max:
                self.dropped += n
                return False
            self._q.append(item)
            self._queued += n
            if self._queued >= self.batch_size:
                self._cv.notify()
        return True

    def put(self, samples: Iterable[Sample]) -> None:
        items = samples if isinstance(samples, list) else list(samples)
        self._enqueue(items, len(items))

    def put_batch(self, batch: SampleBatch) -> bool:
        """Queue one columnar batch (False: dropped, the queue is full)."""
        return self._enqueue(batch, len(batch))

    @property
    def queued(self) -> int:
        return self._queued

    def _take(self) -> tuple[list[Sample], list[SampleBatch]]:
        """Up to ``batch_size`` samples' worth of entries (at least one entry if any is queued)."""
        samples: list[Sample] = []
        batches: list[SampleBatch] = []
        n = 0
        with self._cv:
            while self._q and (n == 0 or n + self._size(self._q[0]) <= self.batch_size):
                item = self._q.popleft()
                k = self._size(item)
                self._queued -= k
                n += k
                if isinstance(item, SampleBatch):
                    batches.append(item)
                else:
                    samples.extend(item)
            self._busy = bool(samples or batches)
        return samples, batches

    @staticmethod
    def _size(item) -> int:
        return len(item)

    def _run(self) -> None:
        while not self._stop.is_set() or self._q:
            with self._cv:
                if self._queued < self.batch_size and not self._stop.is_set():
                    self._cv.wait(self.flush_interval_s)
            while True:
                samples, batches = self._take()
                if not samples and not batches:
                    break
                if samples:
                    self._write(samples, False)
                if batches:
                    self._write(batches, True)
                with self._cv:
                    self._busy = False
                if self._queued < self.batch_size and not self._stop.is_set():
                    break
            with self._flushed:
                self._flushed.notify_all()

    def _write(self, items: list, columnar: bool) -> None:
        n = sum(len(b) for b in items) if columnar else len(items)
        write_batches = getattr(self.store, "write_batches", None) if columnar else None
        for attempt in range(3):
            try:
                if write_batches is not None:
                    write_batches(items)
                else:
                    self.store.write(expand(items) if columnar else items)
                self.written += n
                return
            except Exception:  # a store error must never kill the writer thread
                log.exception("history write failed (attempt %d, %d samples)", attempt + 1, n)
                time.sleep(0.2 * (attempt + 1))
        self.failed_batches += 1
        self.dropped += n

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far has been written (used by tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            self._cv.notify()
        while (self._q or self._busy) and time.monotonic() < deadline:
            with self._cv:
                self._cv.notify()
            with self._flushed:
                self._flushed.wait(0.05)

    def close(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify()  # wake the thread now instead of after flush_interval_s
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
