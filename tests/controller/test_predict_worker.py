import threading
import time

from pfepo.controller.predict_worker import PredictionWorker
from pfepo.predict.prediction import Prediction
from tests.waiting import wait_until


class SlowEngine:
    """Stands in for the predictive engine to prove the worker's queueing (the engine has its own tests)."""

    def __init__(self):
        self.release = threading.Event()
        self.seen: list[tuple[str, float, dict]] = []
        self.stats = {}

    def observe(self, ep, ts, metrics):
        self.seen.append((ep, ts, metrics))

    def predict(self, now):
        self.release.wait(5)
        return {ep: Prediction(ep, now, 0.5, 300.0) for ep, _ts, _m in self.seen}


def test_submit_never_blocks_and_drops_oldest_when_behind():
    eng = SlowEngine()
    w = PredictionWorker(eng, queue_max=2).start()
    try:
        t0 = time.perf_counter()
        for i in range(50):
            w.submit(float(i), {"eu-1": {"latency_ms": 1.0, "health_up": 1.0}})
        assert time.perf_counter() - t0 < 0.5
        assert w.dropped >= 45
        eng.release.set()
        wait_until(w.latest, 5, "a prediction", interval=0.01)
        assert w.latest()["eu-1"].probability == 0.5
        assert eng.seen[0][2] == {"latency_ms": 1.0, "up": 1.0}  # health_up renamed for the engine
    finally:
        eng.release.set()
        w.stop()


def test_engine_error_keeps_last_predictions():
    class Broken(SlowEngine):
        def predict(self, now):
            raise RuntimeError("boom")

    w = PredictionWorker(Broken()).start()
    try:
        w.submit(1.0, {"eu-1": {}})
        wait_until(lambda: w.errors, 5, "the engine error counted", interval=0.01)
        assert w.errors == 1 and w.latest() == {}
    finally:
        w.stop()
