"""configs/grafana-dashboard.json: every InfluxQL query runs against a real influxd and returns data."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from pfepo.store.influx import InfluxStore
from pfepo.telemetry.samples import Sample

DASHBOARD = Path(__file__).resolve().parents[2] / "configs" / "grafana-dashboard.json"
MACROS = {"$timeFilter": "time > now() - 1h", "$__interval": "10s", "$region": "r0"}


def queries(dash: dict) -> dict[str, str]:
    out = {}
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out[f"panel {p['title']}/{t['refId']}"] = t["query"]
    for a in dash["annotations"]["list"]:
        if a.get("query"):
            out[f"annotation {a['name']}"] = a["query"]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            out[f"variable {v['name']}"] = v["query"]
    return out


def substitute(q: str) -> str:
    for k in sorted(MACROS, key=len, reverse=True):
        q = q.replace(k, MACROS[k])
    assert not re.search(r"\$\w", q), f"unsubstituted Grafana variable in {q}"
    return q


def test_dashboard_shape():
    dash = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for word in ("weights", "risk", "latency", "loss", "utilisation"):
        assert word in titles
    assert any(p.get("repeat") == "region" for p in dash["panels"])  # a row per region
    names = {a["name"] for a in dash["annotations"]["list"]}
    assert {"Decisions", "Weight changes"} <= names
    assert all(t.get("rawQuery") for p in dash["panels"] for t in p.get("targets", []))


@pytest.mark.influx
def test_every_query_returns_data(influxd, v1_cfg):
    now = time.time()
    store = InfluxStore(v1_cfg)
    samples = []
    for i in range(60):
        ts = now - 600 + i * 10
        for region, eps in (("r0", ("ep1", "ep2")), ("r1", ("ep3",))):
            weight = 32.0 + (i % 3) if region == "r0" else 99.0  # r1 values must not show in r0 panels
            samples.append(Sample(ts, "web", "weight", weight, (("region", region), ("service", "web"))))
            for ep in eps:
                tags = (("endpoint", ep), ("region", region), ("service", "web"))
                samples += [
                    Sample(ts, ep, "risk", i / 60, tags),
                    Sample(ts, ep, "latency_ms", 20.0 + i, tags),
                    Sample(ts, ep, "loss_pct", i % 5, tags),
                ]
            samples.append(
                Sample(
                    ts,
                    f"s-{region}:1",
                    "utilization_pct",
                    40.0 + i % 7,
                    (("port", "1"), ("region", region), ("switch", f"s-{region}")),
                )
            )
    store.write(samples)
    store.write_event(
        "decision",
        now - 300,
        {"region": "r0", "endpoint": "ep1", "action": "shift"},
        {"text": "risk 0.82 (latency_ms): shift 8/64 of web from r0 to r1", "risk": 0.82},
    )
    store.write_event(
        "weights", now - 290, {"service": "web"}, {"text": "r0 32 -> 24, r1 32 -> 40", "r0": 24, "r1": 40}
    )
    assert store.flush(10)
    store.close()

    qs = queries(json.loads(DASHBOARD.read_text()))
    assert len(qs) >= 8
    for name, q in qs.items():
        res = influxd.query(substitute(q), db="pfepo")["results"][0]
        assert "error" not in res, f"{name}: {res.get('error')}"
        values = [v for s in res.get("series", []) for row in s["values"] for v in row[1:] if v is not None]
        assert values, f"{name} returned no data: {q}"
        if name.startswith("panel"):  # filtered to region r0
            assert 99.0 not in values
            subjects = {s.get("tags", {}).get("subject") for s in res["series"]} - {None}
            assert subjects <= {"ep1", "ep2", "s-r0:1"}, f"{name}: {subjects}"
