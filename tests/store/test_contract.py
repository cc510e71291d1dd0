"""The HistoryStore contract, run against every backend (InfluxDB only with a real server)."""

from __future__ import annotations

import pytest

from pfepo.store.base import HistoryStore
from pfepo.store.duckdb import DuckDBStore
from pfepo.store.influx import InfluxStore
from pfepo.store.sqlite import SQLiteStore
from pfepo.telemetry.samples import Sample

T0 = 1_700_000_000.25
SUBJECTS = ("ep-a", "ep-b", "s1:3")
METRICS = ("latency_ms", "loss_pct")


def data(ticks: int = 20) -> list[Sample]:
    out = []
    for i in range(ticks):
        for j, subj in enumerate(SUBJECTS):
            tags = (
                (("region", "east" if j < 2 else "west"), ("service", "web"))
                if j < 2
                else (("port", "3"), ("switch", "s1"))
            )
            for k, m in enumerate(METRICS):
                out.append(Sample(T0 + i, subj, m, i * 10.0 + j + k / 4, tags))
    return out


def norm(samples):
    return sorted((round(s.ts, 6), s.subject, s.metric, s.value, s.tags) for s in samples)


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("influx", marks=pytest.mark.influx)])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "h.sqlite")
    elif request.param == "duckdb":
        s = DuckDBStore(tmp_path / "h.duckdb")
    else:
        s = InfluxStore(request.getfixturevalue("v1_cfg"))
    yield s
    s.close()


def put(store, samples):
    for i in range(0, len(samples), 25):
        store.write(samples[i : i + 25])
    if isinstance(store, InfluxStore):
        assert store.flush(10)


def test_is_a_history_store(store):
    assert isinstance(store, HistoryStore)


def test_range_returns_everything_in_time_order(store):
    d = data()
    put(store, d)
    got = store.range()
    assert norm(got) == norm(d)
    assert [s.ts for s in got] == sorted(s.ts for s in got)


def test_range_filters_and_bounds(store):
    d = data()
    put(store, d)
    got = store.range("ep-b", "loss_pct", T0 + 5, T0 + 9)  # start inclusive, end exclusive
    assert [round(s.ts - T0, 6) for s in got] == [5, 6, 7, 8]
    assert {(s.subject, s.metric) for s in got} == {("ep-b", "loss_pct")}
    assert got[0].value == 5 * 10.0 + 1 + 0.25
    assert got[0].tags == (("region", "east"), ("service", "web"))
    assert norm(store.range(start=T0 + 19)) == norm([s for s in d if s.ts >= T0 + 19])
    assert norm(store.range(metric="latency_ms", end=T0 + 1)) == norm(
        [s for s in d if s.metric == "latency_ms" and s.ts < T0 + 1]
    )
    assert store.range("nobody") == []


def test_range_limit_keeps_the_oldest(store):
    put(store, data())
    got = store.range("ep-a", "latency_ms", limit=3)
    assert [round(s.ts - T0, 6) for s in got] == [0, 1, 2]


def test_last_is_newest_n_oldest_first(store):
    put(store, data())
    got = store.last("s1:3", "latency_ms", n=3)
    assert [round(s.ts - T0, 6) for s in got] == [17, 18, 19]
    assert got[-1].value == 190.0 + 2 and got[-1].tags == (("port", "3"), ("switch", "s1"))
    both = store.last("s1:3", n=4)  # two metrics per tick: the last two ticks
    assert sorted((round(s.ts - T0, 6), s.metric) for s in both) == [
        (18, "latency_ms"),
        (18, "loss_pct"),
        (19, "latency_ms"),
        (19, "loss_pct"),
    ]
    assert store.last("nobody") == []


def test_subjects_and_empty_write(store):
    store.write([])
    put(store, data(2))
    assert store.subjects() == sorted(SUBJECTS)
