"""Hot reload of policies: valid edits swap in atomically, invalid ones are rejected and exposed.

The live PolicySet is immutable and replaced by one reference assignment, so readers always see a
whole set. An edit that fails validation leaves the last good set active; its problems stay in
``last_error`` (for the API and logs) until a later reload succeeds. Triggers: ``reload()`` (call it
from anywhere), SIGHUP (``install_sighup``), or a thread polling file mtimes (``start_watching``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pfepo.policy.loader import expand_paths, load_policies
from pfepo.policy.policyset import PolicySet
from pfepo.yamlconf import ConfigError

if TYPE_CHECKING:
    from pfepo.config import PfepoConfig

log = logging.getLogger(__name__)


class PolicyReloader:
    def __init__(self, paths: Sequence[str | Path], config_getter: Callable[[], PfepoConfig | None],
                 on_swap: Callable[[PolicySet], None] | None = None, budget_s: float = 5.0,
                 max_total_bytes: int = 8 * 1_048_576):
        self.paths = [str(p) for p in paths]
        # Budget: files over max_total_bytes together are refused unread (yamlconf caps each file's size,
        # depth and node count, so memory stays bounded); a load still running after budget_s is abandoned.
        self.budget_s = budget_s
        self.max_total_bytes = max_total_bytes
        self._worker: threading.Thread | None = None
        self.config_getter = config_getter
        self.on_swap = on_swap
        self.current: PolicySet | None = None
        self.version = 0  # increments on every successful swap
        self.last_error: list[str] = []  # problems of the latest failed attempt; [] after a success
        self.last_attempt: float | None = None
        self.last_success: float | None = None
        self._lock = threading.RLock()  # re-entrant: a SIGHUP may land inside reload()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signature = self._fingerprint()

    def reload(self) -> bool:
        """Load and validate; swap on success. Never raises for bad policies: returns False instead."""
        with self._lock:
            self.last_attempt = time.time()
            self._signature = self._fingerprint()
            try:
                new = self._load_within_budget()
            except ConfigError as exc:
                self.last_error = [str(p) for p in exc.problems]
                log.error("policy reload rejected, keeping version %d:\n%s", self.version, exc)
                return False
            except Exception as exc:  # noqa: BLE001 - a reload must never take the daemon down
                self.last_error = [f"unexpected error while loading policies: {exc!r}"]
                log.exception("policy reload failed, keeping version %d", self.version)
                return False
            self.current = new
            self.version += 1
            self.last_error = []
            self.last_success = self.last_attempt
            log.info("policies v%d loaded (%d policies, digest %s)", self.version, len(new.policies), new.digest)
        if self.on_swap is not None:
            self.on_swap(new)
        return True

    def _load_within_budget(self) -> PolicySet:
        """load_policies on a worker thread, abandoned (ConfigError) past ``budget_s`` or the byte budget."""
        from pfepo.yamlconf import Problem

        files, _missing = expand_paths(self.paths)
        total = 0
        for f in files:
            try:
                total += f.stat().st_size
            except OSError:
                pass
        if total > self.max_total_bytes:
            raise ConfigError([Problem(self.paths[0] if self.paths else "<policies>", 1, 1,
                                       f"policy files total {total} bytes, over the {self.max_total_bytes}-byte "
                                       "reload budget")])
        if self._worker is not None and self._worker.is_alive():
            raise ConfigError([Problem(self.paths[0] if self.paths else "<policies>", 1, 1,
                                       "an earlier policy load is still running past its time budget")])
        out: dict = {}

        def work() -> None:
            try:
                out["set"] = load_policies(self.paths, self.config_getter())
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                out["exc"] = exc

        self._worker = threading.Thread(target=work, name="policy-load", daemon=True)
        self._worker.start()
        self._worker.join(self.budget_s)
        if self._worker.is_alive():
            raise ConfigError([Problem(self.paths[0] if self.paths else "<policies>", 1, 1,
                                       f"policy load took longer than {self.budget_s:g} s; abandoned")])
        if "exc" in out:
            raise out["exc"]
        return out["set"]

    def status(self) -> dict:
        """For the REST API: which set is live and why the last edit (if any) was refused."""
        cur = self.current
        return {"version": self.version, "digest": cur.digest if cur else None, "last_error": list(self.last_error),
                "last_attempt": self.last_attempt, "last_success": self.last_success,
                "policies": cur.summary()["policies"] if cur else []}

    # -- triggers
    def request(self) -> None:
        """Ask for a reload soon (safe from a signal handler: only sets an event)."""
        if self._thread is not None and self._thread.is_alive():
            self._wake.set()
        else:
            self.reload()

    def install_sighup(self) -> None:
        """SIGHUP -> reload (main thread only, as Python requires for signal handlers)."""
        signal.signal(signal.SIGHUP, lambda signum, frame: self.request())

    def changed(self) -> bool:
        return self._fingerprint() != self._signature

    def start_watching(self, interval_s: float = 2.0) -> threading.Thread:
        """Poll file mtimes/sizes (and added/removed files) every ``interval_s``; reload on change."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        if self.last_attempt is None:
            self.reload()  # first load now, so watching never starts from "no policies" by accident
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, args=(interval_s,), name="policy-watch", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _watch(self, interval_s: float) -> None:
        while not self._stop.is_set():
            woke = self._wake.wait(interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            if woke or self.changed():
                self.reload()

    def _fingerprint(self) -> tuple:
        files, missing = expand_paths(self.paths)
        sig = []
        for f in files:
            try:
                st = f.stat()
                sig.append((str(f), st.st_mtime_ns, st.st_size))
            except OSError:
                sig.append((str(f), None, None))
        return tuple(sig), tuple(str(p) for p in missing)
