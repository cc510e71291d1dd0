"""The console over real HTTP (uvicorn + httpx, no browser): login and cookies, roles, CSRF, rendering,
live stream, timeline steps with their audit records, what-if validation/replay/apply."""

from __future__ import annotations

import json
import re
import shutil
import time

import httpx

from pfepo.telemetry.samples import Sample
from tests.api.conftest import TOKENS, bearer
from tests.console.conftest import csrf, login
from tests.waiting import wait_until


def assert_markup_not_escaped(html: str) -> None:
    """A fragment joined as plain text would show its tags escaped on the page."""
    m = re.search(r"&lt;/?(div|p|table|tr|td|ul|li|dl|dt|dd|svg|rect|span|a|h[1-4]|details|summary|form|pre)[ >]",
                  html)
    assert m is None, html[max(0, m.start() - 200): m.end() + 200]


def test_pages_need_a_token_and_browsers_are_sent_to_login(console):
    _rt, base, _ = console
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.get("/ui/overview")
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
        login_page = c.get("/ui/login")
        assert login_page.status_code == 200 and 'type="password"' in login_page.text
        assert c.get("/ui/static/console.css").status_code == 401  # nothing served without a token
        for page in ("/ui/overview", "/ui/timeline?service=web", "/ui/operations", "/ui/whatif"):
            r = c.get(page, headers=bearer("read"))
            assert r.status_code == 200, (page, r.text[:300])
            assert "Content-Security-Policy" in r.headers and "<main" in r.text
            assert_markup_not_escaped(r.text)
        assert c.get("/ui/static/vendor/htmx.min.js", headers=bearer("read")).status_code == 200
        admin_ops = c.get("/ui/operations", headers=bearer("admin")).text
        assert 'name="force"' in admin_ops and "disabled" not in admin_ops  # force only for an admin
        assert_markup_not_escaped(admin_ops)


def test_login_sets_a_strict_httponly_cookie_that_never_opens_the_api(console):
    rt, base, _ = console
    with httpx.Client(base_url=base, timeout=10) as c:
        assert c.post("/ui/login", data={"token": "not-a-token-0123456789"}).status_code == 401
        r = c.post("/ui/login", data={"token": TOKENS["read"]})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
        assert TOKENS["read"] not in cookie  # a random session id, the token stays on the server
        assert c.get("/ui/overview").status_code == 200
        assert c.get("/api/v1/services").status_code == 401  # Path=/ui, and the API takes bearer tokens only
        # cross-site login is refused
        assert c.post("/ui/login", data={"token": TOKENS["read"]},
                      headers={"origin": "http://evil.example"}).status_code == 403
        page = c.get("/ui/operations").text
        tok = csrf(c)
        assert c.post("/ui/logout", data={"csrf": tok}).status_code == 303
        assert c.get("/ui/overview").status_code == 303  # session gone
        assert "disabled" in page  # a read session sees the forms disabled
    rt.audit.flush()
    logins, _ = rt.audit.query_page(None, None, "console_login", 10, None)
    assert [r["result"] for r in logins][:2] == ["unknown token", "ok"] and logins[1]["by"] == "test-read"
    assert not any(TOKENS["read"] in json.dumps(r) for r in logins)


def test_actions_need_operate_role_and_csrf_and_go_through_the_rest_checks(console):
    rt, base, _ = console
    before = rt.state.baseline_snapshot()["web"]
    with login(base, "read") as c:
        tok = csrf(c)
        r = c.post("/ui/actions/weights/web", data={"csrf": tok, "w_eu": "0", "w_us": "50", "w_ap": "50"})
        assert r.status_code == 403 and "operate" in r.text
        r = c.post("/ui/whatif/apply/whatever", data={"csrf": tok})
        assert r.status_code == 403
        r = c.post("/ui/actions/bandwidth/web", data={"csrf": tok, "b_eu": "5"})
        assert r.status_code == 403
    assert rt.state.baseline_snapshot()["web"] == before
    with login(base, "operate") as c:
        r = c.post("/ui/actions/weights/web", data={"w_eu": "0", "w_us": "50", "w_ap": "50"})
        assert r.status_code == 403 and "CSRF" in r.text  # no token: a cross-site form cannot act
        tok = csrf(c)
        # the policy's safety rule (max_regions_drained 1) is enforced, as over REST
        r = c.post("/ui/actions/weights/web", data={"csrf": tok, "w_eu": "0", "w_us": "0", "w_ap": "100"},
                   headers={"hx-request": "true"})
        assert r.status_code == 409 and "max_regions_drained" in r.text
        r = c.post("/ui/actions/weights/web", data={"csrf": tok, "w_eu": "0", "w_us": "50", "w_ap": "50"},
                   headers={"hx-request": "true"})
        assert r.status_code == 200 and "Done" in r.text, r.text
        r = c.post("/ui/actions/bandwidth/web", data={"csrf": tok, "b_eu": "20", "b_us": "", "b_ap": ""},
                   headers={"hx-request": "true"})
        assert r.status_code == 200, r.text
    assert rt.state.baseline_snapshot()["web"] == {"eu": 0.0, "us": 0.5, "ap": 0.5}
    assert rt.state.bandwidth_snapshot()["web"]["eu"] == 20.0
    rt.audit.flush()
    recs, _ = rt.audit.query_page(None, "web", "weight_override", 10, None)
    assert recs and recs[-1]["by"] == "test-operate" and recs[-1]["role"] == "operate"


def test_overview_shows_shares_switches_and_dry_run(console):
    rt, base, _ = console
    with httpx.Client(base_url=base, timeout=10, headers=bearer("read")) as c:
        html = c.get("/ui/overview").text
    assert 'id="wanted-web" data-weights="eu:32,us:19,ap:13"' in html
    assert "disconnected" in html and "no switch connected" in html
    assert "live: decisions are applied" in html
    assert 'aria-current="page"' in html and 'href="#main"' in html
    assert_markup_not_escaped(html)


def test_stream_pushes_a_weight_change_within_a_second(console):
    rt, base, _ = console
    with httpx.Client(base_url=base, timeout=10, headers=bearer("operate")) as c:
        with c.stream("GET", "/ui/stream/overview") as s:
            lines = s.iter_lines()
            assert "eu:32,us:19,ap:13" in _next_event(lines)
            t0 = time.monotonic()
            r = c.put("/api/v1/services/web/weights", json={"weights": {"eu": 1, "us": 1, "ap": 2}})
            assert r.status_code == 200
            while "eu:16,us:16,ap:32" not in _next_event(lines):
                assert time.monotonic() - t0 < 2.0
            assert time.monotonic() - t0 < 1.0 + 0.5  # one stream period after the change, plus slack


def _next_event(lines) -> str:
    data = []
    for line in lines:
        if line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            return "\n".join(data)
    raise AssertionError("stream ended")


def test_timeline_annotates_each_weight_step_with_its_audit_records(console):
    rt, base, _ = console
    now = time.time()
    rt.store.write([Sample(now - 60 + i, "web", "weight", float(w), (("region", "eu"), ("service", "web")))
                    for i, w in enumerate([32, 32, 24, 16])])
    rt.audit.append("decision", {"service": "web", "region": "eu", "endpoint": "eu-1", "level": "act",
                                 "policy": "fast-test", "criteria": [{"metric": "loss_pct", "fired": True}]},
                    ts=now - 59)
    rt.audit.append("weight_change", {"service": "web", "region": "eu", "from": 32, "to": 24,
                                      "reason": "ramp down: loss_pct > 5", "policy": "fast-test"}, ts=now - 58)
    rt.audit.flush()
    with httpx.Client(base_url=base, timeout=10, headers=bearer("read")) as c:
        html = c.get("/ui/timeline", params={"service": "web", "hours": 1}).text
    sid = f"step-eu-{round((now - 58) * 1000)}"
    assert f'id="{sid}"' in html and f'href="#{sid}"' in html  # chart marker links to the step
    assert "eu: 32 -&gt; 24 slots" in html and "criteria fired: loss_pct" in html
    assert "Decision that drove it" in html and "ramp down: loss_pct &gt; 5" in html
    assert_markup_not_escaped(html)
    with httpx.Client(base_url=base, timeout=10, headers=bearer("read")) as c:
        rt.store.write([Sample(now - 60 + i, "eu-1", "risk", 0.1 * i) for i in range(5)])
        ep = c.get("/ui/timeline", params={"endpoint": "eu-1"}).text
    assert "Region eu" in ep and f"#{sid}" in ep and "/ui/timeline?service=web" in ep  # the step, from the endpoint
    assert_markup_not_escaped(ep)


def test_whatif_invalid_policy_shows_line_and_column(console):
    rt, base, policy = console
    bad = policy.read_text().replace("threshold: 5", "threshold: 500")
    with login(base, "read") as c:
        tok = csrf(c, "/ui/whatif")
        r = c.post("/ui/whatif/run", data={"csrf": tok, "file": "fast.yaml", "policy": bad, "hours": "1"})
    assert r.status_code == 422
    assert 'data-line="5"' in r.text and "fast.yaml:5:" in r.text and "impossible threshold" in r.text
    assert "threshold: 500" in r.text and "^" in r.text  # the line itself with a caret at the column


def test_whatif_replays_history_and_apply_needs_operate(console):
    rt, base, policy = console
    now = time.time()
    rows = []
    for k in range(90):  # 15 min of probes, loss on eu's uplink in the last 5 minutes
        t = now - 900 + 10 * k
        for reg in ("eu", "us", "ap"):
            loss = 30.0 if reg == "eu" and k >= 60 else 0.0
            rows += [Sample(t, f"uplink:{reg}", "loss_pct", loss), Sample(t, f"uplink:{reg}", "latency_ms", 5.0)]
    rt.store.write(rows)
    text = policy.read_text().replace("step_percent: 25, step_interval_s: 1", "step_percent: 50, step_interval_s: 1")
    with login(base, "read") as c:
        tok = csrf(c, "/ui/whatif")
        r = c.post("/ui/whatif/run", data={"csrf": tok, "file": "fast.yaml", "policy": text, "hours": "1"})
        assert r.status_code == 200, r.text
        jid = r.text.split("/ui/whatif/job/")[1].split('"')[0]
        wait_until(lambda: "whatif-done" in c.get(f"/ui/whatif/job/{jid}").text, 30, "what-if finished")
        res = c.get(f"/ui/whatif/job/{jid}").text
        assert "would first have acted" in res and "eu-1" in res
        assert_markup_not_escaped(res)
        assert "Applying needs the operate role" in res
        assert c.post(f"/ui/whatif/apply/{jid}", data={"csrf": tok}).status_code == 403
    assert "step_percent: 25" in policy.read_text()
    with login(base, "operate") as c:
        tok = csrf(c, "/ui/whatif")
        r = c.post(f"/ui/whatif/apply/{jid}", data={"csrf": tok})
        assert r.status_code == 200 and "Applied" in r.text, r.text
    assert "step_percent: 50" in policy.read_text() and rt.reloader.version == 2
    rt.audit.flush()
    recs, _ = rt.audit.query_page(None, None, "policy_apply", 5, None)
    assert recs[-1]["by"] == "test-operate" and recs[-1]["result"] == "applied"
    assert json.dumps(recs[-1]).count(TOKENS["operate"]) == 0


def test_overview_lists_the_planners_drains(console):
    from types import SimpleNamespace

    from pfepo.planner import Planner

    rt, base, _ = console
    plan = Planner(rt.cfg).step(time.time(), [], {"eu": False, "us": True, "ap": True}, None)
    rt.loop = SimpleNamespace(last_plan=plan.to_dict(), ticks=1, errors=0)  # the loop's last plan, as after a tick
    with httpx.Client(base_url=base, timeout=10, headers=bearer("read")) as c:
        html = c.get("/ui/overview").text
    drains = html.split('id="drains-list"')[1].split("</div>")[0]
    assert "<td>web</td><td>eu</td><td>failed</td><td>0 of 32 slots</td>" in drains, drains
    assert_markup_not_escaped(html)


def test_an_open_event_stream_does_not_hold_up_shutdown(cfg_dict):
    """uvicorn waits for open responses when it stops; the console's streams end as the server stops."""
    import threading

    from pfepo.api.server import ApiServer, create_app
    from pfepo.config import PfepoConfig
    from pfepo.daemon import build_runtime
    from tests.api.conftest import add_tokens

    rt = build_runtime(PfepoConfig.model_validate(add_tokens(cfg_dict)))
    srv = ApiServer(create_app(rt), "127.0.0.1", 0)
    srv.start()
    opened = threading.Event()

    def read():
        with httpx.stream("GET", f"http://127.0.0.1:{srv.bound_port}/ui/stream/overview", headers=bearer("read"),
                          timeout=30) as s:
            for _ in s.iter_lines():
                opened.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(5)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 2.0 and not srv.thread.is_alive()
    reader.join(5)
    assert not reader.is_alive()
    rt.writer.close()


def test_whatif_jobs_keep_the_latest_results_only():
    from pfepo.console.whatif import Jobs

    jobs = Jobs(keep=3)
    started = [jobs.start(lambda job, i=i: {"n": i}) for i in range(5)]
    wait_until(lambda: all(j.done for j in started), 5, "jobs finished")
    last = jobs.start(lambda job: {"n": 5})
    wait_until(lambda: last.done, 5, "last job finished")
    kept = [j for j in [*started, last] if jobs.get(j.id) is not None]
    assert [j.result["n"] for j in kept] == [3, 4, 5]


def test_vendored_files_match_their_recorded_hashes():
    """htmx and axe-core are committed as vendored by scripts/vendor-console.sh; nothing is fetched later."""
    import hashlib
    from pathlib import Path

    import pfepo.console

    for folder in (pfepo.console.STATIC / "vendor", Path(__file__).parent / "vendor"):
        lines = [ln.split() for ln in (folder / "VENDORED.txt").read_text().splitlines() if ln and ln[0] != "#"]
        hashes = {name.removeprefix("./"): digest for digest, name in (ln for ln in lines if len(ln) == 2)}
        assert hashes, folder
        for name, digest in hashes.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
        assert any(folder.glob("*.LICENSE"))


def test_whatif_progress_goes_through_every_stage_in_order(console):
    from pfepo.console import whatif

    rt, _base, policy = console
    now = time.time()
    rt.store.write([Sample(now - 600 + 10 * k, "uplink:eu", "loss_pct", 0.0) for k in range(60)])
    ps, problems, folder = whatif.validate(rt.cfg, policy, policy.read_text())
    assert ps is not None, problems
    seen: list[tuple[str, float]] = []

    class Recorder(whatif.Job):
        def __setattr__(self, k, v):
            super().__setattr__(k, v)
            if k == "progress":
                seen.append((self.stage, v))

    try:
        res = whatif.replay_policy(rt, ps, folder / policy.name, 1.0, Recorder("t"))
    finally:
        shutil.rmtree(folder)  # validate's copy of the policy folder is the caller's to remove
    stages = [s.split(":")[0] for s, _ in seen][1:]  # [0]: the new job, "queued"
    assert stages[0] == "reading history" and "predictor" in stages and stages[-1] == "done", stages
    assert stages.index("predictor") < stages.index("policies and planner")
    progress = [p for _, p in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert res["steps"] == 60


def test_history_becomes_a_trace_as_the_decision_loop_sees_it(console):
    from pfepo.console.whatif import history_trace

    rt, _base, _ = console
    t0 = 1_000_000.0  # a step boundary (multiple of 10 s)
    rt.store.write([Sample(t0 + k, "uplink:eu", "loss_pct", 30.0 if k in (7, 8) else 0.0) for k in range(20)]
                   + [Sample(t0 + k, "uplink:eu", "latency_ms", 50.0) for k in range(20)]
                   + [Sample(t0 + k, "eu-1", "latency_ms", 5.0) for k in range(20)]
                   + [Sample(t0 + 9, "eu-1", "health_up", 0.0), Sample(t0 + 5, "eu-2", "health_up", 1.0)])
    f = history_trace(rt, t0, t0 + 20, 10.0).frame.set_index(["ts", "endpoint"])
    assert f.loc[(t0, "eu-1"), "loss_pct"] == 6.0  # a 2 s burst of 30 % in a 10 s step: its mean shows
    assert f.loc[(t0 + 10, "eu-1"), "loss_pct"] == 0.0
    assert f.loc[(t0, "eu-1"), "latency_ms"] == 5.0 and f.loc[(t0, "eu-2"), "latency_ms"] == 50.0  # own wins
    assert f.loc[(t0, "eu-1"), "up"] == 0.0 and f.loc[(t0, "eu-2"), "up"] == 1.0


def test_a_scale_request_needs_operate_goes_through_the_executor_and_shows_its_status(console, tmp_path):
    """A real command executor (a Python child process writing its arguments to a file)."""
    import sys

    from pfepo.actions.config import CommandExecutorConfig
    from pfepo.actions.dispatcher import ScaleDispatcher
    from pfepo.actions.executors import build_executors

    rt, base, _ = console
    out = tmp_path / "scaled.txt"
    script = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"
    execs = build_executors({"scaler": CommandExecutorConfig(type="command", argv=[
        sys.executable, "-c", script, str(out), "{service}", "{region}", "{application}", "{capacity}"])})
    rt.dispatcher = ScaleDispatcher(execs, lambda rec: rt.audit.append("scale", rec)).start()
    try:
        with login(base, "read") as c:
            page = c.get("/ui/operations").text
            assert 'action="/ui/actions/scale/web"' in page and "<fieldset disabled>" in page
            r = c.post("/ui/actions/scale/web", data={"csrf": csrf(c), "region": "us", "desired_capacity": "3"})
            assert r.status_code == 403 and "operate" in r.text
        with login(base, "operate") as c:
            tok = csrf(c)
            r = c.post("/ui/actions/scale/web", data={"csrf": tok, "region": "mars", "desired_capacity": "3"},
                       headers={"hx-request": "true"})
            assert r.status_code == 422 and "region must be one of" in r.text
            r = c.post("/ui/actions/scale/web", data={"csrf": tok, "region": "us", "desired_capacity": "3",
                                                      "executor": "scaler"}, headers={"hx-request": "true"})
            assert r.status_code == 200 and "queued" in r.text, r.text
            assert wait_until(lambda: out.exists() and out.read_text() == "web us web 3\n", 10)
            rt.audit.flush()
            assert wait_until(lambda: rt.audit.query_page(None, "web", "scale", 10, None)[0], 10)
            page = c.get("/ui/operations").text
        assert "\u2713 succeeded" in page and "operator request by test-operate" in page
        recs, _ = rt.audit.query_page(None, "web", "scale_request", 10, None)
        assert recs[-1]["by"] == "test-operate" and recs[-1]["status"] == "queued"
        assert not rt.audit.query_page(None, None, "scale", 10, "mars")[0]
    finally:
        rt.dispatcher.stop()


def test_endpoint_timeline_shows_the_engines_forecast_interval(console):
    """The real engine (as the daemon's prediction worker holds it), fed a rising latency."""
    import numpy as np

    from pfepo.console import views
    from pfepo.controller.predict_worker import PredictionWorker
    from pfepo.predict.engine import PredictiveEngine

    rt, base, _ = console
    ep = rt.cfg.regions[0].endpoints[0].name
    eng = PredictiveEngine(horizon_s=300, step_s=10)
    now = time.time()
    t0 = now - 1200
    for k in range(120):
        eng.observe(ep, t0 + 10 * k, {"latency_ms": 20 + 0.5 * k + (k % 3)})
    eng.predict(now)
    rt.predictor = PredictionWorker(eng)  # not started: nothing else feeds it
    rt.store.write([Sample(t0 + 10 * k, ep, "latency_ms", 20 + 0.5 * k + (k % 3)) for k in range(120)])
    band = views.forecast_band(rt, ep, "latency_ms")
    assert len(band) == 5  # the last step, then the 4 checkpoints up to the horizon
    ts = [t for t, _, _ in band]
    assert ts == sorted(ts) and ts[-1] - ts[0] == 300
    mean, sd = eng.bank.forecast()
    row = eng.index[ep] * eng.m + eng.midx["latency_ms"]
    np.testing.assert_allclose([(lo + hi) / 2 for _, lo, hi in band[1:]], mean[row])
    assert all(hi - lo > 0 for _, lo, hi in band[1:]) and band[-1][2] > 75  # the rise goes on
    assert views.forecast_band(rt, ep, "cpu_pct") == []  # no such series yet: no band
    with login(base, "read") as c:
        page = c.get(f"/ui/timeline?endpoint={ep}").text
    assert "shaded: forecast mean \u00b1 2 sd at the checkpoints" in page and "<polygon" in page
