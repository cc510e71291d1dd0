"""BatchWriter with columnar batches, and the stores' ``write_batches`` (SQLite wide rows, DuckDB columnar)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pfepo.store.duckdb import DuckDBStore
from pfepo.store.sqlite import SQLiteStore
from pfepo.store.writer import BatchWriter
from pfepo.telemetry.rates import PORT_METRICS
from pfepo.telemetry.samples import Sample, SampleBatch, expand
from tests.waiting import wait_until

T0 = 1_700_000_000.5


def port_batch(ts: float, switch: str = "s1", ports=(1, 2, 3)) -> SampleBatch:
    subjects = tuple(f"{switch}:{p}" for p in ports)
    tags = tuple((("kind", "port"), ("port", str(p)), ("switch", switch)) for p in ports)
    values = np.arange(len(ports) * len(PORT_METRICS), dtype=np.float64).reshape(len(ports), -1) + ts - T0
    return SampleBatch(ts, subjects, tags, PORT_METRICS, values)


def norm(samples):
    return sorted((round(s.ts, 6), s.subject, s.metric, s.value, s.tags) for s in samples)


def test_batch_expands_to_the_same_samples_and_skips_nan():
    b = port_batch(T0)
    got = b.samples()
    assert len(b) == 21 and len(got) == 21
    assert got[0] == Sample(T0, "s1:1", "rx_bps", 0.0, b.tags[0])
    v = b.values.copy()
    v[1, 2] = np.nan
    nan = SampleBatch(T0, b.subjects, b.tags, b.metrics, v)
    assert len(nan.samples()) == 20
    assert len(expand([nan, got[0]])) == 21


@pytest.fixture(params=["sqlite", "duckdb"])
def store(request, tmp_path):
    s = SQLiteStore(tmp_path / "h.sqlite") if request.param == "sqlite" else DuckDBStore(tmp_path / "h.duckdb")
    yield s
    s.close()


def test_write_batches_reads_back_like_samples(store):
    batches = [port_batch(T0 + i) for i in range(5)]
    other = SampleBatch(T0, ("ep-a",), ((("region", "eu"),),), ("latency_ms", "loss_pct"), np.array([[12.5, 0.0]]))
    store.write_batches([*batches, other])
    store.write([Sample(T0 + 9, "ep-a", "latency_ms", 3.0, (("region", "eu"),))])
    want = expand([*batches, other]) + [Sample(T0 + 9, "ep-a", "latency_ms", 3.0, (("region", "eu"),))]
    assert norm(store.range()) == norm(want)
    assert [s.value for s in store.range("s1:2", "tx_bps")] == [b.values[1, 1] for b in batches]
    last = store.last("s1:3", "utilization_pct", n=2)
    assert [s.ts for s in last] == [T0 + 3, T0 + 4]
    assert "s1:1" in store.subjects() and "ep-a" in store.subjects()
    assert store.count() == len(want)


def test_writer_takes_one_entry_per_batch_and_writes_everything(tmp_path):
    store = SQLiteStore(tmp_path / "h.sqlite")
    w = BatchWriter(store, batch_size=100, flush_interval_s=0.05)
    try:
        for i in range(20):
            assert w.put_batch(port_batch(T0 + i))
        w.put([Sample(T0, "ep-a", "latency_ms", 1.0)])
        w.flush(10)
        assert w.written == 20 * 21 + 1 and w.dropped == 0 and w.queued == 0
        assert store.count() == 20 * 21 + 1
    finally:
        w.close()


class _SlowStore:
    """A store that blocks until released: lets the queue fill up."""

    def __init__(self):
        self.release = threading.Event()
        self.got = 0

    def write(self, samples):
        self.release.wait(10)
        self.got += len(samples)

    def close(self):
        pass


def test_writer_bounds_the_queue_in_samples_and_counts_drops():
    st = _SlowStore()
    w = BatchWriter(st, batch_size=21, flush_interval_s=0.01, queue_max=1000)
    try:
        w.put_batch(port_batch(T0))  # taken by the writer thread, which then blocks in write()
        wait_until(lambda: not w.queued, 5, "the writer thread to take the first batch", interval=0.01)
        kept = sum(w.put_batch(port_batch(T0 + i)) for i in range(100))
        assert kept == 1000 // 21  # 47 batches fit under queue_max samples
        assert w.dropped == (100 - kept) * 21
        assert w.queued == kept * 21
        st.release.set()
        w.flush(10)
        assert st.got == (kept + 1) * 21 and w.written == st.got
    finally:
        st.release.set()
        w.close()


class _FailingStore:
    def __init__(self):
        self.calls = 0

    def write(self, samples):
        self.calls += 1
        raise OSError("disk full")

    def close(self):
        pass


def test_a_failing_store_counts_the_batch_as_dropped_and_the_writer_lives_on():
    st = _FailingStore()
    w = BatchWriter(st, batch_size=1000, flush_interval_s=0.01)
    try:
        w.put_batch(port_batch(T0))
        wait_until(lambda: w.failed_batches, 10, "the batch given up after its retries", interval=0.02)
        assert w.failed_batches == 1 and w.dropped == 21 and st.calls == 3
        assert w._thread.is_alive()
    finally:
        w.close()
