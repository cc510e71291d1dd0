"""Console routes under /ui: pages, the live overview stream, operator actions and the what-if.

Reads need a read token, actions the operate role, decided by the REST API's own ``Guard`` (the
session cookie is turned into the same bearer header, see session.py). Actions are not reimplemented:
they are the REST calls themselves, made in-process with the operator's token, so validation, safety
rules, persistence and audit are the API's.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from pfepo.api.auth import ANONYMOUS, TokenTable
from pfepo.api.guard import host_of
from pfepo.console import operations, views, whatif
from pfepo.console.charts import legend, line_chart
from pfepo.console.html import Safe, h, join, page, table, tag
from pfepo.console.session import Sessions, cookie_header, csrf_ok

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
MAX_FORM_BYTES = 1_100_000  # a policy file may be 1 MiB (yamlconf.MAX_BYTES), form-encoded
STREAM_PERIOD_S = 0.5  # overview pushed at most this long after a change (the issue asks <= 1 s)
STREAM_MAX_S = 300.0  # each stream ends after this; EventSource reconnects at once (no stuck shutdown)


def _html(body: str, status: int = 200, extra: dict | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(extra or {})})


def _session(request: Request):
    return request.scope.get("state", {}).get("console_session")


def _principal(request: Request):
    return getattr(request.state, "principal", None) or ANONYMOUS


def _hx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def _form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str] | None:
    """URL-encoded form fields (first value each); None when the body is over ``limit``."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    q = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=2000)
    return {k: v[0] for k, v in q.items()}


LOGIN_STYLE = ("body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#111}"
               "label,input,button{display:block;font:inherit;margin:.4rem 0}input{width:100%;padding:.4rem}"
               "button{padding:.4rem 1rem}.err{color:#900;font-weight:bold}"
               ":focus{outline:3px solid #1a5fb4;outline-offset:2px}")


def login_page(message: str = "") -> str:
    msg = f'<p class="err" role="alert">{h(message)}</p>' if message else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in - PF-EPO</title><link rel="icon" href="data:,">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{LOGIN_STYLE}</style></head><body><main><h1>PF-EPO console</h1>{msg}"
            f'<form method="post" action="/ui/login"><label for="token">API token (read, operate or admin)</label>'
            f'<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
            f'<button type="submit">Log in</button></form>'
            f"<p>The token is the one the REST API takes (rest.tokens). It is kept on the server; the browser "
            f"gets an HttpOnly session cookie.</p></main></body></html>")


def build_router(rt, tokens: TokenTable, sessions: Sessions, jobs: whatif.Jobs) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    open_reads = rt.cfg.rest.open_reads

    def render(request: Request, title: str, active: str, body: Safe, live: str | None = None,
               status: int = 200) -> HTMLResponse:
        p, s = _principal(request), _session(request)
        return _html(page(title, active, body, who=p.name, role=p.role, csrf=s.csrf if s else "", live=live),
                     status)

    @r.get("/ui")
    def root():
        return RedirectResponse("/ui/overview", status_code=303)

    @r.get("/ui/login")
    def login_form():
        return _html(login_page())

    @r.post("/ui/login")
    async def login(request: Request):
        origin = request.headers.get("origin")
        if origin and origin != "null" and host_of(urlsplit(origin).netloc) != host_of(request.headers.get("host", "")):
            return _html(login_page("Cross-site login refused."), 403)
        form = await _form(request, 4096)
        token = (form or {}).get("token", "").strip()
        principal = tokens.lookup(f"Bearer {token}") if token else None
        client = request.client.host if request.client else "?"
        if principal is None:
            if rt.audit is not None:
                rt.audit.append("console_login", {"result": "unknown token", "client": client, "source": "console"})
            return _html(login_page("Unknown token."), 401)
        s = sessions.create(token, principal)
        if rt.audit is not None:
            rt.audit.append("console_login", {"result": "ok", "by": principal.name, "role": principal.role,
                                              "client": client, "source": "console"})
        secure = request.url.scheme == "https"
        return Response(status_code=303, headers={
            "Location": "/ui/overview", "Cache-Control": "no-store",
            "Set-Cookie": cookie_header(s.sid, secure, int(sessions.ttl_s))})

    @r.post("/ui/logout")
    async def logout(request: Request):
        form = await _form(request, 4096) or {}
        s = _session(request)
        if s is not None and csrf_ok(s, form.get("csrf")):
            sessions.drop(s.sid)
        return Response(status_code=303, headers={"Location": "/ui/login",
                                                  "Set-Cookie": cookie_header("", False, 0)})

    @r.get("/ui/overview")
    def overview(request: Request):
        return render(request, "Overview", "overview", views.overview(rt), live="/ui/stream/overview")

    @r.get("/ui/overview/live")
    def overview_fragment():
        return _html(views.overview_live(rt))

    live = {"t": -1e9, "frag": ""}
    live_lock = threading.Lock()

    def live_fragment() -> str:
        """One render per stream period shared by every open tab (the daemon's CPU is shared with OpenFlow)."""
        with live_lock:
            now = time.monotonic()
            if now - live["t"] >= STREAM_PERIOD_S * 0.8:
                live["frag"], live["t"] = views.overview_live(rt), now
            return live["frag"]

    @r.get("/ui/stream/overview")
    async def stream(request: Request):
        async def events():
            yield "retry: 1000\n\n"
            last, started, beat = None, time.monotonic(), time.monotonic()
            closing = getattr(request.app.state, "closing", None)
            while time.monotonic() - started < STREAM_MAX_S:
                if await request.is_disconnected() or (closing is not None and closing.is_set()):
                    return
                frag = await run_in_threadpool(live_fragment)
                if frag != last:
                    last = frag
                    yield "event: overview\n" + "".join(f"data: {line}\n" for line in frag.split("\n")) + "\n"
                    beat = time.monotonic()
                elif time.monotonic() - beat > 15:
                    yield ": keep-alive\n\n"
                    beat = time.monotonic()
                await asyncio.sleep(STREAM_PERIOD_S)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @r.get("/ui/timeline")
    def timeline(request: Request, service: str = "", endpoint: str = "", hours: float = 1.0):
        hours = hours if 0 < hours <= 168 else 1.0
        return render(request, "Timeline", "timeline", views.timeline(rt, service or None, endpoint or None, hours))

    @r.get("/ui/operations")
    def ops(request: Request):
        s = _session(request)
        body = operations.page(rt, _principal(request), s.csrf if s else "", dict(request.query_params))
        return render(request, "Operations", "operations", body)

    async def _rest(request: Request, method: str, path: str, payload: dict) -> httpx.Response:
        """The REST API itself, in-process, with the caller's own bearer header (the Guard decides)."""
        transport = httpx.ASGITransport(app=request.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=10) as c:
            return await c.request(method, path, json=payload,
                                   headers={"authorization": request.headers.get("authorization", "")})

    def _outcome(request: Request, ok: bool, text: str, status: int, back: str) -> HTMLResponse:
        frag = Safe(f'<p class="{"ok" if ok else "bad"}">{"&#10003; Done" if ok else "&#10007; Refused"}: '
                    f"{h(text)}</p>")
        if _hx(request):
            return _html(frag, status)
        return render(request, "Operations", "operations",
                      Safe(frag + f'<p><a href="{h(back)}">Back</a></p>'), status=status)

    def _detail(resp: httpx.Response) -> str:
        try:
            return str(resp.json().get("detail", resp.text))
        except ValueError:
            return resp.text[:500]

    @r.post("/ui/actions/weights/{name}")
    async def act_weights(name: str, request: Request):
        form = await _form(request, 65536) or {}
        if not csrf_ok(_session(request), form.get("csrf")):
            return _outcome(request, False, "stale form (CSRF token); reload the page", 403, "/ui/operations")
        weights = {}
        for k, v in form.items():
            if k.startswith("w_") and v.strip() != "":
                try:
                    weights[k[2:]] = float(v)
                except ValueError:
                    return _outcome(request, False, f"{k[2:]}: {v!r} is not a number", 422, "/ui/operations")
        payload: dict = {"weights": weights}
        if form.get("force"):
            payload["force"] = True
        resp = await _rest(request, "PUT", f"/api/v1/services/{name}/weights", payload)
        if resp.status_code == 200:
            bw = resp.json().get("bucket_weights", {})
            return _outcome(request, True, f"{name} now " + ", ".join(f"{k} {v}" for k, v in bw.items())
                            + " slots", 200, "/ui/operations")
        return _outcome(request, False, _detail(resp), resp.status_code, "/ui/operations")

    @r.post("/ui/actions/bandwidth/{name}")
    async def act_bandwidth(name: str, request: Request):
        form = await _form(request, 65536) or {}
        if not csrf_ok(_session(request), form.get("csrf")):
            return _outcome(request, False, "stale form (CSRF token); reload the page", 403, "/ui/operations")
        mbps: dict = {}
        for k, v in form.items():
            if k.startswith("b_"):
                try:
                    mbps[k[2:]] = float(v) if v.strip() else None
                except ValueError:
                    return _outcome(request, False, f"{k[2:]}: {v!r} is not a number", 422, "/ui/operations")
        resp = await _rest(request, "PUT", f"/api/v1/services/{name}/bandwidth", {"bandwidth_mbps": mbps})
        if resp.status_code == 200:
            return _outcome(request, True, f"{name} bandwidth " + json.dumps(resp.json().get("bandwidth_mbps")),
                            200, "/ui/operations")
        return _outcome(request, False, _detail(resp), resp.status_code, "/ui/operations")

    @r.post("/ui/actions/scale/{name}")
    async def act_scale(name: str, request: Request):
        form = await _form(request, 4096) or {}
        if not csrf_ok(_session(request), form.get("csrf")):
            return _outcome(request, False, "stale form (CSRF token); reload the page", 403, "/ui/operations")
        try:
            cap = int(form.get("desired_capacity", ""))
        except ValueError:
            return _outcome(request, False, "capacity must be a whole number", 422, "/ui/operations")
        payload = {"region": form.get("region", ""), "desired_capacity": cap}
        for k in ("executor", "application"):
            if form.get(k, "").strip():
                payload[k] = form[k].strip()
        resp = await _rest(request, "POST", f"/api/v1/services/{name}/scale", payload)
        if resp.status_code == 200:
            st = resp.json().get("status", "?")
            ok = st in ("queued", "deduplicated", "dry_run")
            return _outcome(request, ok, f"{name}/{payload['region']}: capacity {cap} -> {st} (outcome under "
                            "Latest scale requests once the executor answers)", 200 if ok else 409, "/ui/operations")
        return _outcome(request, False, _detail(resp), resp.status_code, "/ui/operations")

    # --- what-if -----------------------------------------------------------------------------------
    def _target(name: str | None) -> Path | None:
        files = whatif.policy_files(rt.cfg)
        return next((f for f in files if f.name == name), files[0] if files and not name else None)

    @r.get("/ui/whatif")
    def whatif_page(request: Request, file: str = ""):
        whatif.warm(rt, jobs.cache)
        files = whatif.policy_files(rt.cfg)
        target = _target(file or None)
        text = target.read_text(encoding="utf-8", errors="replace") if target else ""
        opts = join(tag("option", f.name, value=f.name, selected=(f == target)) for f in files)
        hours = join(tag("option", f"{x:g} h", value=f"{x:g}", selected=(x == 1)) for x in (0.25, 1, 6, 24))
        body = Safe(
            f'<form method="get" action="/ui/whatif" class="pick"><label>Policy file <select name="file">{opts}'
            f'</select></label> <button type="submit">Load</button></form>'
            f'<form method="post" action="/ui/whatif/run" hx-post="/ui/whatif/run" hx-target="#whatif-result" '
            f'enctype="application/x-www-form-urlencoded">'
            f'<input type="hidden" name="file" value="{h(target.name if target else "")}">'
            f'<label for="policy">Policy YAML ({h(target.name if target else "no policy file")}): edit or paste'
            f'</label><textarea id="policy" name="policy" rows="22" cols="100" spellcheck="false">{h(text)}</textarea>'
            f'<p><label for="upload">or upload a file</label> <input id="upload" type="file" accept=".yaml,.yml" '
            f'data-into="policy"></p>'
            f'<label>Replay the last <select name="hours">{hours}</select> of history</label> '
            f'<button type="submit">Validate and replay</button></form>'
            f'<div id="whatif-result" role="region" aria-live="polite" aria-label="What-if result"></div>')
        return render(request, "What-if", "whatif", Safe(_prewarm_html(jobs.cache.prewarm) + str(body)))

    @r.get("/ui/whatif/prewarm")
    def whatif_prewarm():
        return _html(_prewarm_html(jobs.cache.prewarm))

    @r.post("/ui/whatif/run")
    async def whatif_run(request: Request):
        # Self-authenticated in the Guard (a what-if changes nothing, so a read token may run it): check here.
        principal = tokens.lookup(request.headers.get("authorization")) or (ANONYMOUS if open_reads else None)
        if principal is None:
            return _html("<p>missing or unknown token</p>", 401)
        form = await _form(request)
        if form is None:
            return _html("<p>policy over 1 MiB</p>", 413)
        if not csrf_ok(_session(request), form.get("csrf") or request.headers.get("x-csrf-token")):
            return _html('<p class="bad">Stale form (CSRF token): reload the page.</p>', 403)
        target = _target(form.get("file") or None)
        if target is None:
            return _html('<p class="bad">No such policy file in policy.paths.</p>', 422)
        text = form.get("policy", "")
        try:
            hours = min(max(float(form.get("hours", "1")), 0.01), 24.0)
        except ValueError:
            hours = 1.0
        ps, problems, folder = await run_in_threadpool(whatif.validate, rt.cfg, target, text)
        if ps is None:
            return _html(_problems_html(text, problems), 422)
        if jobs.busy():
            shutil.rmtree(folder, ignore_errors=True)
            return _html('<p class="bad">Another what-if is running; try again when it has finished.</p>', 429)

        def work(job):
            try:
                return whatif.replay_policy(rt, ps, folder / target.name, hours, job, cache=jobs.cache)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        job = jobs.start(work)
        job.file, job.text = target.name, text  # what "apply" will write, exactly what was replayed
        return _html(_job_html(job, principal, _session(request)))

    @r.get("/ui/whatif/job/{jid}")
    def whatif_job(jid: str, request: Request):
        job = jobs.get(jid)
        if job is None:
            return _html("<p>unknown what-if run</p>", 404)
        return _html(_job_html(job, _principal(request), _session(request)))

    @r.post("/ui/whatif/apply/{jid}")
    async def whatif_apply(jid: str, request: Request):
        form = await _form(request, 4096) or {}
        if not csrf_ok(_session(request), form.get("csrf")):
            return _html('<p class="bad">Stale form (CSRF token): reload the page.</p>', 403)
        job = jobs.get(jid)
        if job is None or not job.done or job.error:
            return _html('<p class="bad">Nothing to apply: run the what-if first.</p>', 409)
        if rt.reloader is None:
            return _html('<p class="bad">Policies are not enabled in this daemon.</p>', 409)
        target = _target(job.file)
        if target is None:
            return _html('<p class="bad">The policy file is gone from policy.paths.</p>', 409)
        ok, problems = await run_in_threadpool(whatif.apply_file, rt.reloader, target, job.text)
        who = _principal(request)
        import hashlib

        rec = {"file": str(target), "sha256": hashlib.sha256(job.text.encode()).hexdigest(), "by": who.name,
               "role": who.role, "source": "console", "result": "applied" if ok else "refused by reload",
               "version": rt.reloader.version, "problems": problems[:20]}
        if rt.audit is not None:
            rt.audit.append("policy_apply", rec)
        rt.record_event("policy_apply", by=who.name, file=target.name, result=rec["result"])
        if ok:
            return _html(f'<p class="ok">&#10003; Applied: {h(target.name)} is live as policy version '
                         f"{rt.reloader.version} (audited).</p>")
        return _html(f'<p class="bad">&#10007; The reload refused it; the previous file was restored.</p>'
                     f"<ul>{join(tag('li', p) for p in problems)}</ul>", 422)

    return r


def _problems_html(text: str, problems: list) -> str:
    """Each problem with its line and column, and the line itself with a caret under the column."""
    lines = text.splitlines()
    items = []
    for p in problems:
        src = lines[p.line - 1] if 0 < p.line <= len(lines) else ""
        caret = " " * max(0, p.col - 1) + "^"
        items.append(Safe(f'<li class="problem" data-line="{p.line}" data-col="{p.col}">'
                          f"<strong>{h(p.file)}:{p.line}:{p.col}</strong>: {h(p.message)}"
                          f'<pre class="src">{h(f"{p.line:>4} | {src}")}\n{h("     | " + caret)}</pre></li>'))
    return (f'<div class="bad" role="alert"><p>&#10007; Invalid policy: {len(problems)} problem(s); nothing '
            f"was replayed or applied.</p><ol>{join(items)}</ol></div>")


def _prewarm_html(pre) -> str:
    """The background replay's state (``console.prewarm``), polled every 2 s while it prepares the first
    replay; empty when there is none (the page's in-process warm-up then does the work)."""
    if pre is None:
        return ""
    spans = pre.cache.spans()
    held = "; ".join(f"{time.strftime('%H:%M', time.gmtime(a))} to {time.strftime('%H:%M', time.gmtime(d))} UTC"
                     for a, d in spans)
    if pre.pending():
        p = pre.progress
        return (f'<div id="whatif-prewarm" class="muted" hx-get="/ui/whatif/prewarm" hx-trigger="load delay:2s" '
                f'hx-swap="outerHTML"><label for="prewarm-prog">Preparing the what-if: the history is being '
                f'replayed in a background process ({h(pre.describe())})</label> <progress id="prewarm-prog" max="1" '
                f'value="{p:.3f}">{100 * p:.0f}%</progress> A run of more than 1 h started now waits for it.</div>')
    if pre.state == "failed":
        return (f'<p id="whatif-prewarm" class="bad">&#10007; The background replay failed ({h(pre.error)}); a '
                f'what-if replays the history itself.</p>')
    return (f'<p id="whatif-prewarm" class="ok">&#10003; History replayed in the background ({h(held or "none yet")}'
            f'{", refreshing" if pre.state == "running" else ""}): a what-if replays only newer history.</p>')


def _job_html(job, principal, session) -> str:
    if not job.done:
        return (f'<div hx-get="/ui/whatif/job/{h(job.id)}" hx-trigger="load delay:500ms" hx-swap="outerHTML">'
                f'<label for="prog-{h(job.id)}">Replaying: {h(job.stage)}</label> '
                f'<progress id="prog-{h(job.id)}" max="1" value="{job.progress:.3f}">{100 * job.progress:.0f}%'
                f"</progress> {100 * job.progress:.0f}%</div>")
    if job.error:
        return f'<p class="bad">&#10007; The replay failed: {h(job.error)}</p>'
    res = job.result or {}
    if not res.get("steps"):
        return "<p>No history in this window to replay.</p>"
    out = [f'<p class="ok" id="whatif-done">&#10003; Replayed {res["steps"]} steps of '
           f'{len(res.get("endpoints", []))} endpoint(s) in {time.time() - job.started:.1f} s.</p>']
    acts = res.get("acts", {})
    out.append(table(("endpoint", "would first have acted at (UTC)"),
                     [(ep, time.strftime("%H:%M:%S", time.gmtime(t))) for ep, t in sorted(acts.items())],
                     caption="When the edited policy would have acted") if acts
               else "<p>The edited policy would not have acted in this window.</p>")
    for svc, per in res.get("would", {}).items():
        regions = list(per)
        did = res.get("actual", {}).get(svc, {})
        out.append(tag("h3", svc))
        out.append(legend(regions))
        would = {f"{reg} (what-if)": [*pts, (res["until"], pts[-1][1])] for reg, pts in per.items()}
        out.append(line_chart(would, title=f"{svc}: weights the planner would have set", t0=res["since"],
                              t1=res["until"], step=True))
        if did:
            out.append(line_chart({f"{reg} (happened)": pts for reg, pts in did.items()},
                                  title=f"{svc}: weights the daemon set (history)", t0=res["since"],
                                  t1=res["until"], step=True))
        ch = [c for c in res.get("changes", []) if c["service"] == svc]
        happened = sum(max(0, len(p) - 1) for p in did.values())
        out.append(f"<p>{len(ch)} weight step(s) in the what-if, {happened} in what happened. Final what-if "
                   f"split: {h(json.dumps(res.get('final', {}).get(svc, {})))}.</p>")
        if ch:
            out.append(table(("time (UTC)", "region", "from", "to", "rule"),
                             [(time.strftime("%H:%M:%S", time.gmtime(c["ts"])), c["region"], c["from"], c["to"],
                               c["reason"]) for c in ch[:200]], caption=f"{svc}: what-if steps"))
    if principal.can("operate"):
        out.append(f'<form method="post" action="/ui/whatif/apply/{h(job.id)}" hx-post="/ui/whatif/apply/{h(job.id)}"'
                   f' hx-target="#apply-result"><input type="hidden" name="csrf" '
                   f'value="{h(session.csrf if session else "")}"><button type="submit">Apply this policy to '
                   f'{h(getattr(job, "file", ""))}</button></form><div id="apply-result" role="status"></div>')
    else:
        out.append('<p class="muted">Applying needs the operate role.</p>')
    return "".join(str(x) for x in out)
