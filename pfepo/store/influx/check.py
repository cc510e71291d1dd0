"""The start-up check: reach the server and name the setting to fix; fall back to SQLite if allowed."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx

from pfepo.store.influx import clients
from pfepo.store.influx.store import InfluxStore
from pfepo.store.influx_config import InfluxConfig

log = logging.getLogger(__name__)

_PREFIX = "history.influxdb."


class InfluxSetupError(RuntimeError):
    """The server check at startup failed; ``setting`` names the config key to fix."""

    def __init__(self, setting: str, message: str):
        self.setting = _PREFIX + setting
        super().__init__(f"{self.setting}: {message}")


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
    with clients.http_client(cfg) as http:
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
