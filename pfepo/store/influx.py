"""InfluxDB history backend: line-protocol writes through an on-disk spool, InfluxQL/Flux reads.

Writes never talk to the network on the caller's thread: ``write`` encodes line protocol and appends
it to the spool (spool.Spool); one sender thread posts the spool head and deletes it only after the
server acknowledged it. An outage or a slow server therefore only grows the spool (bounded, counted),
and batches reach the server in the order they were written. A batch whose acknowledgement was lost
is sent again; InfluxDB keys a point by (measurement, tag set, field, timestamp), so the replay
overwrites the same values and every sample is stored exactly once.

Schema (docs/history-store.md): measurement ``pfepo_metric``, tags ``subject`` + Sample.tags
(endpoint, region, service, switch, port), one float field named after the metric, ns timestamps;
events (decisions, weight changes) in ``pfepo_event`` with tag ``kind``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from pfepo.samples import Sample
from pfepo.store.influx_config import InfluxConfig
from pfepo.store.spool import Spool

log = logging.getLogger(__name__)

MEASUREMENT = "pfepo_metric"
EVENTS = "pfepo_event"
_PREFIX = "history.influxdb."


class InfluxSetupError(RuntimeError):
    """The server check at startup failed; ``setting`` names the config key to fix."""

    def __init__(self, setting: str, message: str):
        self.setting = _PREFIX + setting
        super().__init__(f"{self.setting}: {message}")


def v2_client(cfg: InfluxConfig):
    """An influxdb-client InfluxDBClient for the v2 write and Flux read paths."""
    from influxdb_client import InfluxDBClient

    return InfluxDBClient(
        url=cfg.url,
        token=cfg.token.get_secret_value() if cfg.token else "",
        org=cfg.org,
        timeout=int(cfg.timeout_s * 1000),
        verify_ssl=cfg.verify_tls,
    )


# --- line protocol ---------------------------------------------------------------------------------

# Backslashes in names become "/": influxd 1.6 stores an escaped one doubled and refuses a line whose tag
# ends in one (measured); line-protocol versions differ here. Names never need them (config names, s1:3).
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " ", "\r": " ", "\\": "/"})
_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": " ", "\r": " ", "\\": "/"})


def _key(s: str) -> str:
    return s.translate(_KEY_ESC)


def _str_field(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_ns(ts: float) -> int:
    """Seconds (float) to integer nanoseconds; a float second carries ~0.25 us around 2026."""
    return round(ts * 1e9)


class LineEncoder:
    """Samples to line protocol, one line per sample, with the tag part cached per series."""

    def __init__(self, measurement: str = MEASUREMENT, cache_max: int = 100_000):
        self.measurement = measurement.translate(_MEAS_ESC)
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._fields: dict[str, str] = {}
        self._cache_max = cache_max

    def series(self, subject: str, tags: tuple[tuple[str, str], ...]) -> str:
        key = (subject, tags)
        s = self._series.get(key)
        if s is None:
            pairs = {k: v for k, v in tags if k != "subject" and v != ""}
            pairs["subject"] = subject
            s = self.measurement + "".join(
                f",{_key(k)}={_key(str(v))}" for k, v in sorted(pairs.items()) if v
            )
            if len(self._series) >= self._cache_max:
                self._series.clear()
            self._series[key] = s
        return s

    def field(self, metric: str) -> str:
        f = self._fields.get(metric)
        if f is None:
            f = self._fields[metric] = _key(metric) + "="
        return f

    def encode(self, samples: Sequence[Sample]) -> tuple[bytes, int, int]:
        """(payload, lines, invalid): NaN/inf values have no line-protocol form and are skipped."""
        out = []
        invalid = 0
        for s in samples:
            v = float(s.value)
            if not math.isfinite(v):
                invalid += 1
                continue
            out.append(f"{self.series(s.subject, s.tags)} {self.field(s.metric)}{v!r} {round(s.ts * 1e9)}")
        return "\n".join(out).encode(), len(out), invalid


def encode_event(kind: str, ts: float, tags: Mapping[str, str], fields: Mapping[str, object]) -> str:
    """One ``pfepo_event`` line; numbers become floats so later events never conflict in type."""
    tagp = "".join(f",{_key(k)}={_key(str(v))}" for k, v in sorted({**tags, "kind": kind}.items()) if str(v))
    parts = []
    for k, v in sorted(fields.items()):
        if isinstance(v, bool):
            parts.append(f"{_key(k)}={'true' if v else 'false'}")
        elif isinstance(v, int | float):
            if math.isfinite(float(v)):
                parts.append(f"{_key(k)}={float(v)!r}")
        else:
            parts.append(f"{_key(k)}={_str_field(str(v))}")
    if not parts:
        parts.append("value=1.0")
    return f"{EVENTS}{tagp} {','.join(parts)} {to_ns(ts)}"


# --- transports (sender thread only) ----------------------------------------------------------------


class _Retry(Exception):
    """Server down, slow or refusing for a reason an operator may fix: keep the batch, try again."""


class _Reject(Exception):
    """The server refused the data itself (bad line, type conflict): retrying cannot help."""

    def __init__(self, message: str, dropped: int | None = None):
        super().__init__(message)
        self.dropped = dropped


def _classify(status: int, body: str) -> Exception:
    text = f"HTTP {status}: {body.strip()[:300]}"
    if status in (400, 422):
        m = re.search(r"dropped=(\d+)", body)
        unparsed = body.count("unable to parse")
        if m is None and not unparsed:
            return _Reject(text, None)  # all of it
        return _Reject(text, (int(m.group(1)) if m else 0) + unparsed)
    return _Retry(text)


class _V1Transport:
    def __init__(self, cfg: InfluxConfig):
        self.cfg = cfg
        self.http = _http_client(cfg)
        self.params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self.params["rp"] = cfg.retention_policy

    def post(self, payload: bytes) -> None:
        try:
            r = self.http.post("/write", params=self.params, content=payload)
        except httpx.HTTPError as e:
            raise _Retry(f"{type(e).__name__}: {e}") from e
        if r.status_code != 204 and r.status_code != 200:
            raise _classify(r.status_code, r.text)

    def close(self) -> None:
        self.http.close()


class _V2Transport:
    """influxdb-client's write API, called synchronously from the sender thread.

    Its own batching mode keeps failed batches in memory and reports them through callbacks in no
    particular order; the spool in front of this gives the bound, the order and the counts instead.
    """

    def __init__(self, cfg: InfluxConfig):
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.cfg = cfg
        self.client = v2_client(cfg)
        self.api = self.client.write_api(write_options=SYNCHRONOUS)

    def post(self, payload: bytes) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self.api.write(
                bucket=self.cfg.bucket, org=self.cfg.org, record=payload, write_precision=WritePrecision.NS
            )
        except ApiException as e:
            raise _classify(int(e.status or 0), str(e.body or e.reason)) from e
        except Exception as e:  # urllib3 connection/timeout errors and friends
            raise _Retry(f"{type(e).__name__}: {e}") from e

    def close(self) -> None:
        self.client.close()


def _http_client(cfg: InfluxConfig) -> httpx.Client:
    auth = None
    headers = {}
    if cfg.api == "v1" and cfg.username is not None:
        auth = httpx.BasicAuth(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
    if cfg.api == "v2" and cfg.token is not None:
        headers["Authorization"] = f"Token {cfg.token.get_secret_value()}"
    return httpx.Client(
        base_url=cfg.url, auth=auth, headers=headers, timeout=cfg.timeout_s, verify=cfg.verify_tls
    )


# --- readers ----------------------------------------------------------------------------------------


def _ident(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxQLReader:
    """Reads samples back through ``/query`` (InfluxDB 1.x; 2.x via DBRP mapping; 3.x)."""

    def __init__(self, cfg: InfluxConfig, measurement: str = MEASUREMENT):
        self.cfg = cfg
        self.measurement = measurement
        self.http = _http_client(cfg)

    def query(self, q: str) -> list[dict]:
        """Series of an InfluxQL statement (chunked, so large training reads stream)."""
        params = {"db": self.cfg.database, "epoch": "ns", "chunked": "true", "chunk_size": "10000"}
        if self.cfg.retention_policy:
            params["rp"] = self.cfg.retention_policy
        merged: dict[tuple, dict] = {}
        with self.http.stream("POST", "/query", params=params, data={"q": q}) as r:
            if r.status_code != 200:
                r.read()
                raise RuntimeError(f"InfluxQL query failed (HTTP {r.status_code}): {r.text.strip()[:300]}")
            for line in r.iter_lines():
                if not line.strip():
                    continue
                doc = json.loads(line)
                if "error" in doc:
                    raise RuntimeError(f"InfluxQL query failed: {doc['error']}")
                for res in doc.get("results", []):
                    if "error" in res:
                        raise RuntimeError(f"InfluxQL query failed: {res['error']}")
                    for s in res.get("series", []):
                        key = (s.get("name"), tuple(sorted(s.get("tags", {}).items())), tuple(s["columns"]))
                        if key in merged:
                            merged[key]["values"].extend(s.get("values", []))
                        else:
                            merged[key] = {**s, "values": list(s.get("values", []))}
        return list(merged.values())

    def select(self, subject=None, metric=None, start=None, end=None, limit=None, desc=False) -> list[Sample]:
        conds = []
        if subject is not None:
            conds.append(f'"subject" = {_lit(subject)}')
        if start is not None:
            conds.append(f"time >= {to_ns(start)}")
        if end is not None:
            conds.append(f"time < {to_ns(end)}")
        q = f"SELECT {_ident(metric) if metric else '*'} FROM {_ident(self.measurement)}"
        if conds:
            q += " WHERE " + " AND ".join(conds)
        q += f" GROUP BY * ORDER BY time {'DESC' if desc else 'ASC'}"
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        return series_to_samples(self.query(q))

    def subjects(self) -> list[str]:
        series = self.query(f'SHOW TAG VALUES FROM {_ident(self.measurement)} WITH KEY = "subject"')
        return sorted({row[1] for s in series for row in s.get("values", [])})

    def close(self) -> None:
        self.http.close()


def series_to_samples(series: list[dict]) -> list[Sample]:
    """InfluxQL ``GROUP BY *`` series to Samples (tags without ``subject``, empty values dropped)."""
    out: list[Sample] = []
    for s in series:
        tags = s.get("tags") or {}
        subject = tags.get("subject", "")
        t = tuple(sorted((k, v) for k, v in tags.items() if k != "subject" and v != ""))
        cols = s["columns"]
        for row in s.get("values", []):
            ts = row[0] / 1e9
            for i in range(1, len(cols)):
                v = row[i]
                if isinstance(v, int | float) and not isinstance(v, bool):
                    out.append(Sample(ts, subject, cols[i], float(v), t))
    out.sort(key=lambda x: (x.ts, x.subject, x.metric, x.tags))
    return out


def _rfc3339(ts: float) -> str:
    ns = to_ns(ts)
    return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"


def _flux_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def flux_query(
    bucket: str,
    subject=None,
    metric=None,
    start=None,
    end=None,
    limit=None,
    desc=False,
    measurement: str = MEASUREMENT,
) -> str:
    """The Flux program behind range/last (InfluxDB 2.x)."""
    lo = _rfc3339(start) if start is not None else "0"
    hi = f", stop: {_rfc3339(end)}" if end is not None else ""
    filt = [f"r._measurement == {_flux_str(measurement)}"]
    if subject is not None:
        filt.append(f"r.subject == {_flux_str(subject)}")
    if metric is not None:
        filt.append(f"r._field == {_flux_str(metric)}")
    q = (
        f"from(bucket: {_flux_str(bucket)})\n  |> range(start: {lo}{hi})\n"
        f"  |> filter(fn: (r) => {' and '.join(filt)})\n  |> group()\n"
        f'  |> sort(columns: ["_time"], desc: {"true" if desc else "false"})'
    )
    if limit is not None:
        q += f"\n  |> limit(n: {int(limit)})"
    return q


class FluxReader:
    """Reads through Flux with influxdb-client (InfluxDB 2.x; times come back with us resolution)."""

    _META = {"result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement", "subject"}

    def __init__(self, cfg: InfluxConfig):
        self.cfg = cfg
        self.client = v2_client(cfg)

    def select(self, subject=None, metric=None, start=None, end=None, limit=None, desc=False) -> list[Sample]:
        q = flux_query(self.cfg.bucket, subject, metric, start, end, limit, desc)
        out = []
        for rec in self.client.query_api().query_stream(q, org=self.cfg.org):
            v = rec.values
            tags = tuple(
                sorted((k, str(x)) for k, x in v.items() if k not in self._META and x not in (None, ""))
            )
            out.append(
                Sample(v["_time"].timestamp(), v.get("subject", ""), v["_field"], float(v["_value"]), tags)
            )
        out.sort(key=lambda x: (x.ts, x.subject, x.metric, x.tags))
        return out

    def subjects(self) -> list[str]:
        q = (
            f'import "influxdata/influxdb/schema"\nschema.tagValues(bucket: {_flux_str(self.cfg.bucket)}, '
            f'tag: "subject", predicate: (r) => r._measurement == "{MEASUREMENT}", start: 0)'
        )
        return sorted(str(r.get_value()) for r in self.client.query_api().query_stream(q, org=self.cfg.org))

    def close(self) -> None:
        self.client.close()


# --- the store --------------------------------------------------------------------------------------


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
        self._transport = _V1Transport(cfg) if cfg.api == "v1" else _V2Transport(cfg)
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
            except _Reject as e:
                self.spool.ack(last_id)
                lost = min(e.dropped, n) if e.dropped is not None else n
                self.rejected += lost
                self.sent += n - lost  # a partial write stored the rest
                self.last_error = str(e)
                log.error("history: InfluxDB rejected %d of %d samples: %s", lost, n, e)
                continue
            except _Retry as e:
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


# --- startup check ----------------------------------------------------------------------------------


def _connect_error(cfg: InfluxConfig, e: Exception) -> InfluxSetupError:
    msg = str(e)
    host = urlsplit(cfg.url).hostname
    if isinstance(e, httpx.TimeoutException):
        return InfluxSetupError("url", f"no answer from {cfg.url} within timeout_s={cfg.timeout_s}s")
    if "CERTIFICATE_VERIFY_FAILED" in msg:
        return InfluxSetupError(
            "verify_tls",
            f"TLS certificate of {cfg.url} is not trusted ({msg}); install its CA or set verify_tls: false",
        )
    if "SSL" in msg or "TLS" in msg:
        return InfluxSetupError(
            "url", f"TLS handshake with {cfg.url} failed ({msg}); does the server speak https?"
        )
    if "Name or service not known" in msg or "nodename nor servname" in msg or "-2]" in msg or "-3]" in msg:
        return InfluxSetupError("url", f"cannot resolve host {host!r} ({msg})")
    if "refused" in msg.lower():
        return InfluxSetupError(
            "url", f"cannot connect to {cfg.url}: connection refused (is the server running?)"
        )
    return InfluxSetupError("url", f"cannot reach {cfg.url}: {type(e).__name__}: {msg}")


def _request(http: httpx.Client, cfg: InfluxConfig, method: str, path: str, **kw) -> httpx.Response:
    try:
        return http.request(method, path, **kw)
    except httpx.HTTPError as e:
        raise _connect_error(cfg, e) from e


def _body(r: httpx.Response) -> str:
    try:
        doc = r.json()
        return str(doc.get("error") or doc.get("message") or doc)
    except ValueError:
        return r.text.strip()[:300]


def check_influx(cfg: InfluxConfig) -> None:
    """Raise InfluxSetupError naming the setting if the server, credentials or database are wrong."""
    with _http_client(cfg) as http:
        r = _request(http, cfg, "GET", "/ping")
        if r.status_code not in (200, 204):
            raise InfluxSetupError(
                "url", f"{cfg.url} is not an InfluxDB server (GET /ping answered {r.status_code})"
            )
        if cfg.api == "v1":
            _check_v1(http, cfg)
        else:
            _check_v2(http, cfg)
        if cfg.read_via == "influxql":
            _check_read(http, cfg)


def _check_v1(http: httpx.Client, cfg: InfluxConfig) -> None:
    params = {"db": cfg.database}
    if cfg.retention_policy:
        params["rp"] = cfg.retention_policy
    r = _request(http, cfg, "POST", "/write", params=params, content=b"")  # empty write: checks auth, db, rp
    if r.status_code in (200, 204):
        return
    body = _body(r)
    if r.status_code == 401:
        if cfg.username is None:
            raise InfluxSetupError(
                "username", f"{cfg.url} requires authentication; set username and password ({body})"
            )
        raise InfluxSetupError(
            "password",
            f"authentication failed for user {cfg.username!r}: check username and password ({body})",
        )
    if r.status_code == 403:
        raise InfluxSetupError(
            "username", f"user {cfg.username!r} may not write to {cfg.database!r} ({body})"
        )
    if "database not found" in body:
        raise InfluxSetupError(
            "database",
            f"database {cfg.database!r} not found on {cfg.url} "
            f"(create it with CREATE DATABASE, or fix the setting)",
        )
    if "retention policy not found" in body:
        raise InfluxSetupError(
            "retention_policy",
            f"retention policy {cfg.retention_policy!r} not found in database {cfg.database!r}",
        )
    raise InfluxSetupError("url", f"test write to {cfg.url}/write failed: HTTP {r.status_code} {body}")


def _check_v2(http: httpx.Client, cfg: InfluxConfig) -> None:
    r = _request(http, cfg, "GET", "/api/v2/buckets", params={"name": cfg.bucket, "org": cfg.org})
    if r.status_code == 200:
        if not r.json().get("buckets"):
            raise InfluxSetupError(
                "bucket", f"bucket {cfg.bucket!r} not found in org {cfg.org!r} on {cfg.url}"
            )
        return
    if r.status_code in (401, 403):
        raise InfluxSetupError("token", f"token refused by {cfg.url} ({_body(r)})")
    if r.status_code == 404 and "org" in _body(r).lower():
        raise InfluxSetupError("org", f"organisation {cfg.org!r} not found on {cfg.url} ({_body(r)})")
    # No bucket API (InfluxDB 3 Core, VictoriaMetrics): an empty write checks token and bucket there.
    r = _request(
        http,
        cfg,
        "POST",
        "/api/v2/write",
        params={"org": cfg.org, "bucket": cfg.bucket, "precision": "ns"},
        content=b"",
    )
    if r.status_code in (200, 204, 400):  # 400: "no data" on servers that refuse empty writes
        return
    if r.status_code in (401, 403):
        raise InfluxSetupError("token", f"token refused by {cfg.url} ({_body(r)})")
    if r.status_code == 404:
        raise InfluxSetupError(
            "bucket", f"bucket {cfg.bucket!r} (org {cfg.org!r}) not found on {cfg.url} ({_body(r)})"
        )
    raise InfluxSetupError(
        "url", f"test write to {cfg.url}/api/v2/write failed: HTTP {r.status_code} {_body(r)}"
    )


def _check_read(http: httpx.Client, cfg: InfluxConfig) -> None:
    params = {"db": cfg.database, "q": "SHOW MEASUREMENTS LIMIT 1"}
    if cfg.retention_policy:
        params["rp"] = cfg.retention_policy
    r = _request(http, cfg, "POST", "/query", data=params)
    err = (
        _body(r)
        if r.status_code != 200
        else next((res["error"] for res in r.json().get("results", []) if "error" in res), None)
    )
    if err is None:
        names = {s.get("name") for res in r.json().get("results", []) for s in res.get("series", [])}
        if names - {"measurements"}:  # VictoriaMetrics answers every /query with its database list
            raise InfluxSetupError(
                "read_via",
                f"{cfg.url}/query answers but does not run InfluxQL "
                f"(SHOW MEASUREMENTS returned {sorted(map(str, names))}); use read_via: none",
            )
        return
    if r.status_code in (401, 403):
        setting = "token" if cfg.api == "v2" else "username"
        raise InfluxSetupError(setting, f"may not read database {cfg.database!r} ({err})")
    if (r.status_code == 404 and "not found" not in err) or "unsupported path" in err:
        raise InfluxSetupError(
            "read_via",
            f"{cfg.url} has no InfluxQL /query endpoint ({err}); use read_via: flux (InfluxDB 2.x) or none",
        )
    raise InfluxSetupError(
        "database",
        f"cannot read database {cfg.database!r} through InfluxQL ({err})"
        + ("; InfluxDB 2.x needs a DBRP mapping to the bucket" if cfg.api == "v2" else ""),
    )


def open_influx_store(hcfg):
    """The InfluxDB store for ``hcfg`` (config.HistoryConfig), checked before the daemon starts.

    With ``fallback_to_embedded`` a failed check logs a loud warning and returns the embedded SQLite
    store at ``history.path`` instead of raising.
    """
    cfg: InfluxConfig = hcfg.influxdb or InfluxConfig()
    try:
        check_influx(cfg)
    except InfluxSetupError as e:
        if not cfg.fallback_to_embedded:
            raise
        from pfepo.store.sqlite import SQLiteStore

        banner = "!" * 78
        log.critical(
            "%s\nInfluxDB history backend unusable: %s\nfallback_to_embedded is set: writing history to "
            "the embedded SQLite store %s instead; nothing goes to InfluxDB until restart.\n%s",
            banner,
            e,
            hcfg.path,
            banner,
        )
        store = SQLiteStore(hcfg.path)
        store.fallback_reason = str(e)  # type: ignore[attr-defined]
        return store
    return InfluxStore(cfg)
