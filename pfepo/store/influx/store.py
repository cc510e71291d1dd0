"""InfluxStore: the HistoryStore that spools line protocol on disk and sends it from one thread.

Writes never talk to the network on the caller's thread: ``write`` encodes line protocol and appends
it to the spool (spool.Spool); one sender thread posts the spool head and deletes it only after the
server acknowledged it. An outage or a slow server therefore only grows the spool (bounded, counted),
and batches reach the server in the order they were written. A batch whose acknowledgement was lost
is sent again; InfluxDB keys a point by (measurement, tag set, field, timestamp), so the replay
overwrites the same values and every sample is stored exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from pfepo.store.influx.lineproto import LineEncoder, encode_event
from pfepo.store.influx.query import FluxReader, InfluxQLReader
from pfepo.store.influx.write import Reject, Retry, V1Transport, V2Transport
from pfepo.store.influx_config import InfluxConfig
from pfepo.store.spool import Spool
from pfepo.telemetry.samples import Sample

log = logging.getLogger(__name__)


class InfluxStore:
    """HistoryStore on an InfluxDB-compatible server, outage-safe through an on-disk spool.

    Counters (plain attributes, also ``stats()``): ``accepted`` samples handed to ``write``;
    ``sent`` acknowledged by the server; ``queued`` held back by an outage (pending when it began or
    written during it or while its backlog was replayed); ``replayed`` delivered from such a backlog
    (``queued == replayed`` once caught up, unless the policy dropped some); ``dropped`` by the spool policy;
    ``rejected`` refused by the server as invalid; ``invalid`` NaN/inf values never encoded.
    """

    def __init__(self, cfg: InfluxConfig, start: bool = True):
        self.cfg = cfg
        self._enc = LineEncoder()
        self._transport = V1Transport(cfg) if cfg.api == "v1" else V2Transport(cfg)
        if cfg.read_via == "none":
            self._reader = None
        elif cfg.read_via == "flux":
            self._reader = FluxReader(cfg)
        else:
            self._reader = InfluxQLReader(cfg)
        self.spool = Spool(cfg.spool_path, cfg.spool_max_bytes, cfg.spool_drop)
        self.accepted = self.sent = self.queued = self.replayed = self.rejected = self.invalid = 0
        self.failures = 0  # failed POSTs
        self.up = True
        self.recovering = self.spool.pending > 0  # a spool left by a previous run is a backlog too
        self.queued = self.spool.pending
        self.last_error = ""
        self._invalid_logged = -1e9
        self.max_post_bytes = 4 << 20
        self._wlock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="influx-sender", daemon=True)
        if start:
            self._thread.start()

    # HistoryStore -----------------------------------------------------------------------------
    def write(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        with self._wlock:
            payload, n, invalid = self._enc.encode(samples)
            self._append(payload, n, invalid)

    def write_event(
        self,
        kind: str,
        ts: float,
        tags: Mapping[str, str] | None = None,
        fields: Mapping[str, object] | None = None,
    ) -> None:
        """A decision, weight change or other event (Grafana annotations read ``pfepo_event``)."""
        line = encode_event(kind, ts, tags or {}, fields or {})
        with self._wlock:
            self._append(line.encode(), 1, 0)

    def range(self, subject=None, metric=None, start=None, end=None, limit=None) -> list[Sample]:
        out = self._read().select(subject, metric, start, end, limit)
        return out[:limit] if limit is not None else out

    def last(self, subject: str, metric: str | None = None, n: int = 100) -> list[Sample]:
        out = self._read().select(subject, metric, limit=n, desc=True)
        return out[-n:] if n else []

    def subjects(self) -> list[str]:
        return self._read().subjects()

    def close(self, drain_s: float | None = None) -> None:
        """Stop the sender after at most ``drain_s`` (default timeout_s) sending; the rest stays spooled."""
        if self._thread.is_alive():
            self.flush(self.cfg.timeout_s if drain_s is None else drain_s)
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=self.cfg.timeout_s + 5)
        self._transport.close()
        if self._reader is not None:
            self._reader.close()
        self.spool.close()

    # extras ------------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the spool is empty (everything acknowledged); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.spool.pending > 0:
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.01)
        return True

    def stats(self) -> dict[str, float]:
        return {
            "accepted": self.accepted,
            "sent": self.sent,
            "queued": self.queued,
            "replayed": self.replayed,
            "dropped": self.spool.dropped,
            "rejected": self.rejected,
            "invalid": self.invalid,
            "pending": self.spool.pending,
            "spool_bytes": self.spool.bytes,
            "failures": self.failures,
            "up": int(self.up),
        }

    @property
    def dropped(self) -> int:
        return self.spool.dropped

    @property
    def pending(self) -> int:
        return self.spool.pending

    @property
    def spool_bytes(self) -> int:
        return self.spool.bytes

    # internals ---------------------------------------------------------------------------------
    def _read(self):
        if self._reader is None:
            raise RuntimeError("history.influxdb.read_via is none: this server is write-only for PF-EPO")
        return self._reader

    def _append(self, payload: bytes, n: int, invalid: int) -> None:
        if invalid:
            self.invalid += invalid
            now = time.monotonic()
            if now - self._invalid_logged > 60:  # counted every time, logged at most once a minute
                self._invalid_logged = now
                log.warning("history: NaN/inf samples are not written (%d so far)", self.invalid)
        if not n:
            return
        self.accepted += n
        if not self.up or self.recovering:
            self.queued += n
        self.spool.append(payload, n)
        self._wake.set()

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            self._wake.clear()
            # While the server is down, probe with one batch so the rest stays droppable by the policy.
            item = self.spool.peek(self.max_post_bytes if self.up else 1)
            if item is None:
                with self._wlock:
                    if self.recovering and self.spool.pending == 0:
                        self.recovering = False
                        log.info("history: InfluxDB backlog replayed (%d samples so far)", self.replayed)
                self._wake.wait(0.5)
                continue
            last_id, payloads, n = item
            try:
                self._transport.post(b"\n".join(payloads))
            except Reject as e:
                self.spool.ack(last_id)
                lost = min(e.dropped, n) if e.dropped is not None else n
                self.rejected += lost
                self.sent += n - lost  # a partial write stored the rest
                self.last_error = str(e)
                log.error("history: InfluxDB rejected %d of %d samples: %s", lost, n, e)
                continue
            except Retry as e:
                self.spool.release()
                self.failures += 1
                self.last_error = str(e)
                if self.up:
                    log.warning("history: InfluxDB unavailable (%s); spooling to %s", e, self.spool.path)
                with self._wlock:
                    self.up = False
                    if not self.recovering:  # what is waiting now waits on an outage
                        self.recovering = True
                        self.queued += self.spool.pending
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception as e:  # never let the sender thread die
                self.spool.release()
                self.failures += 1
                self.last_error = repr(e)
                log.exception("history: unexpected error sending to InfluxDB")
                self._stop.wait(1.0)
                continue
            self.spool.ack(last_id)
            self.sent += n
            if self.recovering:
                self.replayed += n
            if not self.up:
                log.warning(
                    "history: InfluxDB reachable again; replaying %d spooled samples", self.spool.pending + n
                )
                self.up = True
            backoff = 0.05
