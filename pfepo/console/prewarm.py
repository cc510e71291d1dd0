"""The what-if's cold replay, done before anyone asks, out of the daemon's process.

A what-if over 24 h needs the predictor replayed over that history (``replaycache``): ~50 s of CPU the
first time (statsmodels refits, the engine's per-step work, reading the history), ~1 s once a family is
in the cache. The engine cannot be replayed much faster without changing it (it is causal and already
vectorised across series), and the daemon's own live engine is no substitute: it is fed the latest
observation every ``policy.interval_s``, not the per-step means of the stored history, and has the
endpoints' priorities set, so its state is not the replay's. So the replay is made ahead of time:

- ``Prewarm`` (daemon side) starts ``python -m pfepo.console.prewarm`` at ``nice 19`` when the daemon
  starts (``rest.console_prewarm``, default on; the config goes in on stdin), and again every
  ``every_s`` (30 min). The child has its own interpreter: its replay never holds the daemon's GIL, so it cannot
  delay OpenFlow handling. It prints its progress as JSON lines, which the what-if page shows.
- The child (``refresh``) adopts the snapshot file the previous run left in ``state_dir``
  (``PredictorCache.save``/``adopt``: pickled families, checked against ``code_identity``), replays only
  the history written since (or a new family once the saved one is too old to serve a 24 h window much
  longer), and saves the snapshot again.
- When the child's first run has finished, the daemon adopts the snapshot into the page's cache (one
  unpickle), so the first what-if after a start costs what a warm one costs. A what-if started before
  that waits for the child (its progress shows) instead of replaying the same history a second time in
  the daemon. Later refreshes are adopted only when a what-if runs or the page opens and the cache is
  more than 5 min behind the snapshot or lacks its family (``catch_up``): the unpickling holds the GIL,
  so it happens when an operator asks, not every refresh.

The child's replay of a long history starts its own worker for the history reading and the refits
(``console.fitahead``), which inherits the child's nice 19.

A restart therefore replays only the history written while the daemon was down; the first start with
history it never replayed still costs one cold replay, in the child, in the background. DuckDB allows one
process per file, so with the ``duckdb`` backend there is no child and the page's in-process warm-up
(``whatif.warm``) does the work as before.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

log = logging.getLogger("pfepo.console")
SNAPSHOT = "whatif-cache.pickle"  # in state_dir
# A refresh keeps the snapshot (what a restart starts from) this close to the present. Each one writes the
# snapshot (~105 MB for 24 h x 50 endpoints): every 30 min is ~5 GB a day, and a restart then replays at
# most 30 min + its downtime (~4 ms of CPU per 10 s step of 50 endpoints).
EVERY_S = 1800.0


def snapshot_path(cfg) -> Path:
    return Path(cfg.state_dir) / SNAPSHOT


def refresh(cfg, path: Path, hours: float = 24.0, until: float | None = None, progress=None) -> dict:
    """The child's work: adopt ``path``, bring its families to ``until`` (default now) for the policy files'
    thresholds, save it. A family that would stop serving a window of ``hours`` within half of its slack
    (``replaycache.MAX_SPAN_S``) is replaced by one starting ``hours`` ago."""
    from types import SimpleNamespace

    from pfepo.console import whatif
    from pfepo.console.replaycache import MAX_SPAN_S, PredictorCache
    from pfepo.store.writer import open_store

    t0 = time.time()
    until = t0 if until is None else until
    store = open_store(cfg.history)
    try:
        cache = PredictorCache()
        adopted = cache.adopt(path)
        cache.drop_older(until - hours * 3600 - (MAX_SPAN_S - hours * 3600) / 2)
        kept = len(cache.spans())
        whatif.warm_cache(SimpleNamespace(cfg=cfg, store=store), cache, hours, until, progress)
        size = cache.save(path)
    finally:
        store.close()
    return {"adopted": adopted, "kept": kept, "families": len(cache.spans()), "bytes": size,
            "seconds": round(time.time() - t0, 2), "spans": cache.spans()}


class Prewarm:
    """Runs ``refresh`` in a child process now and every ``every_s``, and adopts what it saved into
    ``cache`` (the what-if page's). ``pending()`` is true until the first run has been adopted (or failed):
    what-ifs wait for it meanwhile. Stop it with ``stop`` (the child is ended by its own pid)."""

    def __init__(self, cfg, cache, path: Path | None = None, every_s: float = EVERY_S, hours: float = 24.0,
                 until: float | None = None):
        self.cfg, self.cache, self.every_s, self.hours, self.until = cfg, cache, every_s, hours, until
        self.path = path or snapshot_path(cfg)
        self.state = "starting"  # running | ready | failed | stopped
        self.stage, self.progress, self.error = "", 0.0, ""
        self.runs, self.last = 0, {}  # finished runs; the last one's summary (and timings)
        self._first = threading.Event()
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._loop, name="whatif-prewarm", daemon=True)
        cache.prewarm = self

    def start(self) -> Prewarm:
        self._thread.start()
        return self

    def pending(self) -> bool:
        return not self._first.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._first.wait(timeout)

    def describe(self) -> str:
        text = {"starting": "starting", "running": self.stage or "running", "ready": "ready",
                "failed": f"failed: {self.error}", "stopped": "stopped"}[self.state]
        return f"{text} ({self.progress:.0%})" if self.state == "running" else text

    def status(self) -> dict:
        return {"state": self.state, "stage": self.stage, "progress": self.progress, "error": self.error,
                "runs": self.runs, "last": self.last, "spans": self.cache.spans()}

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # our own child, by its pid
        self._thread.join(timeout=10)
        self.state = "stopped" if self.state != "failed" else self.state
        self._first.set()

    def run_once(self) -> bool:
        """One child run and the adoption of its snapshot; True if both worked."""
        self.state, self.stage, self.progress = "running", "starting the replay process", 0.0
        cmd = [sys.executable, "-m", "pfepo.console.prewarm", "--snapshot", str(self.path), "--hours", str(self.hours)]
        if self.until is not None:
            cmd += ["--until", repr(self.until)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        t0, tail = time.time(), deque(maxlen=5)
        try:
            self._proc = proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True, env=env)
        except OSError as exc:
            return self._failed(f"cannot start the replay process: {exc}")
        done = None
        try:
            proc.stdin.write(self.cfg.model_dump_json())
            proc.stdin.close()
            for line in proc.stdout:
                msg = _json(line)
                if msg is None:
                    tail.append(line.strip())
                elif "done" in msg:
                    done = msg["done"]
                else:
                    self.stage, self.progress = str(msg.get("stage", "")), float(msg.get("p", 0.0))
        except (OSError, ValueError) as exc:
            tail.append(str(exc))
        rc = proc.wait()
        self._proc = None
        self.path.with_name(f".{self.path.name}.{proc.pid}.tmp").unlink(missing_ok=True)  # if it was ended mid-write
        if rc != 0 or done is None:
            return self._failed(f"replay process exited with {rc}: {' | '.join(t for t in tail if t)[-300:]}")
        done.update(child_wall_s=round(time.time() - t0, 2))
        self.last, self.runs = done, self.runs + 1
        if self.pending():  # the first run: adopted at once (what-ifs are waiting for it)
            self.stage = "loading the replay"
            self.catch_up(force=True)
        self.state, self.stage, self.progress, self.error = "ready", "", 1.0, ""
        log.info("what-if pre-warm: %s", done)
        self._first.set()
        return True

    def catch_up(self, force: bool = False, behind_s: float = 300.0) -> int:
        """Adopt the snapshot if it holds a family the cache lacks or has more than ``behind_s`` less of
        (called by a what-if run and the page's warm-up, so the unpickling, which holds the GIL, happens
        when an operator asks, not every refresh). Returns the families taken."""
        if not force:
            have = self.cache.spans()
            if all(any(a == sa and d >= sd - behind_s for a, d in have) for sa, sd in self.last.get("spans", [])):
                return 0
        t1, cpu = time.time(), time.process_time()
        taken = self.cache.adopt(self.path)
        self.last.update(adopt_s=round(time.time() - t1, 3), adopt_cpu_s=round(time.process_time() - cpu, 3),
                         taken=taken)
        return taken

    def _failed(self, why: str) -> bool:
        if self._stop.is_set():
            self.state, self.error = "stopped", ""
        elif self.runs:  # a refresh failed: what was adopted still serves; the next refresh tries again
            self.state, self.error = "ready", why
            log.warning("what-if pre-warm: refresh failed: %s", why)
        else:
            self.state, self.error = "failed", why
            log.warning("what-if pre-warm: %s (the page's in-process warm-up takes over)", why)
        self._first.set()
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            if self._stop.wait(self.every_s):
                break


def _json(line: str) -> dict | None:
    if not line.startswith("{"):
        return None
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def start(rt, app) -> Prewarm | None:
    """The daemon's pre-warm for the console mounted on ``app`` (``rest.console_prewarm``), or None."""
    jobs = getattr(app.state, "whatif_jobs", None)
    if jobs is None or not rt.cfg.rest.console_prewarm or rt.cfg.history.backend == "duckdb":
        return None
    live = getattr(getattr(rt, "predictor", None), "engine", None)
    if live is not None and live.classifier is not None and rt.cfg.predict.model_path:
        from pfepo.predict.classifier import resolve_model_path

        model = resolve_model_path(rt.cfg.predict.model_path)  # as whatif._settings resolves it
        if model is not None and model.is_file():  # the live engine's classifier, not a second load (~1 s)
            jobs.cache.share_classifier(model, live.classifier)
    return Prewarm(rt.cfg, jobs.cache).start()


def main(argv: list[str] | None = None) -> int:
    """The child: config (JSON) on stdin, progress as JSON lines on stdout."""
    import argparse

    try:
        os.nice(19)  # behind the daemon and everything else on the machine
    except OSError:
        pass
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    ap = argparse.ArgumentParser(prog="python -m pfepo.console.prewarm")
    ap.add_argument("--snapshot", required=True)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--until", type=float, default=None)
    args = ap.parse_args(argv)
    from pfepo.config import PfepoConfig

    cfg = PfepoConfig.model_validate_json(sys.stdin.read())
    last = [0.0]

    def progress(p: float, text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25:
            last[0] = now
            print(json.dumps({"p": round(p, 3), "stage": text}), flush=True)

    info = refresh(cfg, Path(args.snapshot), args.hours, args.until, progress)
    print(json.dumps({"done": info}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
