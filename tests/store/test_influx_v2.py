"""The v2 write path (influxdb-client) into a real server that speaks the v2 write API: VictoriaMetrics."""

from __future__ import annotations

import time

import pytest

from pfepo.store.influx import InfluxSetupError, InfluxStore, check_influx, to_ns
from pfepo.store.influx_config import InfluxConfig
from pfepo.telemetry.samples import Sample
from tests.waiting import wait_until

pytestmark = pytest.mark.influx


def v2_cfg(url: str, tmp_path, **kw) -> InfluxConfig:
    return InfluxConfig(
        api="v2",
        url=url,
        org="pfepo",
        bucket="pfepo",
        token="unused",
        read_via="none",
        timeout_s=2,
        spool_path=str(tmp_path / "spool.sqlite"),
        **kw,
    )


def test_v2_writes_arrive_and_read_back_through_the_servers_api(victoria, tmp_path):
    now = time.time()
    samples = [
        Sample(now - 600 + i, f"ep{i % 4}", m, i + k / 8, (("region", f"r{i % 2}"), ("service", "web")))
        for i in range(500)
        for k, m in enumerate(("latency_ms", "loss_pct"))
    ]
    cfg = v2_cfg(victoria.url, tmp_path)
    check_influx(cfg)
    store = InfluxStore(cfg)
    for i in range(0, len(samples), 100):
        store.write(samples[i : i + 100])
    assert store.flush(10), store.stats()
    assert store.sent == len(samples) and store.failures == 0
    # VictoriaMetrics names an influx field <measurement>_<field> and keeps ms timestamps.
    got = {}
    for series in victoria.export('{__name__=~"pfepo_metric_.*"}'):
        m = series["metric"]
        for ts, v in zip(series["timestamps"], series["values"], strict=True):
            got[(m["__name__"], m["subject"], m["region"], ts)] = v
    want = {
        (f"pfepo_metric_{s.metric}", s.subject, s.tag("region"), to_ns(s.ts) // 10**6): s.value
        for s in samples
    }
    assert len(got) == len(want)
    assert got == pytest.approx(want)
    with pytest.raises(RuntimeError, match="read_via"):
        store.range("ep1")
    store.close()


def test_v2_outage_spools_then_replays(victoria, tmp_path):
    now = time.time()
    store = InfluxStore(v2_cfg(victoria.url, tmp_path))
    store.write([Sample(now - 10, "a", "x", 1.0)])
    assert store.flush(10)
    # SIGTERM: VictoriaMetrics acknowledges before its ~1 s in-memory buffer reaches disk, so a SIGKILL
    # here would lose the acknowledged first sample on the server side (influxd fsyncs its WAL first).
    victoria.stop()
    store.write([Sample(now - 9 + i * 0.01, "a", "x", float(i)) for i in range(300)])
    wait_until(lambda: not store.up, message="the sender to notice the stopped server")
    assert store.pending == 300 and store.queued == 300
    victoria.start()
    assert store.flush(15), store.stats()
    assert store.replayed == 300 and store.dropped == 0
    [series] = victoria.export('{__name__="pfepo_metric_x"}')
    assert len(series["values"]) == 301
    store.close()


def test_v2_influxql_reads_against_a_server_without_query_name_the_setting(victoria, tmp_path):
    cfg = v2_cfg(victoria.url, tmp_path).model_copy(update={"read_via": "influxql"})
    with pytest.raises(InfluxSetupError) as e:
        check_influx(cfg)
    assert e.value.setting == "history.influxdb.read_via"


def test_v2_influxql_reader_on_v1_compatible_query(influxd, v1_cfg):
    """v2 mode reads through /query with a token header; influxd 1.x without auth serves that path."""
    InfluxStore(v1_cfg).close()  # nothing written
    w = InfluxStore(v1_cfg)
    w.write([Sample(1000.0, "ep", "latency_ms", 3.5, (("region", "r1"),))])
    assert w.flush(10)
    w.close()
    r = InfluxStore(
        InfluxConfig(
            api="v2",
            url=influxd.url,
            org="o",
            bucket="b",
            token="t",
            database="pfepo",
            spool_path=v1_cfg.spool_path + ".2",
        ),
        start=False,
    )
    assert r.last("ep") == [Sample(1000.0, "ep", "latency_ms", 3.5, (("region", "r1"),))]
    r.close()
