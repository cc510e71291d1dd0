"""Assembles the daemon: config -> state, history, REST API, and the os-ken app on the native hub."""

from __future__ import annotations

import collections
import functools
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pfepo.api.metrics import Metrics, state_families
from pfepo.config import PfepoConfig
from pfepo.controller.state import ControllerState
from pfepo.store.base import HistoryStore
from pfepo.store.writer import BatchWriter, open_store
from pfepo.telemetry.ports import PortNames

if TYPE_CHECKING:
    from pfepo.actions.dispatcher import ScaleDispatcher
    from pfepo.cluster.agent import ClusterAgent
    from pfepo.controller.audit import AuditLog
    from pfepo.controller.loop import DecisionLoop
    from pfepo.controller.predict_worker import PredictionWorker
    from pfepo.openflow.app import PfepoApp
    from pfepo.policy.reload import PolicyReloader
    from pfepo.predict.learning import FailureLearner

log = logging.getLogger("pfepo")


@dataclass
class Runtime:
    """Everything the adapters share; built once per daemon."""

    cfg: PfepoConfig
    state: ControllerState
    store: HistoryStore
    writer: BatchWriter
    metrics: Metrics
    port_names: PortNames
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))
    latest: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    app: PfepoApp | None = None  # set by the app itself when os-ken instantiates it
    loop: DecisionLoop | None = None
    reloader: PolicyReloader | None = None
    audit: AuditLog | None = None
    dispatcher: ScaleDispatcher | None = None
    predictor: PredictionWorker | None = None
    learner: FailureLearner | None = None
    cluster: ClusterAgent | None = None  # only with a cluster: section (pfepo.cluster)
    pollers: list = field(default_factory=list)  # signals.health pollers: health checks and scrapes
    # Authenticates link probes. Per process and never stored: probes never outlive the daemon that sent them.
    probe_key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ingest(self, samples: list, stored: bool = False) -> None:
        """Every measurement enters here: history (batched, off this thread; ``stored``: already written
        by the caller) and the latest values."""
        if not stored:
            self.writer.put(samples)
        latest = self.latest
        with self._lock:  # called from the OpenFlow, API and poller threads
            for s in samples:
                prev = latest.get((s.subject, s.metric))
                if prev is None or s.ts >= prev[0]:
                    latest[(s.subject, s.metric)] = (s.ts, s.value)

    @functools.cached_property
    def watched(self) -> frozenset[str]:
        """Subjects the decision loop reads (endpoint_observations): region uplinks and endpoints."""
        return frozenset({f"uplink:{r.name}" for r in self.cfg.regions}
                         | {e.name for r in self.cfg.regions for e in r.endpoints})

    def ingest_batch(self, batch) -> None:
        """A columnar batch (one switch reply): history takes it whole, in one queue entry; latest values
        are kept only for the subjects the decision loop reads, not for every port of every switch."""
        self.writer.put_batch(batch)
        watched = self.watched
        rows = [i for i, s in enumerate(batch.subjects) if s in watched]
        if not rows:
            return
        latest, ts = self.latest, batch.ts
        with self._lock:
            for i in rows:
                subject = batch.subjects[i]
                for m, v in zip(batch.metrics, batch.values[i].tolist(), strict=True):
                    prev = latest.get((subject, m))
                    if v == v and (prev is None or ts >= prev[0]):
                        latest[(subject, m)] = (ts, v)

    def observations(self, max_age_s: float = 60.0, now: float | None = None) -> dict[str, dict[str, float]]:
        """Latest value per subject and metric, no older than ``max_age_s`` at ``now`` (default: the clock)."""
        now = time.time() if now is None else now
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            items = list(self.latest.items())
        for (subject, metric), (ts, value) in items:
            if now - ts <= max_age_s:
                out.setdefault(subject, {})[metric] = value
        return out

    def polling_status(self) -> dict | None:
        """Effective poll interval, overload and event backlog of the OpenFlow side (None: not started)."""
        status = getattr(self.app, "poll_status", None)
        return status() if status is not None else None

    def openflow_problem(self) -> str | None:
        """Why the OpenFlow side is not working (event loop stopped or stalled), None when it is or absent."""
        return self.app.liveness() if self.app is not None else None

    def record_event(self, kind: str, **fields) -> None:
        ev = {"ts": time.time(), "kind": kind, **fields}
        with self._lock:
            self.events.append(ev)
        self.metrics.events.labels(kind).inc()
        log.info("event %s %s", kind, fields)


def build_runtime(cfg: PfepoConfig) -> Runtime:
    store = open_store(cfg.history)
    writer = BatchWriter(store, cfg.history.batch_size, cfg.history.flush_interval_s, cfg.history.queue_max)
    rt = Runtime(cfg, ControllerState(cfg), store, writer, Metrics(), PortNames(cfg))
    rt.metrics.add_collector(lambda: state_families(rt))
    return rt


class StartupError(Exception):
    """A problem that stops the daemon before it starts; its lines are printed as they are."""


def start_decisions(rt: Runtime) -> None:
    """Policies (hot reloaded), audit log, scalers, health pollers and the decision loop."""
    from pathlib import Path

    from pfepo.actions.dispatcher import ScaleDispatcher
    from pfepo.actions.executors import build_executors
    from pfepo.controller.audit import AuditLog
    from pfepo.controller.loop import DecisionLoop
    from pfepo.policy.reload import PolicyReloader
    from pfepo.signals.health import pollers_for

    cfg = rt.cfg
    rt.reloader = PolicyReloader(cfg.policy.paths, lambda: cfg, budget_s=cfg.policy.reload_budget_s)
    if not rt.reloader.reload():
        raise StartupError("\n".join(rt.reloader.last_error))
    try:
        executors = build_executors(cfg.executors)
    except ValueError as exc:
        raise StartupError(f"executors: {exc}") from None
    rt.audit = AuditLog(cfg.policy.audit_path or Path(cfg.state_dir) / "audit.jsonl",
                        max_bytes=cfg.policy.audit_max_bytes, max_age_s=cfg.policy.audit_max_age_s,
                        keep=cfg.policy.audit_keep)
    rt.dispatcher = ScaleDispatcher(executors, lambda rec: rt.audit.append("scale", rec),
                                    **cfg.scaling.model_dump()).start()
    rt.metrics.add_collector(rt.dispatcher.metric_families)
    rt.pollers = [p.start() for p in pollers_for(cfg.regions, rt.ingest)]
    if cfg.predict.enabled:
        rt.predictor = start_predictor(cfg)
    from pfepo.predict.learning import FailureLearner

    rt.learner = FailureLearner(rt.store, rt.audit, cfg.state_dir, settle_s=cfg.history.flush_interval_s + 1.0)
    rt.loop = DecisionLoop(rt, rt.reloader, rt.audit, predictor=rt.predictor, dispatcher=rt.dispatcher,
                           learner=rt.learner)
    rt.reloader.start_watching(cfg.policy.watch_interval_s)
    rt.reloader.install_sighup()
    rt.loop.start()
    if cfg.cluster is not None:
        start_cluster(rt)


def start_cluster(rt: Runtime) -> None:
    """Join the etcd cluster (membership, switch ownership -> OpenFlow roles, the cluster's policy)."""
    from pfepo.cluster.agent import ClusterAgent
    from pfepo.cluster.etcd import EtcdError

    try:
        rt.cluster = ClusterAgent(rt).start()
    except EtcdError as exc:
        raise StartupError(f"cluster: cannot join etcd at {rt.cfg.cluster.endpoints[0]}: {exc}") from None
    rt.metrics.add_collector(rt.cluster.metric_families)


def start_predictor(cfg: PfepoConfig):
    """The predictive engine on its worker thread; a model that cannot load means forecast-only, loudly."""
    from pfepo.controller.predict_worker import PredictionWorker
    from pfepo.predict.engine import PredictiveEngine

    engine = PredictiveEngine(horizon_s=cfg.predict.horizon_s, step_s=cfg.predict.step_s,
                              model_path=cfg.predict.model_path, trend_tau_s=cfg.predict.trend_tau_s,
                              drift=cfg.predict.drift)
    if cfg.predict.model_path and engine.classifier is None:
        log.warning("predict.model_path %s not used (%s): forecast-only predictions", cfg.predict.model_path,
                    engine.model_error)
    from pfepo.policy.context import contexts_from_config

    for ctx in contexts_from_config(cfg):
        engine.set_context(ctx.endpoint, ctx.priority)
    return PredictionWorker(engine).start()


def stop_decisions(rt: Runtime) -> None:
    for part in (rt.cluster, rt.loop, rt.learner, rt.predictor, rt.reloader, *rt.pollers, rt.dispatcher):
        if part is not None:
            try:
                part.stop()
            except Exception:
                log.exception("stopping %r failed", part)
    if rt.audit is not None:
        rt.audit.close()


def run(cfg: PfepoConfig, log_level: str = "INFO") -> int:
    """Run until SIGINT/SIGTERM. Returns the process exit code."""
    # BLAS threading made statsmodels fits ~10x slower on 2-core machines (measured): pin before numpy loads.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OSKEN_HUB_TYPE", "native")
    # One receive thread per switch share the GIL with the event thread: hand it over every 1 ms, not 5,
    # so a PortStatus read on the client-side switch's thread waits less behind busy ones (docs/scale.md).
    sys.setswitchinterval(0.001)

    from os_ken import cfg as oscfg
    from os_ken.base import app_manager

    from pfepo.api.server import ApiServer, create_app

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pfepo.startup import check_startup, openflow_args

    problem = check_startup(cfg)  # one line naming the setting, exit 2 (pfepo/startup.py)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        rt = build_runtime(cfg)
    except Exception as exc:  # e.g. InfluxSetupError naming the setting; never a traceback at startup
        named = getattr(exc, "setting", None) is not None  # InfluxSetupError's message names its setting
        print(exc if named else f"history ({cfg.history.backend}): cannot open the store: {exc}", file=sys.stderr)
        return 2
    try:
        start_decisions(rt)
    except StartupError as exc:
        print(exc, file=sys.stderr)
        stop_decisions(rt)
        rt.writer.close()
        return 2
    try:
        api = ApiServer(create_app(rt), cfg.rest.host, cfg.rest.port, tls=cfg.rest.tls)
        api.start()
    except (RuntimeError, ValueError, OSError) as exc:  # TokenError is a ValueError
        print(f"rest: {exc}", file=sys.stderr)
        stop_decisions(rt)
        rt.writer.close()
        return 2
    log.info("REST API on %s://%s:%d", api.scheme, cfg.rest.host, api.bound_port)
    from pfepo.console import prewarm

    whatif_prewarm = prewarm.start(rt, api.config.app)  # the what-if's history replay, in a nice-19 child

    oscfg.CONF(args=openflow_args(cfg.openflow), project="os_ken")
    mgr = app_manager.AppManager.get_instance()
    mgr.load_apps(["pfepo.openflow.app"])
    # The Runtime reaches the app as an os-ken context (a constructor keyword), not a module global.
    services = mgr.instantiate_apps(**mgr.create_contexts(), pfepo=rt)
    log.info("OpenFlow listening on %s:%d", cfg.openflow.listen_host, cfg.openflow.listen_port)
    from pfepo.openflow.gcpause import freeze_startup

    log.info("%d start-up objects frozen: no garbage collection walks them again", freeze_startup())

    stop = threading.Event()

    def _stop(signum, _frame):
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    rt.reloader.install_sighup()  # after os-ken started: SIGHUP reloads policies
    while not stop.is_set() and any(t.is_alive() for t in services if hasattr(t, "is_alive")):
        stop.wait(0.5)
    if not stop.is_set():  # the OpenFlow side ended by itself (e.g. its listener failed): not a clean stop
        log.error("openflow: the os-ken application stopped; exiting with status 1")
    api.stop()
    if whatif_prewarm is not None:
        whatif_prewarm.stop()
    stop_decisions(rt)
    rt.writer.flush(5)
    rt.writer.close()
    log.info("stopped")
    logging.shutdown()
    # os-ken's native-hub threads (one per switch connection, the listener) are not daemon threads and
    # have no stop API; everything we own is flushed and closed above, so leave without joining them.
    os._exit(0 if stop.is_set() else 1)
