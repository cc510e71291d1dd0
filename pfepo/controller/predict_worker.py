"""Runs the predictive engine on its own thread, fed through a bounded queue.

Forecasting and scoring must never stall OpenFlow handling or the decision loop: the loop hands over
the latest observations (``submit`` never blocks; when the worker falls behind, the oldest pending
snapshot is dropped and counted) and reads the newest predictions (``latest``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

log = logging.getLogger("pfepo.predict")

# Daemon signal names -> the engine's trace metric names.
RENAME = {"health_up": "up"}


class PredictionWorker:
    def __init__(self, engine, queue_max: int = 8):
        self.engine = engine
        self._q: queue.Queue = queue.Queue(maxsize=queue_max)
        self._latest: dict = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.dropped = 0
        self.runs = 0
        self.errors = 0
        self.last_run_s = 0.0
        self._thread = threading.Thread(target=self._run, name="predictor", daemon=True)

    def start(self) -> PredictionWorker:
        self._thread.start()
        return self

    def submit(self, now: float, observations: dict[str, dict[str, float]]) -> None:
        item = (now, {ep: {RENAME.get(k, k): v for k, v in m.items()} for ep, m in observations.items()})
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def latest(self, now: float | None = None) -> dict:
        with self._lock:
            return dict(self._latest)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                now, obs = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            t0 = time.perf_counter()
            try:
                for ep, metrics in obs.items():
                    self.engine.observe(ep, now, metrics)
                preds = self.engine.predict(now)
            except Exception:  # the loop keeps its last predictions; one bad batch must not stop it
                self.errors += 1
                log.exception("prediction failed")
                continue
            with self._lock:
                self._latest = preds
            self.runs += 1
            self.last_run_s = time.perf_counter() - t0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def stats(self) -> dict:
        return {"runs": self.runs, "dropped": self.dropped, "errors": self.errors, "queued": self._q.qsize(),
                "last_run_s": self.last_run_s, **{k: v for k, v in getattr(self.engine, "stats", {}).items()}}
