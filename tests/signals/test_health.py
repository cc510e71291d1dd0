"""HealthChecker and PromScraper against real local HTTP servers."""

from __future__ import annotations

import threading
import time

import pytest

from pfepo.actions.config import HealthCheckConfig, ScrapeConfig
from pfepo.signals.health import HealthChecker, PromScraper
from tests.waiting import wait_until


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Sink:
    def __init__(self):
        self.samples = []
        self.lock = threading.Lock()

    def __call__(self, samples):
        with self.lock:
            self.samples.extend(samples)

    def of(self, subject, metric):
        with self.lock:
            return [s for s in self.samples if s.subject == subject and s.metric == metric]


def hc(url, **kw) -> HealthCheckConfig:
    return HealthCheckConfig(url=url, **kw)


def test_health_flips_from_200_to_500(receiver):
    state = {"code": 200}
    r = receiver(lambda s, rec: (state["code"], {}, b"{}"))
    clock = Clock()
    checker = HealthChecker({"eu-web1": hc(r.url + "/healthz", expected_status=[200, 204])}, Sink(),
                            tags={"eu-web1": {"region": "eu"}}, clock=clock)
    up = checker.check_once("eu-web1")
    assert [(s.metric, s.ts) for s in up] == [("health_up", clock.t), ("response_ms", clock.t)]
    assert up[0].value == 1.0 and 0 < up[1].value < 1000
    assert up[0].tags == (("region", "eu"),)
    assert r.requests[0].path == "/healthz" and r.requests[0].method == "GET"
    state["code"] = 500
    clock.t += 10
    down = checker.check_once("eu-web1")
    assert [(s.metric, s.value) for s in down][0] == ("health_up", 0.0)
    assert down[1].metric == "response_ms"  # a response arrived, only the wrong one
    st = checker.status()["eu-web1"]
    assert st["ok"] is False and st["status_code"] == 500 and st["consecutive_failures"] == 1
    assert st["checks"] == 2 and st["failures"] == 1 and st["checked_at"] == clock.t
    assert "status 500 not in [200, 204]" in st["error"]
    state["code"] = 204
    assert checker.check_once("eu-web1")[0].value == 1.0
    assert checker.status()["eu-web1"]["consecutive_failures"] == 0


def test_hanging_endpoint_is_down_after_its_timeout(receiver):
    r = receiver(lambda s, rec: rec.hang(s, rec))
    checker = HealthChecker({"x": hc(r.url, timeout_s=0.3)}, Sink())
    t0 = time.monotonic()
    samples = checker.check_once("x")
    took = time.monotonic() - t0
    assert [(s.metric, s.value) for s in samples] == [("health_up", 0.0)]
    assert 0.25 <= took < 1.5, took
    assert checker.status()["x"]["error"] == "timeout after 0.3 s"


def test_refused_connection_is_down():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    checker = HealthChecker({"x": hc(f"http://127.0.0.1:{port}/")}, Sink())
    assert [(x.metric, x.value) for x in checker.check_once("x")] == [("health_up", 0.0)]
    assert "ConnectError" in checker.status()["x"]["error"]


def test_threads_check_on_schedule_and_a_hanging_endpoint_delays_only_itself(receiver):
    good = receiver(lambda s, rec: (200, {}, b"ok"))
    bad = receiver(lambda s, rec: rec.hang(s, rec))
    sink = Sink()
    calls = {"n": 0}

    def emit(samples):
        calls["n"] += 1
        sink(samples)
        if calls["n"] == 1:
            raise RuntimeError("store hiccup")  # must not stop the checks

    checker = HealthChecker({"good": hc(good.url, interval_s=0.05), "bad": hc(bad.url, interval_s=0.05,
                                                                             timeout_s=0.5)}, emit)
    started = time.monotonic()
    checker.start()

    def counts():
        with sink.lock:
            return (sum(s.subject == "good" and s.metric == "health_up" for s in sink.samples),
                    sum(s.subject == "bad" and s.metric == "health_up" for s in sink.samples))

    # While the first check of "bad" hangs (its 0.5 s timeout), "good" keeps its 50 ms schedule; a checker
    # that waited on "bad" could not reach 3 checks of "good" before "bad" reported.
    n_good, n_bad = wait_until(lambda: (c := counts())[0] >= 3 and c, message="3 checks of good")
    assert n_bad == 0, (n_good, n_bad)
    n_good, n_bad = wait_until(lambda: (c := counts())[0] >= 8 and c[1] >= 1 and c,
                               message="8 checks of good and 1 of bad")
    elapsed = time.monotonic() - started
    t0 = time.monotonic()
    assert checker.stop(timeout=2)
    assert time.monotonic() - t0 < 1.0
    assert n_bad <= 1 + elapsed / 0.5, (n_bad, elapsed)  # each check of "bad" takes its 0.5 s timeout
    assert all(s.value == 0.0 for s in sink.of("bad", "health_up"))
    assert all(s.value == 1.0 for s in sink.of("good", "health_up"))


PROM_TEXT = """\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu}
# HELP app_memory_used_ratio Memory in use / limit.
# TYPE app_memory_used_ratio gauge
app_memory_used_ratio{{area="heap"}} 0.25
app_memory_used_ratio{{area="nonheap"}} 0.125
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 {load}
"""


def test_prometheus_scrape_maps_gauges_labels_and_counter_rates(receiver):
    state = {"cpu": 5.0, "load": 0.5}
    r = receiver(lambda s, rec: (200, {"Content-Type": "text/plain; version=0.0.4"},
                                 PROM_TEXT.format(**state).encode()))
    cfg = ScrapeConfig(url=r.url + "/metrics", metrics={
        "cpu_pct": {"name": "process_cpu_seconds_total", "rate": True, "scale": 100},
        "mem_pct": {"name": "app_memory_used_ratio", "scale": 100},
        "heap_pct": {"name": "app_memory_used_ratio", "labels": {"area": "heap"}, "scale": 100},
        "load1": "node_load1"})
    clock = Clock(1000.0)
    scraper = PromScraper({"eu-web1": cfg}, Sink(), tags={"eu-web1": {"region": "eu"}}, clock=clock)
    first = {s.metric: s.value for s in scraper.check_once("eu-web1")}
    assert first == {"mem_pct": 37.5, "heap_pct": 25.0, "load1": 0.5}  # no rate yet: no baseline
    state.update(cpu=7.0, load=2.0)
    clock.t += 10
    second = scraper.check_once("eu-web1")
    assert {s.metric: s.value for s in second} == pytest.approx(
        {"cpu_pct": 20.0, "mem_pct": 37.5, "heap_pct": 25.0, "load1": 2.0})
    assert all(s.ts == 1010.0 and s.subject == "eu-web1" and s.tags == (("region", "eu"),) for s in second)
    state.update(cpu=1.0)  # process restarted: counter reset -> no cpu sample this round
    clock.t += 10
    assert "cpu_pct" not in {s.metric for s in scraper.check_once("eu-web1")}
    assert scraper.status()["eu-web1"]["ok"] is True


def test_scrape_failures_are_recorded_not_raised(receiver):
    state = {"reply": (500, {}, b"oops")}
    r = receiver(lambda s, rec: state["reply"])
    cfg = ScrapeConfig(url=r.url, metrics={"cpu_pct": "process_cpu_percent"}, max_bytes=2048)
    scraper = PromScraper({"x": cfg}, Sink())
    assert scraper.check_once("x") == []
    assert scraper.status()["x"]["error"] == "status 500"
    state["reply"] = (200, {}, b"this is { not the text format\n")
    assert scraper.check_once("x") == []
    assert scraper.status()["x"]["error"].startswith("unparsable exposition")
    state["reply"] = (200, {}, b"# TYPE big gauge\n" + b"big 1\n" * 1000)
    assert scraper.check_once("x") == []
    assert "max_bytes" in scraper.status()["x"]["error"]
    state["reply"] = (200, {}, b"other_metric 1\n")
    assert scraper.check_once("x") == []
    st = scraper.status()["x"]
    assert st["missing"] == ["cpu_pct"] and st["failures"] == 4 and st["consecutive_failures"] == 4


def test_scraper_thread_emits_and_stops(receiver):
    r = receiver(lambda s, rec: (200, {}, b"process_cpu_percent 42\n"))
    sink = Sink()
    scraper = PromScraper({"x": ScrapeConfig(url=r.url, interval_s=0.05,
                                             metrics={"cpu_pct": "process_cpu_percent"})}, sink).start()
    wait_until(lambda: len(sink.of("x", "cpu_pct")) >= 3, timeout=3, message="3 scrapes")
    assert scraper.stop(timeout=2)
    assert [s.value for s in sink.of("x", "cpu_pct")][:3] == [42.0, 42.0, 42.0]


def test_pollers_for_a_daemon_config(cfg, receiver):
    """Today's EndpointConfig has no health/scrape fields: empty pollers that start and stop; with them set
    (as the daemon config will embed them) each endpoint is polled and tagged with its region."""
    from types import SimpleNamespace

    from pfepo.signals.health import pollers_for

    health, scrape = pollers_for(cfg.regions, Sink())
    assert health.targets == {} and scrape.targets == {}
    assert health.start().stop(1) and scrape.start().stop(1)
    r = receiver(lambda s, rec: (200, {}, b"process_cpu_percent 7\n"))
    ep = SimpleNamespace(name="eu-web1", health=hc(r.url), scrape=ScrapeConfig(url=r.url, metrics={
        "cpu_pct": "process_cpu_percent"}))
    plain = SimpleNamespace(name="eu-web2")
    regions = [SimpleNamespace(name="eu", endpoints=[ep, plain])]
    health, scrape = pollers_for(regions, Sink())
    assert list(health.targets) == ["eu-web1"] and list(scrape.targets) == ["eu-web1"]
    assert health.check_once("eu-web1")[0].tags == (("region", "eu"),)
    assert [(s.metric, s.value) for s in scrape.check_once("eu-web1")] == [("cpu_pct", 7.0)]
