"""The Operations page: overrides with the safety rules that apply, bandwidth, scaling status,
root-cause reports and the audit log with filters."""

from __future__ import annotations

import json
import time

from pfepo.console.html import Safe, h, join, table, tag
from pfepo.console.views import _explain, _when, region_names


def safety_rules(rt, service: str) -> str:
    """The safety rules an override of ``service`` is checked against (as in pfepo.api.overrides)."""
    from pfepo.policy.context import contexts_from_config
    from pfepo.policy.policyset import matches

    cur = rt.reloader.current if rt.reloader is not None else None
    contexts = [c for c in contexts_from_config(rt.cfg) if c.service == service]
    rel = [p for p in getattr(cur, "policies", ()) if p.enabled and any(matches(p, c) for c in contexts)]
    if not rel:
        return "No policy selects this service: any split with a positive sum is accepted."
    cap = min(rel, key=lambda p: p.safety.max_regions_drained)
    floor = max(p.safety.min_share_percent for p in rel)
    away = f"below {floor:g}% of the traffic" if floor > 0 else "when it gets no traffic"
    return (f"At most {cap.safety.max_regions_drained} region(s) may be shifted away (policy {cap.name!r}); a "
            f"region counts as shifted away {away}. Regions whose uplink is down do not count. An admin may "
            "force past these rules.")


def _form(action: str, csrf: str, body: Safe, can: bool, target: str, label: str) -> Safe:
    dis = "" if can else " disabled"
    note = "" if can else '<p class="muted">Needs the operate role (you have read access only).</p>'
    return Safe(f'<form method="post" action="{h(action)}" hx-post="{h(action)}" hx-target="#{h(target)}" '
                f'hx-swap="innerHTML"><input type="hidden" name="csrf" value="{h(csrf)}">'
                f"<fieldset{dis}><legend>{h(label)}</legend>{body}"
                f'<button type="submit">Apply</button></fieldset>{note}</form>'
                f'<div id="{h(target)}" class="result" role="status" aria-live="polite"></div>')


def page(rt, principal, csrf: str, q: dict) -> Safe:
    regions = region_names(rt)
    can, admin = principal.can("operate"), principal.can("admin")
    out = [tag("h2", "Overrides and bandwidth", id="overrides")]
    desired = rt.state.baseline_snapshot()
    bw = rt.state.bandwidth_snapshot()
    for s in rt.cfg.services:
        svc_regions = [r for r in regions if r in s.weights]
        inputs = join(Safe(f'<label>{h(r)} <input type="number" name="w_{h(r)}" min="0" max="100" step="any" '
                           f'value="{100 * desired[s.name].get(r, 0):.4g}" size="5"> %</label> ')
                      for r in svc_regions)
        if admin:
            inputs = Safe(inputs + '<label><input type="checkbox" name="force" value="1"> force (admin: past the '
                          "safety rules)</label> ")
        rules = Safe(f'<p class="rules">Safety rules: {h(safety_rules(rt, s.name))}</p>')
        ovr = _form(f"/ui/actions/weights/{s.name}", csrf, Safe(rules + inputs), can, f"res-w-{s.name}",
                    f"{s.name}: traffic split (shares; normalised to 100%)")
        bwin = join(Safe(f'<label>{h(r)} <input type="number" name="b_{h(r)}" min="0.1" max="1000000" step="any" '
                         f'value="{"" if bw[s.name].get(r) is None else f"{bw[s.name][r]:g}"}" size="7" '
                         f'placeholder="unmetered"> Mbit/s</label> ') for r in svc_regions)
        bwf = _form(f"/ui/actions/bandwidth/{s.name}", csrf, bwin, can, f"res-b-{s.name}",
                    f"{s.name}: bandwidth per region (empty = unmetered)")
        out.append(Safe(f'<section class="svc" aria-label="{h(s.name)}">{ovr}{bwf}</section>'))

    out.append(tag("h2", "Scaling requests", id="scaling"))
    d = rt.dispatcher
    if d is not None and d.executors:
        execs = join(tag("option", x, value=x) for x in sorted(d.executors))
        for s in rt.cfg.services:
            regs = join(tag("option", r, value=r) for r in region_names(rt) if r in s.weights)
            body = Safe(f'<label>Region <select name="region">{regs}</select></label> '
                        f'<label>Capacity <input type="number" name="desired_capacity" min="1" max="100000" step="1" '
                        f'value="2" size="6" required></label> '
                        f'<label>Application <input type="text" name="application" value="{h(s.application)}" '
                        f'size="12" maxlength="128"></label> '
                        f'<label>Executor <select name="executor">{execs}</select></label> ')
            out.append(_form(f"/ui/actions/scale/{s.name}", csrf, body, can, f"res-s-{s.name}",
                             f"{s.name}: request a scale-out (through the executors, deduplicated and rate-limited "
                             "like the planner's requests)"))
    counters = d.counters() if d is not None else {}
    out.append(table(("outcome", "count"), sorted(counters.items()), cls="compact") if counters
               else Safe("<p>No scaler configured or no request yet.</p>"))
    if rt.audit is not None:
        recs, _ = rt.audit.query_page(None, None, "scale", 20, None)
        if recs:
            out.append(table(("time", "service", "region", "capacity", "status", "requested by", "detail"),
                             [(_when(r.get("ts", 0)), r.get("service", "-"), r.get("region", "-"),
                               r.get("desired_capacity", "-"), _status(r.get("status", r.get("result", "-"))),
                               r.get("reason", "") or "-", r.get("detail", "") or "-")
                              for r in sorted(recs, key=lambda r: -r.get("ts", 0))],
                             caption="Latest scale requests (newest first)"))
    health = [p.status() for p in rt.pollers]
    if health:
        out.append(table(("poller", "state"), [(x.get("name", "-"), json.dumps(x, default=str)[:200]) for x in health],
                         caption="Health checks and scrapes", cls="compact"))

    out.append(tag("h2", "Root-cause reports", id="rootcause"))
    reports = rt.learner.reports(10) if rt.learner is not None else []
    if reports:
        out.append(join(Safe(f'<details class="report"><summary>{h(_when(rep.get("ts", 0)))} UTC - '
                             f'{h(rep.get("region", rep.get("id", "")))}: {h(rep.get("summary", rep.get("cause", "")))}'
                             f"</summary>{_explain(rep)}</details>") for rep in reports))
    else:
        out.append(Safe("<p>No failure analysed yet.</p>"))

    out.append(tag("h2", "Audit log", id="audit"))
    kinds = ("", "decision", "weight_change", "weight_override", "bandwidth_override", "bandwidth", "transition",
             "action", "scale", "scale_request", "policy_apply", "evict", "restore")
    hours = _float(q.get("hours"), 1.0)
    kind, service, region = q.get("kind") or None, q.get("service") or None, q.get("region") or None
    opts = join(tag("option", k or "any", value=k, selected=(k == (kind or ""))) for k in kinds)
    sopts = join(tag("option", s or "any", value=s, selected=(s == (service or "")))
                 for s in ("", *[x.name for x in rt.cfg.services]))
    ropts = join(tag("option", r or "any", value=r, selected=(r == (region or ""))) for r in ("", *regions))
    hopts = join(tag("option", f"{x:g} h", value=f"{x:g}", selected=(x == hours)) for x in (0.25, 1, 6, 24, 168))
    out.append(Safe(f'<form method="get" action="/ui/operations#audit" class="pick">'
                    f'<label>Kind <select name="kind">{opts}</select></label> '
                    f'<label>Service <select name="service">{sopts}</select></label> '
                    f'<label>Region <select name="region">{ropts}</select></label> '
                    f'<label>Last <select name="hours">{hopts}</select></label> '
                    f'<button type="submit">Filter</button></form>'))
    if rt.audit is not None:
        recs, complete = rt.audit.query_page(time.time() - hours * 3600, service, kind, 200, region)
        rows = [(_when(r.get("ts", 0)), r.get("kind", "-"), r.get("service", "-"), r.get("region", "-"),
                 r.get("by", "-"), Safe(f"<details><summary>{h(_brief(r))}</summary>{_explain(r)}</details>"))
                for r in sorted(recs, key=lambda r: -r.get("ts", 0))]
        out.append(table(("time (UTC)", "kind", "service", "region", "by", "record"), rows, cls="audit",
                         caption=f"{len(rows)} record(s){'' if complete else ' (incomplete: narrow the window)'}"))
    return join(out)


def _status(status: str) -> str:
    """A word and a symbol (colour is never the only carrier)."""
    sym = {"succeeded": "\u2713", "failed": "\u2717", "queued": "\u2026", "dry_run": "\u25cb"}.get(status, "\u2022")
    return f"{sym} {status}"


def _brief(r: dict) -> str:
    for k in ("reason", "summary", "result", "level"):
        if r.get(k):
            return str(r[k])[:140]
    return json.dumps({k: v for k, v in r.items() if k not in ("ts", "kind")}, default=str)[:140]


def _float(v, default: float) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return default
    return x if 0 < x <= 24 * 365 else default
