"""InfluxDB 1.x (Debian influxd 1.6.7) through the v1 backend: round trip, outages, startup errors."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from pfepo.config import HistoryConfig
from pfepo.store.influx import InfluxSetupError, InfluxStore, check_influx, open_influx_store
from pfepo.store.influx_config import InfluxConfig
from pfepo.store.sqlite import SQLiteStore
from pfepo.telemetry.samples import Sample
from pfepo_lab.bench.history import LocalInfluxd, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.influx

NOW = time.time()


def seq_samples(start: int, n: int) -> list[Sample]:
    """Distinct (subject, ts) per sequence number; value = the number, so loss and duplicates show."""
    return [
        Sample(NOW - 3000 + i * 0.001, f"ep{i % 7}", "seq", float(i), (("region", f"r{i % 3}"),))
        for i in range(start, start + n)
    ]


def test_round_trip_keeps_tags_values_and_ns_time(v1_cfg, influxd):
    store = InfluxStore(v1_cfg)
    odd = Sample(NOW, "ep with space,comma", "lat=ms", 1.25e-7, (("region", "eu west"), ("service", 'a"b')))
    store.write(seq_samples(0, 10_000) + [odd])
    store.write_event(
        "decision", NOW, {"region": "r1", "endpoint": "ep1"}, {"text": "shift 10%", "risk": 0.8}
    )
    assert store.flush(10)
    assert store.sent == 10_002 and store.stats()["pending"] == 0
    got = store.range(metric="seq")
    assert sorted(int(s.value) for s in got) == list(range(10_000))
    assert all(s.ts == pytest.approx(NOW - 3000 + s.value * 0.001, abs=1e-6) for s in got)
    [back] = store.last("ep with space,comma")
    assert (back.subject, back.metric, back.value, back.tags) == (
        odd.subject,
        odd.metric,
        odd.value,
        odd.tags,
    )
    assert back.ts == pytest.approx(odd.ts, abs=1e-6)
    ev = influxd.query('SELECT "text", "risk" FROM "pfepo_event" WHERE "kind" = \'decision\'', db="pfepo")
    assert ev["results"][0]["series"][0]["values"][0][1:] == ["shift 10%", 0.8]
    store.close()


NASTY = ["sp ace", "com,ma", "eq=ual", 'quo"te', "it's", "ünï", "=", "a b,c=d", "s1:3", "tab\tx"]


def test_names_with_line_protocol_specials_round_trip(v1_cfg):
    store = InfluxStore(v1_cfg)
    samples = [
        Sample(NOW + i, name, "m " + name, float(i), (("region", name),)) for i, name in enumerate(NASTY)
    ]
    store.write(samples)
    assert store.flush(10) and store.rejected == 0
    for s in samples:
        [back] = store.last(s.subject)
        assert (back.subject, back.metric, back.value, back.tags) == (s.subject, s.metric, s.value, s.tags)
    assert store.subjects() == sorted(NASTY)
    store.close()


def test_server_killed_mid_stream_every_sample_arrives_exactly_once(v1_cfg, influxd):
    store = InfluxStore(v1_cfg)
    batches, size = 120, 250
    written = []
    slowest = 0.0

    def producer():
        nonlocal slowest
        for b in range(batches):
            chunk = seq_samples(b * size, size)
            t = time.perf_counter()
            store.write(chunk)
            slowest = max(slowest, time.perf_counter() - t)
            written.extend(chunk)
            time.sleep(0.01)  # pacing: the stream lasts > 1.2 s, so the outage falls inside it

    th = threading.Thread(target=producer)
    th.start()
    wait_until(lambda: store.sent >= 5 * size, message="first batches acknowledged")
    influxd.kill()  # SIGKILL mid-stream
    wait_until(lambda: not store.up, message="the sender to notice the dead server")
    assert th.is_alive(), "the stream ended before the outage: nothing was written during it"
    influxd.start()  # same data dir and ports
    th.join()
    assert store.flush(30), store.stats()
    got = store.range(metric="seq")
    assert len(written) == batches * size
    assert len(got) == len(written)
    assert sorted(int(s.value) for s in got) == list(range(batches * size))
    st = store.stats()
    assert st["queued"] > 0 and st["replayed"] == st["queued"] and st["dropped"] == 0 and st["failures"] > 0
    assert st["sent"] == st["accepted"] == batches * size
    assert slowest < 0.5  # the caller never waited on the dead server
    store.close()


def test_slow_server_never_blocks_the_caller(tmp_path):
    """A server that accepts connections but never answers: writes stay fast, data waits in the spool."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)
        url = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
        store = InfluxStore(InfluxConfig(url=url, timeout_s=0.5, spool_path=str(tmp_path / "sp.sqlite")))
        worst = 0.0
        for b in range(20):
            t = time.perf_counter()
            store.write(seq_samples(b * 100, 100))
            worst = max(worst, time.perf_counter() - t)
            time.sleep(0.05)  # pacing of the writes, not a synchronisation
        assert worst < 0.2
        assert not store.up and store.failures >= 1
        assert store.pending == 2000 and store.queued > 0
        store.close(drain_s=0)


@pytest.mark.parametrize("policy", ["oldest", "newest"])
def test_spool_full_drops_per_policy_and_the_rest_arrives(tmp_path, policy, caplog):
    if not __import__("shutil").which("influxd"):
        pytest.skip("influxd not installed")
    srv = LocalInfluxd()  # port chosen, server not started yet: the URL is unreachable
    try:
        cfg = InfluxConfig(
            url=srv.url,
            timeout_s=1,
            spool_path=str(tmp_path / "sp.sqlite"),
            spool_max_mb=0.05,
            spool_drop=policy,
        )  # ~52 kB
        store = InfluxStore(cfg)
        caplog.set_level(logging.WARNING, logger="pfepo.store.spool")
        n_batches, size = 40, 50
        for b in range(n_batches):
            store.write(seq_samples(b * size, size))
            time.sleep(0.002)  # pacing of the writes, not a synchronisation
        st = store.stats()
        assert st["dropped"] > 0 and st["dropped"] % size == 0
        assert st["dropped"] + st["pending"] == n_batches * size
        assert st["spool_bytes"] <= cfg.spool_max_bytes
        assert any("dropped" in r.getMessage() and policy in r.getMessage() for r in caplog.records)
        srv.start()
        srv.query("CREATE DATABASE pfepo")
        assert store.flush(30), store.stats()
        got = sorted(int(s.value) for s in store.range(metric="seq"))
        assert len(got) == n_batches * size - st["dropped"]
        kept_batches = sorted({v // size for v in got})
        if policy == "newest":
            assert kept_batches == list(range(len(kept_batches)))  # the first ones
        else:  # the newest ones, plus at most the batch that was being sent when the spool filled
            tail = [b for b in kept_batches if b > 0]
            assert tail == list(range(n_batches - len(tail), n_batches))
        store.close()
    finally:
        srv.cleanup()


# --- startup errors ----------------------------------------------------------------------------------


def setting_of(cfg: InfluxConfig) -> str:
    with pytest.raises(InfluxSetupError) as e:
        check_influx(cfg)
    assert str(e.value).startswith(e.value.setting + ": ")
    return e.value.setting


def test_unreachable_url():
    cfg = InfluxConfig(url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(InfluxSetupError, match=r"history\.influxdb\.url: .*connection refused"):
        check_influx(cfg)


def test_unknown_host():
    cfg = InfluxConfig(url="http://no-such-host.invalid:8086", timeout_s=2)
    with pytest.raises(
        InfluxSetupError, match=r"history\.influxdb\.url: cannot resolve host 'no-such-host\.invalid'"
    ):
        check_influx(cfg)


def test_tls_to_a_plain_http_server(influxd):
    cfg = InfluxConfig(url=influxd.url.replace("http://", "https://"), timeout_s=2)
    with pytest.raises(InfluxSetupError, match=r"history\.influxdb\.url: TLS handshake .* failed"):
        check_influx(cfg)


def test_not_an_influx_server(victoria):
    cfg = InfluxConfig(url=victoria.url + "/nowhere", timeout_s=2)
    assert setting_of(cfg) == "history.influxdb.url"


def test_unknown_database_and_retention_policy(influxd):
    assert setting_of(InfluxConfig(url=influxd.url, database="nope")) == "history.influxdb.database"
    assert (
        setting_of(InfluxConfig(url=influxd.url, retention_policy="weekly"))
        == "history.influxdb.retention_policy"
    )
    check_influx(InfluxConfig(url=influxd.url, retention_policy="autogen"))  # the real one passes


def test_credentials(influxd_auth):
    url = influxd_auth.url
    assert setting_of(InfluxConfig(url=url)) == "history.influxdb.username"
    assert (
        setting_of(InfluxConfig(url=url, username="admin", password="wrong")) == "history.influxdb.password"
    )
    check_influx(InfluxConfig(url=url, username="admin", password="secret"))


def test_open_store_raises_or_falls_back(tmp_path, caplog):
    bad = InfluxConfig(
        url=f"http://127.0.0.1:{free_port()}", timeout_s=1, spool_path=str(tmp_path / "s.sqlite")
    )
    hcfg = HistoryConfig(backend="influxdb", path=str(tmp_path / "h.sqlite"), influxdb=bad)
    with pytest.raises(InfluxSetupError, match="history.influxdb.url"):
        open_influx_store(hcfg)
    hcfg = HistoryConfig(
        backend="influxdb",
        path=str(tmp_path / "h.sqlite"),
        influxdb=bad.model_copy(update={"fallback_to_embedded": True}),
    )
    with caplog.at_level(logging.CRITICAL, logger="pfepo.store.influx"):
        store = open_influx_store(hcfg)
    assert isinstance(store, SQLiteStore) and "history.influxdb.url" in store.fallback_reason
    assert any("fallback_to_embedded" in r.getMessage() for r in caplog.records)
    store.close()


def test_open_store_through_the_writer_factory(influxd, tmp_path):
    from pfepo.store.writer import BatchWriter, open_store

    cfg = InfluxConfig(url=influxd.url, spool_path=str(tmp_path / "s.sqlite"))
    store = open_store(HistoryConfig(backend="influxdb", path=str(tmp_path / "h.sqlite"), influxdb=cfg))
    assert isinstance(store, InfluxStore)
    w = BatchWriter(store, batch_size=500, flush_interval_s=0.05)
    w.put(seq_samples(0, 2000))
    w.flush(5)
    assert store.flush(10)
    assert len(store.range(metric="seq")) == 2000
    w.close()


def test_spool_outlives_the_daemon(tmp_path):
    """Samples spooled while the server was down are replayed by the next process after a restart."""
    if not __import__("shutil").which("influxd"):
        pytest.skip("influxd not installed")
    srv = LocalInfluxd()
    try:
        cfg = InfluxConfig(url=srv.url, timeout_s=1, spool_path=str(tmp_path / "sp.sqlite"))
        first = InfluxStore(cfg)
        first.write(seq_samples(0, 500))
        first.close(drain_s=0.2)  # daemon stops while the server is still down
        srv.start()
        srv.query("CREATE DATABASE pfepo")
        second = InfluxStore(cfg)
        assert second.pending == 500 and second.queued == 500
        assert second.flush(10)
        assert second.replayed == 500
        assert sorted(int(s.value) for s in second.range(metric="seq")) == list(range(500))
        second.close()
    finally:
        srv.cleanup()


def test_refused_data_is_counted_not_retried_forever(v1_cfg):
    store = InfluxStore(v1_cfg)
    store.write_event("decision", NOW, {"region": "r1"}, {"text": "a string"})
    assert store.flush(10)
    store.write_event("decision", NOW + 1, {"region": "r1"}, {"text": 5.0})  # field type conflict
    store.write(seq_samples(0, 10))  # later data is not stuck behind the refused line
    assert store.flush(10)
    assert store.rejected == 1 and store.sent == 11
    assert "conflict" in store.last_error
    store.close()
