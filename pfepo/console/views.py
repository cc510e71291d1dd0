"""What each console page shows, rendered from the daemon's runtime (snapshots only; never blocks on a switch).

These functions read the same objects the REST API reads (``ControllerState`` snapshots, the decision
loop's last plan, the predictor's latest results, the audit log, the history store) and return HTML.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from pfepo.console.charts import legend, line_chart, stacked_bar
from pfepo.console.html import Safe, h, join, pct, status, table, tag

METRICS = ("latency_ms", "loss_pct", "utilization_pct", "jitter_ms", "error_rate_pct", "cpu_pct", "mem_pct",
           "health_up")


def _norm(w: dict) -> dict[str, float]:
    total = sum(max(0.0, float(v)) for v in w.values())
    return {k: (max(0.0, float(v)) / total if total > 0 else 0.0) for k, v in w.items()}


def region_names(rt) -> list[str]:
    return [r.name for r in rt.cfg.regions]


# --- Overview -----------------------------------------------------------------------------------------
def overview_live(rt) -> Safe:
    """The part of the overview that the SSE stream replaces (everything that changes)."""
    cfg, st = rt.cfg, rt.state
    regions = region_names(rt)
    connected, configured = st.connected_count()
    problem = rt.openflow_problem()
    plan = rt.loop.last_plan if rt.loop is not None else None
    pol = rt.reloader.status() if rt.reloader is not None else None
    facts = [
        ("Mode", Safe('<strong class="warn">DRY RUN: decisions are recorded, nothing is applied</strong>')
         if cfg.dry_run else "live: decisions are applied"),
        ("Switches connected", f"{connected} of {configured}"),
        ("OpenFlow", status(problem is None, "working", f"problem: {problem}")),
        ("Policies", f"version {pol['version']}, {len(pol['policies'])} active"
         + (f"; last edit rejected ({len(pol['last_error'])} problems)" if pol["last_error"] else "")
         if pol else "not loaded"),
        # no tick counter or clock here: the fragment is pushed only when it changes, and those change always
        ("Decision loop", (f"running, {rt.loop.errors} failed ticks" if rt.loop.ticks else "starting")
         if rt.loop else "not running"),
    ]
    out = [Safe('<dl class="facts">' + join(Safe(f"<div><dt>{h(k)}</dt><dd>{h(v)}</dd></div>")
                                              for k, v in facts) + "</dl>")]

    # switches
    rows = []
    for sw in st.snapshot_switches():
        sync = getattr(sw, "sync", None)
        rows.append((sw.name, f"{sw.dpid:#x}", status(sw.connected, "connected", "disconnected"),
                     status(bool(sync and sync.in_sync), "in sync", "not in sync") if sw.connected else "-"))
    out.append(tag("h2", "Switches", id="switches"))
    out.append(table(("switch", "dpid", "connection", "tables"), rows, cls="compact"))

    # drains and evictions
    drains = []
    evicted = st.evicted_snapshot()
    for svc, states in ((plan or {}).get("states") or {}).items():
        for r, s in states.items():
            phase = s.get("phase", "normal")
            if phase != "normal" or r in evicted.get(svc, ()):
                drains.append((svc, r, phase, f"{s.get('weight')} of {s.get('nominal')} slots",
                               "evicted" if r in evicted.get(svc, ()) else "-", s.get("note") or ""))
    out.append(tag("h2", "Active drains and evictions", id="drains"))
    out.append(Safe('<div id="drains-list">')
               + (table(("service", "region", "phase", "weight", "eviction", "note"), drains, cls="compact")
                  if drains else Safe("<p>None: every region takes its nominal share.</p>")) + Safe("</div>"))

    # services: wanted vs applied per switch
    out.append(tag("h2", "Traffic shares: wanted vs applied on each switch", id="shares"))
    out.append(legend(regions))
    srows = []
    for s in st.snapshot_services():
        name = s["name"]
        wanted = _norm(s["bucket_weights"])
        applied_bits = []
        for swname, weights in sorted(s["applied"].items()):
            data = ",".join(f"{r}:{weights.get(r, 0)}" for r in regions if r in weights)
            applied_bits.append(Safe(f'<div class="applied" id="applied-{h(name)}-{h(swname)}" '
                                     f'data-weights="{h(data)}"><span class="sw">{h(swname)}</span> '
                                     f"{stacked_bar(_norm(weights), [r for r in regions if r in weights], f'{name} applied on {swname}')}</div>"))
        svc_regions = [r for r in regions if r in s["bucket_weights"]]
        wanted_data = ",".join(f"{r}:{s['bucket_weights'][r]}" for r in svc_regions)
        down = s["down_regions"]
        srows.append((
            Safe(f'<a href="/ui/timeline?service={h(name)}">{h(name)}</a>'),
            Safe(f'<div class="wanted" id="wanted-{h(name)}" data-weights="{h(wanted_data)}">'
                 f"{stacked_bar(wanted, svc_regions, f'{name} wanted')}</div>"
                 f'<div class="src">source: {h(s["desired_source"])}{"; planner active" if s["planned"] else ""}</div>'),
            join(applied_bits) if applied_bits else Safe('<span class="muted">no switch connected</span>'),
            status(s["in_sync"], "in sync", "not in sync"),
            ", ".join(down) if down else "none",
        ))
    out.append(table(("service", "wanted (operator + planner)", "applied (read back from the switch)", "sync",
                      "regions down"), srows, cls="services"))

    # endpoints: predictions
    out.append(tag("h2", "Endpoints: failure probability and drivers", id="endpoints"))
    preds = rt.predictor.latest() if rt.predictor is not None else {}
    down_regions = st.down_regions()
    erows = []
    for r in rt.cfg.regions:
        for e in r.endpoints:
            p = preds.get(e.name)
            drivers = ", ".join(f"{d[0]} ({d[1]:.2f})" for d in (p.drivers[:3] if p else []))
            risk = p.probability if p else None
            erows.append((
                Safe(f'<a href="/ui/timeline?endpoint={h(e.name)}">{h(e.name)}</a>'), r.name,
                status(r.name not in down_regions, "up", "region down"),
                Safe(f'<span class="risk {"hi" if (risk or 0) >= 0.5 else ""}">{pct(risk, 1)}</span>'
                     f'{" (high)" if (risk or 0) >= 0.5 else ""}'),
                f"{p.horizon_s:g} s" if p else "-", p.model if p else "-", drivers or "-",
            ))
    out.append(table(("endpoint", "region", "state", "P(failure)", "within", "model", "top drivers"), erows,
                     cls="compact") if preds or erows else Safe(""))
    if rt.predictor is None:
        out.append(Safe("<p>The predictor is disabled (predict.enabled: false).</p>"))
    return join(out)


def overview(rt) -> Safe:
    return Safe('<div id="live" aria-live="off" aria-busy="false">' + overview_live(rt) + "</div>"
                '<p class="muted">Live over server-sent events, at most 1 s behind.</p>')


# --- Timeline ---------------------------------------------------------------------------------------
def _thresholds(rt, metric: str) -> list[tuple[float, str]]:
    cur = rt.reloader.current if rt.reloader is not None else None
    out = []
    for p in getattr(cur, "policies", ()):
        for c in p.criteria:
            if c.metric == metric and isinstance(c.threshold, int | float) and not isinstance(c.threshold, bool):
                out.append((float(c.threshold), f"{p.name}: {metric} {c.op} {c.threshold:g}"))
    return out


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _explain(rec: dict) -> Safe:
    """An audit record as a definition list, nested values as JSON text."""
    items = []
    for k, v in rec.items():
        text = v if isinstance(v, str | int | float) else json.dumps(v, indent=1, default=str)
        items.append(Safe(f"<div><dt>{h(k)}</dt><dd><pre>{h(text)}</pre></dd></div>"))
    return Safe('<dl class="explain">' + join(items) + "</dl>")


def timeline(rt, service: str | None, endpoint: str | None, hours: float) -> Safe:
    now = time.time()
    since = now - hours * 3600
    services = [s.name for s in rt.cfg.services]
    endpoints = [e.name for r in rt.cfg.regions for e in r.endpoints]
    opts_s = join(tag("option", s, value=s, selected=(s == service)) for s in services)
    opts_e = join(tag("option", e, value=e, selected=(e == endpoint)) for e in endpoints)
    hours_opts = join(tag("option", f"{x:g} h", value=f"{x:g}", selected=(x == hours)) for x in (0.25, 1, 6, 24))
    form = Safe(f'<form method="get" action="/ui/timeline" class="pick">'
                f'<label>Service <select name="service"><option value="">-</option>{opts_s}</select></label> '
                f'<label>or endpoint <select name="endpoint"><option value="">-</option>{opts_e}</select></label> '
                f'<label>Last <select name="hours">{hours_opts}</select></label> '
                f'<button type="submit">Show</button></form>')
    if endpoint and endpoint in endpoints:
        return Safe(form + _endpoint_timeline(rt, endpoint, since, now))
    if service and service in services:
        return Safe(form + _service_timeline(rt, service, since, now))
    return Safe(form + "<p>Pick a service or an endpoint.</p>")


def step_id(rec: dict) -> str:
    """A weight step's anchor: stable across page loads (the endpoint view links to it)."""
    return f"step-{rec.get('region')}-{round(float(rec.get('ts', 0)) * 1000)}"


def _steps(rt, service: str, since: float) -> list[dict]:
    if rt.audit is None:
        return []
    recs, _ = rt.audit.query_page(since, service, "weight_change", 500, None)
    return sorted(recs, key=lambda r: r.get("ts", 0))


def _decision_for(rt, service: str, region: str, ts: float) -> dict | None:
    """The newest decision record for (service, region) at or before a weight step: why it moved."""
    if rt.audit is None:
        return None
    recs, _ = rt.audit.query_page(ts - 600, service, "decision", 200, region)
    recs = [r for r in recs if r.get("ts", 0) <= ts + 1e-6]
    return max(recs, key=lambda r: r.get("ts", 0)) if recs else None


def _service_timeline(rt, service: str, since: float, now: float) -> Safe:
    regions = [r for r in region_names(rt) if r in rt.cfg.service(service).weights]
    rows = rt.store.range(subject=service, metric="weight", start=since, limit=20000)
    series: dict[str, list[tuple[float, float]]] = {r: [] for r in regions}
    for s in rows:
        reg = dict(s.tags).get("region")
        if reg in series and (not series[reg] or series[reg][-1][1] != s.value or s is rows[-1]):
            series[reg].append((s.ts, s.value))
    current = rt.state.bucket_weights().get(service, {})
    for r in regions:  # the line ends now, at the weight the switch should hold
        if r in current:
            series[r].append((now, float(current[r])))
    steps = _steps(rt, service, since)
    markers = [(float(st.get("ts", 0)), f"{_when(st.get('ts', 0))} {st.get('region')} {st.get('from')} -> "
                f"{st.get('to')}", f"#{step_id(st)}") for st in steps]
    first = min([p[0][0] for p in series.values() if p] + [now])
    t0 = max(since, min(first, now - 60))
    chart = line_chart(series, title=f"{service}: bucket weight per region (of {rt.cfg.openflow.weight_slots} "
                       "slots), steps marked", t0=t0, t1=now, markers=markers, step=True)
    items = []
    for st in steps:
        dec = _decision_for(rt, service, str(st.get("region")), float(st.get("ts", 0)))
        fired = [c.get("metric") for c in (dec or {}).get("criteria", ()) if c.get("fired")]
        drivers = (dec or {}).get("drivers") or ((dec or {}).get("prediction") or {}).get("drivers") or []
        summary = (f"{_when(st.get('ts', 0))} UTC - {st.get('region')}: {st.get('from')} -> {st.get('to')} slots; "
                   f"policy {st.get('policy') or (dec or {}).get('policy') or '-'}; "
                   f"criteria fired: {', '.join(map(str, fired)) or '-'}; rule: {st.get('reason', '-')}")
        body = Safe("<h4>Weight step (audit record)</h4>" + _explain(st))
        if dec:
            body = Safe(body + "<h4>Decision that drove it</h4>" + _explain(dec))
        if drivers:
            body = Safe(body + f"<p>Drivers: {h(json.dumps(drivers, default=str))}</p>")
        items.append(Safe(f'<details id="{step_id(st)}" class="step"><summary>{h(summary)}</summary>{body}</details>'))
    listing = join(items) if items else Safe("<p>No weight steps in this window.</p>")
    return Safe(chart + tag("h2", f"Weight steps ({len(steps)})") + listing)


BAND_K = 2.0  # the band is the forecast mean +- 2 sd (~95 % under the model's Gaussian errors)


def forecast_band(rt, endpoint: str, metric: str) -> list[tuple[float, float, float]]:
    """The live engine's forecast of ``metric`` for ``endpoint``: (time, low, high) from the last closed
    model step (its level) to each forecast checkpoint (mean -+ BAND_K sd, not below 0: every metric is
    a non-negative quantity; the numbers the breach
    probability is computed from). [] without an engine or a forecast for that series yet.

    Read from the predictor's engine without its worker pausing: a step closing meanwhile may mix two
    consecutive steps' numbers in one band, which a display can take."""
    eng = getattr(rt.predictor, "engine", None)
    try:
        i, j = eng.index[endpoint], eng.midx[metric]
        row = i * eng.m + j
        mean, sd = eng.bank.forecast()
        level, t0 = float(eng.bank.level[row]), (eng.block - 1) * eng.step_s
        mu, s = mean[row], sd[row]
        if not (np.isfinite(mu).all() and np.isfinite(s).all() and math.isfinite(level)):
            return []
        return [(t0, level, level)] + [(t0 + float(c) * eng.step_s, max(0.0, float(a - BAND_K * b)), float(a + BAND_K * b))
                                       for c, a, b in zip(eng.bank.steps, mu, s, strict=True)]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return []


def _endpoint_timeline(rt, endpoint: str, since: float, now: float) -> Safe:
    region = next(r.name for r in rt.cfg.regions if any(e.name == endpoint for e in r.endpoints))
    pred = rt.predictor.latest().get(endpoint) if rt.predictor is not None else None
    charts = []
    own = rt.store.range(subject=endpoint, start=since, limit=50000)
    link = rt.store.range(subject=f"uplink:{region}", start=since, limit=50000)
    by_metric: dict[str, list[tuple[float, float]]] = {}
    for s in link + own:  # the endpoint's own signals win where both exist (as in the decision loop)
        if s.metric in METRICS and math.isfinite(s.value):
            by_metric.setdefault(s.metric, []).append((s.ts, s.value))
    hours = (now - since) / 3600
    markers = [(float(st.get("ts", 0)), f"{_when(st.get('ts', 0))} {svc}: {region} {st.get('from')} -> {st.get('to')}",
                f"/ui/timeline?service={svc}&hours={hours:g}#{step_id(st)}")
               for svc in [s.name for s in rt.cfg.services if region in s.weights]
               for st in _steps(rt, svc, since) if st.get("region") == region]
    for m in METRICS:
        pts = sorted(by_metric.get(m, []))
        if not pts:
            continue
        band, what = forecast_band(rt, endpoint, m), f"forecast mean \u00b1 {BAND_K:g} sd at the checkpoints"
        if not band and pred is not None and m in pred.predicted:  # no engine to ask: last value to forecast
            last = pts[-1][1]
            fut = float(pred.predicted[m])
            band = [(now, last, last), (now + pred.horizon_s, min(last, fut), max(last, fut))]
            what = "forecast to the horizon"
        t1 = max(now, band[-1][0]) if band else now
        charts.append(line_chart({m: pts}, title=f"{endpoint}: {m} (observed"
                                 + (f", shaded: {what}" if band else "") + ")",
                                 t0=max(since, min(pts[0][0], now - 60)), t1=t1, thresholds=_thresholds(rt, m),
                                 band=band, markers=markers))
    risk = [(s.ts, s.value) for s in rt.store.range(subject=endpoint, metric="risk", start=since, limit=50000)]
    if risk:
        charts.append(line_chart({"risk": risk}, title=f"{endpoint}: risk (decision loop), weight steps marked",
                                 t0=max(since, min(risk[0][0], now - 60)), t1=now, markers=markers,
                                 thresholds=[(0.4, "act (default)")]))
    head = Safe(f"<p>Region {h(region)}. "
                + (f"P(failure within {pred.horizon_s:g} s) = {pct(pred.probability, 1)} ({h(pred.model)}); "
                   f"drivers: {h(', '.join(f'{d[0]} ({d[1]:.2f})' for d in pred.drivers[:5]) or '-')}"
                   if pred else "No prediction yet.") + "</p>")
    svcs = [s.name for s in rt.cfg.services if region in s.weights]
    links = join(Safe(f'<a href="/ui/timeline?service={h(s)}">{h(s)}</a> ') for s in svcs)
    return Safe(head + (join(charts) if charts else Safe("<p>No history in this window.</p>"))
                + Safe(f"<p>Weight steps of the services in this region: {links}</p>"))
