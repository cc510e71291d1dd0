"""Posting line protocol (sender thread only): one transport per API, failures sorted into retry or reject.

v1 posts ``/write`` with httpx; v2 uses influxdb-client's write API synchronously. Either raises
:class:`Retry` (keep the batch: server down, slow, or refusing for a reason an operator may fix) or
:class:`Reject` (the data itself was refused; retrying cannot help).
"""

from __future__ import annotations

import re

import httpx

from pfepo.store.influx.clients import http_client, v2_client
from pfepo.store.influx_config import InfluxConfig


class Retry(Exception):
    """Server down, slow or refusing for a reason an operator may fix: keep the batch, try again."""


class Reject(Exception):
    """The server refused the data itself (bad line, type conflict): retrying cannot help."""

    def __init__(self, message: str, dropped: int | None = None):
        super().__init__(message)
        self.dropped = dropped


def classify(status: int, body: str) -> Exception:
    text = f"HTTP {status}: {body.strip()[:300]}"
    if status in (400, 422):
        m = re.search(r"dropped=(\d+)", body)
        unparsed = body.count("unable to parse")
        if m is None and not unparsed:
            return Reject(text, None)  # all of it
        return Reject(text, (int(m.group(1)) if m else 0) + unparsed)
    return Retry(text)


class V1Transport:
    def __init__(self, cfg: InfluxConfig):
        self.cfg = cfg
        self.http = http_client(cfg)
        self.params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self.params["rp"] = cfg.retention_policy

    def post(self, payload: bytes) -> None:
        try:
            r = self.http.post("/write", params=self.params, content=payload)
        except httpx.HTTPError as e:
            raise Retry(f"{type(e).__name__}: {e}") from e
        if r.status_code != 204 and r.status_code != 200:
            raise classify(r.status_code, r.text)

    def close(self) -> None:
        self.http.close()


class V2Transport:
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
            raise classify(int(e.status or 0), str(e.body or e.reason)) from e
        except Exception as e:  # urllib3 connection/timeout errors and friends
            raise Retry(f"{type(e).__name__}: {e}") from e

    def close(self) -> None:
        self.client.close()
