"""Drain hooks (``drain_hook`` plan actions) go to executors through the same dispatcher as scaling."""

from __future__ import annotations

import json
import sys

import pytest

from pfepo.actions.config import CommandExecutorConfig, KubernetesExecutorConfig, WebhookExecutorConfig
from pfepo.actions.dispatcher import ScaleDispatcher
from pfepo.actions.executors import CommandExecutor, KubernetesExecutor, ScaleRequest, WebhookExecutor
from tests.waiting import wait_until

ACTION = {"type": "drain_hook", "drain": "start", "service": "web", "region": "eu", "from_region": "eu",
          "policy": "default", "executor": "apps", "application": "web", "reason": "risk 0.6 >= act", "ts": 100.0}


def test_a_drain_hook_action_becomes_a_drain_request():
    req = ScaleRequest.from_action(ACTION)
    assert (req.action, req.region, req.desired_capacity, req.executor) == ("drain", "eu", 0, "apps")
    end = ScaleRequest.from_action({**ACTION, "drain": "end", "ts": 200.0})
    assert end.action == "undrain"
    scale = ScaleRequest.from_action({**ACTION, "type": "scale_application", "desired_capacity": 0})
    assert scale.action == "scale" and scale.idempotency_key != req.idempotency_key
    assert ScaleRequest.from_action({**ACTION, "application": None}).application == "web"  # the service's
    with pytest.raises(ValueError, match="start or end"):
        ScaleRequest.from_action({**ACTION, "drain": "maybe"})


def test_dispatcher_runs_drain_hooks_and_reports_them(tmp_path):
    out = tmp_path / "hook.out"
    code = f"import os; open({str(out)!r}, 'a').write(os.environ['PFEPO_ACTION'] + ' ' + os.environ['PFEPO_REGION'] + '\\n')"
    ex = CommandExecutor("apps", CommandExecutorConfig(type="command", argv=[sys.executable, "-c", code, "{action}"]))
    records: list[dict] = []
    d = ScaleDispatcher({"apps": ex}, records.append).start()
    try:
        got = d.submit_actions([ACTION, {**ACTION, "type": "allocate_bandwidth"}, {**ACTION, "drain": "end", "ts": 101}])
        assert got == ["queued", "queued"]  # bandwidth requests are not for executors
        wait_until(lambda: len(records) == 2, 10)
    finally:
        d.stop()
    assert sorted(out.read_text().split("\n")[:2]) == ["drain eu", "undrain eu"]
    assert {(r["event"], r["action"], r["status"]) for r in records} == {
        ("drain_hook", "drain", "succeeded"), ("drain_hook", "undrain", "succeeded")}


def test_command_template_gets_the_action():
    ex = CommandExecutor("apps", CommandExecutorConfig(type="command", argv=["/bin/echo", "{region}", "{action}"]))
    res = ex.execute(ScaleRequest.from_action(ACTION))
    assert res.ok and res.output == "eu drain\n"


def test_webhook_body_says_drain_hook():
    cfg = WebhookExecutorConfig(type="webhook", url="http://127.0.0.1:9/hook", secret="s" * 20)
    ex = WebhookExecutor("apps", cfg)
    try:
        body = json.loads(ex.body(ScaleRequest.from_action(ACTION)))
        scale = json.loads(ex.body(ScaleRequest.from_action({**ACTION, "type": "scale_application",
                                                              "desired_capacity": 3})))
    finally:
        ex.close()
    assert body["type"] == "drain_hook" and body["action"] == "drain" and "desired_capacity" not in body
    assert scale["type"] == "scale_application" and "action" not in scale  # scale bodies unchanged


def test_kubernetes_never_scales_for_a_drain_hook():
    cfg = KubernetesExecutorConfig(type="kubernetes", deployment="{application}-{service}")
    ex = KubernetesExecutor("k8s", cfg)
    res = ex.execute(ScaleRequest.from_action({**ACTION, "executor": "k8s"}))
    assert not res.ok and res.attempts == 0 and "only scales" in res.error
