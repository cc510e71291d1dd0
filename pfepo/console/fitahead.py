"""The cold replay's history reading and ARIMA refits, done ahead in a second process (the other core).

A cold 24 h x 50 endpoints replay spends about a third of its CPU in ``fit_arima`` (statsmodels, ~500
fits of ~15-25 ms) and a sixth reading the history, on the engine's own thread. The engine cannot be
split by endpoint without changing its numbers: the refits of all series share one budget per model step
(``fits_per_step``, the series waiting longest first), so which series is refitted at which step depends
on every series. But a fit is a pure function of its input -- the series' window of raw step means
(``engine.ring``) and its start parameters (the series' previous fit, clipped as
``ForecastBank.set_params`` clips it) -- and the replay already looks fits up by that exact input
(``replaycache._memo_fit``). So a worker can compute them before the engine asks:

- the replay sends the worker the engine's refit state (ring, ``bank.seen``, ``n_fits``, ``last_fit``,
  the fitted parameters, the open block, the feature state's sampling clock) and either the plan of the
  history pieces to read (``whatif.HistoryReader.spec``: the worker opens the same store and sends each
  piece back as soon as it is read, by a reading thread -- the process's GIL switch interval is short,
  ``SWITCH_S``, so the fits do not starve it -- and the replay only runs the engine, feeding it each piece
  as it arrives) or, where a second process cannot open the store (DuckDB), each piece as the replay
  reads it;
- the worker follows the refit schedule over the pieces (``_Schedule``: the engine's ``_refit`` rule on
  the ring, the observation counts and the fit times; a step counts where its mean is finite, or held as
  ``PredictiveEngine._close`` holds a slowly sampled series, and the endpoint is not down), fits each due
  series in that order with its previous result as the start, and sends ``(input, result)`` back;
- the engine's memo takes the worker's results before fitting itself (``collect``); at a burst of
  refits that the engine reaches first, it waits (at most ``WAIT_S``) for a fit the worker has started and
  makes the others itself, sending the worker its results (``made``); the worker takes a result
  the engine has sent instead of fitting, but never waits for one (it would then be paced by the replay
  instead of running ahead on its own core).

A guess that differs from what the engine does (a clock jump, a changed engine) only means the engine's
key is not among the worker's: it fits itself, as before; a worker that dies costs time only. The worker
never decides a number, so the replay is the single-process one to the bit
(``tests/console/test_fitahead.py``). Frames on the pipes: 8-byte length, then a pickle (our own child).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading

import numpy as np

log = logging.getLogger("pfepo.console")
WAIT_S = 0.1  # the longest the replay waits for a fit the worker has started (~4 cold fits, idle)
SWITCH_S = 2e-4  # the worker's GIL switch interval (s): its reading thread beside the fitting one
MIN_STEPS = 720  # shorter replays fit in their own process: starting a worker costs ~1 s of CPU
WORKER = [sys.executable, "-m", "pfepo.console.fitahead"]  # the worker's command (its niceness appended)


def _send(fh, obj) -> None:
    data = pickle.dumps(obj, protocol=5)
    fh.write(struct.pack("<Q", len(data)))
    fh.write(data)
    fh.flush()


def _recv(fh):
    head = fh.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    data = fh.read(n)
    if len(data) < n:
        return None
    return pickle.loads(data)


def fit_key(window, start) -> tuple:
    """The memo's key of a fit: a 128-bit digest of the window's bytes and the start parameters
    (``replaycache._memo_fit``). A digest, not the 5.8 kB of a 720-step window: every key crosses the pipes
    twice, and the replay's receiving thread gets the GIL only between the engine's time slices."""
    digest = hashlib.blake2b(np.asarray(window, dtype=float).tobytes(), digest_size=16).digest()
    return (digest, None if start is None else tuple(float(v) for v in start))


class FitAhead:
    """A worker process computing the refits of ``engine`` (its ``idx_all`` endpoints are the columns of
    the pieces ``piece`` is given) before the engine reaches them. ``collect(memo)`` moves its results
    into a fit memo; ``close()`` ends it (by its own pid). Counters: ``received`` fits from the worker,
    ``used`` fits the engine took from them, ``fitted_here`` fits the engine made itself."""

    def __init__(self, engine, idx_all: np.ndarray, plan: dict | None = None, nice: int = 10):
        from pfepo.predict.engine import MAX_EMPTY_STEPS
        from pfepo.predict.forecast import MAX_COEF

        eng = engine
        self.received, self.used, self.fitted_here = 0, 0, 0
        self.pieces, self.pieces_done = 0, 0  # pieces sent, pieces the worker has followed to their end
        self.reads = plan is not None  # the worker reads the history pieces (``plan``) and sends them here
        self.expected = len(plan["bounds"]) if plan is not None else 0  # pieces it will read
        self.read_error = ""
        self._pieces: queue.SimpleQueue = queue.SimpleQueue()
        self._got: list = []
        self._mine: set = set()  # keys the worker put into the memo, not asked for yet
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._working: set = set()  # the fit the worker has started (announced), result not received yet
        self._dead = False
        self.waited = 0  # fits the engine waited for because the worker was already making them
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([*WORKER, str(int(nice))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        state = {"m": eng.m, "rows": np.asarray(idx_all, dtype=int), "window": eng.window,
                 "min_fit_obs": eng.min_fit_obs, "refit_blocks": eng.refit_blocks, "fits_per_step": eng.fits_per_step,
                 "step_s": eng.step_s, "max_gap": eng.bank.max_gap, "max_empty": MAX_EMPTY_STEPS, "max_coef": MAX_COEF,
                 "block": eng.block, "ring": eng.ring, "seen": eng.bank.seen, "n_fits": eng.n_fits,
                 "last_fit": eng.last_fit, "fitted": eng.bank.fitted, "phi": eng.bank.phi, "theta": eng.bank.theta,
                 "up": np.where(np.isfinite(eng.feat.up), eng.feat.up, 1.0), "last": eng.feat.last,
                 "last_t": eng.feat.last_t, "interval": eng.feat.interval, "read": plan}
        self._out: queue.SimpleQueue = queue.SimpleQueue()  # written by a thread: the replay never waits on the pipe
        self._reader = threading.Thread(target=self._read, name="fitahead-reader", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="fitahead-writer", daemon=True)
        self._reader.start()
        self._writer.start()
        self._out.put(state)

    def _write_loop(self) -> None:
        while (obj := self._out.get()) is not None:
            try:
                _send(self.proc.stdin, obj)
            except (OSError, ValueError):  # the worker is gone: the engine fits everything itself
                return

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            try:
                msg = _recv(out)
            except Exception:  # noqa: BLE001 - a broken pipe ends the help, not the replay
                msg = None
            if msg is None:
                self._pieces.put(None)  # a reader waiting for a piece reads it itself
                with self._cv:
                    self._dead = True
                    self._cv.notify_all()
                return
            if isinstance(msg, tuple):  # a piece of history the worker read
                self._pieces.put(msg[1:])
                continue
            with self._lock:
                if isinstance(msg, dict) and "read_failed" in msg:
                    self.read_error = msg["read_failed"]
                    self._pieces.put(None)
                elif isinstance(msg, dict) and "working" in msg:
                    self._working.add(msg["working"])
                elif isinstance(msg, dict):  # the worker is through a piece
                    self.pieces_done = msg["pieces"]
                else:
                    self._got.extend(msg)
                    self._working.difference_update(k for k, _ in msg)
                    self._cv.notify_all()

    def piece(self, ts: np.ndarray, values: np.ndarray, present: np.ndarray, up: np.ndarray) -> None:
        """A piece of history in the order the engine will be fed it (``dense_frame``'s arrays)."""
        self.pieces += 1
        self._out.put(("piece", ts, values, present, up))

    def take(self):
        """The next piece the worker read: (ts, values, present, up), () where it had no rows, or None when
        the worker stopped reading (the caller reads the piece itself and hands it over: ``piece``)."""
        got = self._pieces.get() if self.reads else None
        if got is None:
            self.reads = False
            return None
        return got if got[0] is not None else ()

    def collect(self, memo: dict) -> int:
        """Move the results received so far into ``memo``; returns how many."""
        with self._lock:
            got, self._got = self._got, []
        for key, res in got:
            if key not in memo:
                memo[key] = res
                self._mine.add(key)
        self.received += len(got)
        return len(got)

    def claim(self, key: tuple, memo: dict) -> bool:
        """The engine needs ``key`` and it is not in ``memo``: if the worker is making it, wait for it (True,
        now in ``memo``); else False: the caller fits, then sends the worker the result (``made``). So at a
        burst of refits (the first ones, the engine gets there faster than the worker) the two split them
        instead of both making each."""
        with self._cv:
            # bounded: a worker starved of CPU (a busy machine) must not stall the replay; past WAIT_S this
            # process fits it too (the same bits: a fit is a pure function of its key)
            self._cv.wait_for(lambda: key not in self._working or self._dead, timeout=WAIT_S)
            got, self._got = self._got, []
        for k, res in got:
            if k not in memo:
                memo[k] = res
                self._mine.add(k)
        self.received += len(got)
        if key in memo:
            self._mine.discard(key)
            self.waited += 1
            self.used += 1
            return True
        self.fitted_here += 1
        return False

    def made(self, key: tuple, res) -> None:
        """This process fitted ``key`` (claimed): the worker continues its chain from the result."""
        self._out.put(("done", key, res))

    def count(self, key: tuple, known: bool) -> None:
        """The engine asked for the fit ``key``: count it if it came from the worker (``used``)."""
        if key in self._mine:
            self._mine.discard(key)
            self.used += 1

    def close(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            proc.terminate()  # our own child: its remaining fits are for steps already replayed
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._out.put(None)
        self._writer.join(timeout=5)
        self._reader.join(timeout=5)
        for fh in (proc.stdin, proc.stdout):
            try:
                fh.close()
            except OSError:
                pass


class _Schedule:
    """The worker's copy of the engine's refit state, advanced block by block (``PredictiveEngine._close``:
    the raw mean into the ring, a finite fed value counts as seen, then ``_refit``'s choice)."""

    def __init__(self, st: dict):
        self.__dict__.update(st)
        self.ring = np.array(st["ring"], dtype=float)
        self.seen = np.array(st["seen"])
        self.n_fits = np.array(st["n_fits"])
        self.last_fit = np.array(st["last_fit"])
        self.fitted = np.array(st["fitted"])
        self.phi, self.theta = np.array(st["phi"], dtype=float), np.array(st["theta"], dtype=float)
        self.up = np.array(st["up"], dtype=float)
        self.last = np.isfinite(np.asarray(st["last"], dtype=float))  # FeatureState: a last value exists
        self.last_t = np.array(st["last_t"], dtype=float)
        self.interval = np.array(st["interval"], dtype=float)
        self.n = self.ring.shape[0]
        self.series = (self.rows[:, None] * self.m + np.arange(self.m)[None, :])  # (E, M) series ids

    def blocks(self, ts: np.ndarray, values: np.ndarray, present: np.ndarray, up: np.ndarray):
        """(block, mean (n,), down (n,)) of every block the engine closes for this piece, in order."""
        nan = np.full(self.n, np.nan)
        for k in range(ts.size):
            b = math.ceil(float(ts[k]) / self.step_s - 1e-9)
            if self.block is None:
                self.block = b
            if b > self.block:  # blocks without rows close empty (a long silence jumps, as the engine does)
                last, c = b - 1, self.block
                if last - c > self.max_empty:
                    for j in range(c, c + self.max_gap + 2):
                        yield j, nan, self._down()
                    c = last
                for j in range(c, last + 1):
                    yield j, nan, self._down()
                self.block = b
            mean = nan.copy()
            rows = np.flatnonzero(present[k])
            v = values[k, rows]
            ok = np.isfinite(v)
            ids = self.series[rows]
            mean[ids[ok]] = (0.0 + v[ok]) / 1.0  # the engine's sums / counts for one sample
            self.up[self.rows[rows]] = up[k, rows]
            yield b, mean, self._down()
            self.block = b + 1

    def _down(self) -> np.ndarray:
        return np.repeat(self.up == 0, self.m)

    def due(self, b: int, mean: np.ndarray, down: np.ndarray) -> np.ndarray:
        now = b * self.step_s
        obs = np.isfinite(mean)
        # a slowly sampled series holds its last value until its next sample is due (PredictiveEngine._close)
        with np.errstate(invalid="ignore"):
            hold = ~obs & self.last & (now - self.last_t <= 1.5 * np.nan_to_num(self.interval, nan=0.0) + 1e-9)
        self.ring[:, b % self.window] = mean
        self.seen = self.seen + ((obs | hold) & ~down)
        # FeatureState.update's sampling clock
        dt = np.clip(np.where(np.isfinite(self.last_t), now - self.last_t, self.step_s), 1e-3, 3600.0)
        self.interval = np.where(obs, np.where(np.isfinite(self.interval), self.interval + 0.1 * (dt - self.interval), dt),
                                 self.interval)
        self.last_t = np.where(obs, now, self.last_t)
        self.last |= obs
        seen = self.seen
        due = ((self.n_fits == 0) & (seen >= self.min_fit_obs)) | ((self.n_fits == 1) & (seen >= self.window)) | (
            (seen >= self.min_fit_obs) & (b - self.last_fit >= self.refit_blocks))
        if self.fits_per_step <= 0 or not due.any():
            return np.zeros(0, dtype=int)
        cand = np.flatnonzero(due)
        return cand[np.argsort(self.last_fit[cand], kind="stable")[: self.fits_per_step]]

    def fit(self, b: int, i: int, fit) -> tuple:
        order = (np.arange(b - self.window + 1, b + 1)) % self.window
        window = self.ring[i, order]
        start = (self.phi[i], self.theta[i]) if self.fitted[i] else None
        res = fit(window, start)
        self.last_fit[i] = b
        self.n_fits[i] += 1
        if res is not None:
            self.phi[i] = np.clip(res[0], -self.max_coef, self.max_coef)
            self.theta[i] = np.clip(res[1], -self.max_coef, self.max_coef)
            self.fitted[i] = True
        return fit_key(window, start), res


def main(argv: list[str] | None = None) -> int:
    """The worker: the engine's refit state, then pieces on stdin; (key, result) lists on stdout."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        os.nice(int(argv[0]) if argv else 10)
    except OSError:
        pass
    from pfepo.predict.forecast import fit_arima

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    state = _recv(inp)
    if state is None:
        return 0
    sched = _Schedule(state)
    memo: dict = {}  # equal inputs (a constant series, a shared uplink window) are fitted once
    pieces = 0
    inbox: queue.SimpleQueue = queue.SimpleQueue()  # read by a thread: the sender never waits on our fits
    lock = threading.Lock()

    def send(obj) -> None:
        with lock:
            _send(out, obj)

    control: queue.SimpleQueue = queue.SimpleQueue()  # the fits the main process made itself
    made: dict = {}

    def listen() -> None:
        while (msg := _recv(inp)) is not None:
            (control if msg[0] == "done" else inbox).put(msg)
        inbox.put(None)
        control.put(None)

    def drain() -> None:
        while True:
            try:
                msg = control.get_nowait()
            except queue.Empty:
                return
            if msg is not None:
                made[msg[1]] = msg[2]

    def fit(window, start):
        key = fit_key(window, start)
        drain()
        if key in memo:
            return memo[key]
        # A fit the main process is making but has not finished is made here too (not waited for): this
        # process has its own core, and waiting would pace it by the replay instead of letting it run ahead.
        if key in made:
            memo[key] = made.pop(key)
            return memo[key]
        send({"working": key})
        memo[key] = fit_arima(window, start)
        send([(key, memo[key])])
        return memo[key]

    threading.Thread(target=listen, daemon=True).start()

    def follow(msg) -> None:
        nonlocal pieces
        if msg[1] is not None:  # a piece with rows: the refits due in it, in the engine's order
            _, ts, values, present, up = msg
            for b, mean, down in sched.blocks(ts, values, present, up):
                for i in sched.due(b, mean, down):
                    sched.fit(b, int(i), fit)
        pieces += 1
        send({"pieces": pieces})

    if state.get("read"):
        # The pieces are read by a thread and sent as soon as read (the replay feeds its engine each piece as
        # it arrives), the refits follow in this thread. A short GIL switch interval keeps the reading thread
        # from being starved by the fits (at the default 5 ms it waited a switch interval at each of its
        # many short I/O calls, and the replay sat idle waiting for pieces).
        sys.setswitchinterval(SWITCH_S)

        def reader() -> None:
            for msg in _read_history(state["read"], send):
                inbox.put(msg)

        threading.Thread(target=reader, daemon=True).start()
    while (msg := inbox.get()) is not None:  # pieces read here, or by the main process (no plan, reading failed)
        follow(msg)
    return 0


def _read_history(plan: dict, send):
    """Read the pieces of ``plan`` as the main process would (``whatif.history_trace`` on the same store,
    ``dense_frame`` with the health carried from piece to piece), send each to it and yield it to be
    followed here."""
    from types import SimpleNamespace

    from pfepo.config import PfepoConfig
    from pfepo.console.whatif import history_trace
    from pfepo.evaluate.replay import dense_frame
    from pfepo.store.writer import open_store

    try:
        cfg = PfepoConfig.model_validate_json(plan["cfg"])
        store = open_store(cfg.history)
    except Exception as exc:  # noqa: BLE001 - the main process then reads the pieces itself
        send({"read_failed": f"{type(exc).__name__}: {exc}"})
        return
    try:
        rt, prev_up = SimpleNamespace(cfg=cfg, store=store), np.asarray(plan["prev_up"], dtype=float)
        for t, b in plan["bounds"]:
            trace = history_trace(rt, t, b, plan["step_s"])
            if trace is None or trace.frame.empty:
                send(("piece", None))
                yield ("piece", None)
                continue
            ts, values, present, up = dense_frame(trace.frame, plan["index"], plan["metrics"], prev_up)
            prev_up = up[-1].copy()
            send(("piece", ts, values, present, up))
            yield ("piece", ts, values, present, up)
    except Exception as exc:  # noqa: BLE001
        send({"read_failed": f"{type(exc).__name__}: {exc}"})
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
