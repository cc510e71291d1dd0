"""HTTP clients built from the config: httpx for /write, /query and the checks; influxdb-client for v2."""

from __future__ import annotations

import httpx

from pfepo.store.influx_config import InfluxConfig


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


def http_client(cfg: InfluxConfig) -> httpx.Client:
    """httpx client with v1 basic auth or a v2 token header; used for v1 writes, InfluxQL and the checks."""
    auth = None
    headers = {}
    if cfg.api == "v1" and cfg.username is not None:
        auth = httpx.BasicAuth(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
    if cfg.api == "v2" and cfg.token is not None:
        headers["Authorization"] = f"Token {cfg.token.get_secret_value()}"
    return httpx.Client(
        base_url=cfg.url, auth=auth, headers=headers, timeout=cfg.timeout_s, verify=cfg.verify_tls
    )
