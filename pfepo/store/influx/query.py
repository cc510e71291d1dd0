"""Reading samples back: InfluxQL over ``/query`` (1.x, 2.x with DBRP, 3.x) or Flux (2.x)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pfepo.store.influx.clients import http_client, v2_client
from pfepo.store.influx.lineproto import MEASUREMENT, to_ns
from pfepo.store.influx_config import InfluxConfig
from pfepo.telemetry.samples import Sample


def _ident(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxQLReader:
    """Reads samples back through ``/query`` (InfluxDB 1.x; 2.x via DBRP mapping; 3.x)."""

    def __init__(self, cfg: InfluxConfig, measurement: str = MEASUREMENT):
        self.cfg = cfg
        self.measurement = measurement
        self.http = http_client(cfg)

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
