"""KubernetesExecutor against the official client's API surface.

No cluster runs here: a local HTTP server imitates the one endpoint the executor uses,
``PATCH /apis/apps/v1/namespaces/NS/deployments/NAME/scale``, checking what a real API server would
(merge-patch content type, body shape, bearer token) and answering with an ``autoscaling/v1`` Scale or
a ``Status`` error. The real ``kubernetes.client.ApiClient`` builds the requests and parses the answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from kubernetes import client

from pfepo.actions.config import KubernetesExecutorConfig
from pfepo.actions.executors import KubernetesExecutor, ScaleRequest

TOKEN = "test-token-abc"
PATH = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/?]+)/scale(\?.*)?$")


def _status(code: int, reason: str, message: str):
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}
    return code, {"Content-Type": "application/json"}, json.dumps(body).encode()


class FakeApiServer:
    """State: replicas per (namespace, deployment); ``fail_first`` answers 503 that many times."""

    def __init__(self, deployments: dict[tuple[str, str], int], fail_first: int = 0):
        self.replicas = dict(deployments)
        self.fail_first = fail_first
        self.queries: list[str] = []

    def __call__(self, seen, rec):
        if seen.headers.get("authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized", "Unauthorized")
        m = PATH.match(seen.path)
        if seen.method != "PATCH" or not m:
            return _status(404, "NotFound", f"no route {seen.method} {seen.path}")
        ns, name, query = m.group(1), m.group(2), m.group(3) or ""
        self.queries.append(query)
        ctype = seen.headers.get("content-type", "")
        body = json.loads(seen.body)
        if ctype == "application/json-patch+json" and not isinstance(body, list):
            return _status(400, "BadRequest", "json patch must be a list of operations")
        if ctype != "application/merge-patch+json":
            return _status(415, "UnsupportedMediaType", f"content type {ctype}")
        replicas = body.get("spec", {}).get("replicas")
        if set(body) != {"spec"} or not isinstance(replicas, int) or replicas < 0:
            return _status(422, "Invalid", "spec.replicas must be a non-negative integer")
        if (ns, name) not in self.replicas:
            return _status(404, "NotFound", f'deployments.apps "{name}" not found')
        if self.fail_first > 0:
            self.fail_first -= 1
            return _status(503, "ServiceUnavailable", "etcd leader changed")
        old = self.replicas[(ns, name)]
        self.replicas[(ns, name)] = replicas
        scale = {"kind": "Scale", "apiVersion": "autoscaling/v1",
                 "metadata": {"name": name, "namespace": ns, "resourceVersion": "42"},
                 "spec": {"replicas": replicas}, "status": {"replicas": old, "selector": f"app={name}"}}
        return 200, {"Content-Type": "application/json"}, json.dumps(scale).encode()


def api_client(url: str) -> client.ApiClient:
    conf = client.Configuration(host=url)
    conf.api_key = {"authorization": TOKEN}
    conf.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(conf)


def make(url: str, **kw) -> KubernetesExecutor:
    cfg = KubernetesExecutorConfig(type="kubernetes", namespace="{region}", deployment="{application}-{service}",
                                   backoff_s=0.01, **kw)
    return KubernetesExecutor("k8s", cfg, api_client=api_client(url))


REQ = ScaleRequest("shop", "us", "web", 7, "k8s", "d-1")


def test_patches_the_scale_subresource(receiver):
    api = FakeApiServer({("us", "web-shop"): 2})
    r = receiver(api)
    ex = make(r.url)
    assert ex.target(REQ) == "us/web-shop"
    res = ex.execute(REQ)
    ex.close()
    assert res.ok and res.attempts == 1 and res.detail == "us/web-shop replicas=7", res
    assert api.replicas[("us", "web-shop")] == 7
    assert api.queries == ["?fieldManager=pfepo"]
    assert json.loads(r.requests[0].body) == {"spec": {"replicas": 7}}


def test_unknown_deployment_is_a_final_404(receiver):
    r = receiver(FakeApiServer({}))
    ex = make(r.url)
    res = ex.execute(REQ)
    ex.close()
    assert not res.ok and res.status == 404 and res.attempts == 1
    assert 'deployments.apps "web-shop" not found' in res.error


def test_5xx_is_retried(receiver):
    api = FakeApiServer({("us", "web-shop"): 2}, fail_first=2)
    r = receiver(api)
    ex = make(r.url, retries=2)
    res = ex.execute(REQ)
    ex.close()
    assert res.ok and res.attempts == 3 and len(r.requests) == 3 and api.replicas[("us", "web-shop")] == 7


def test_bad_token_is_refused(receiver):
    r = receiver(FakeApiServer({("us", "web-shop"): 2}))
    conf = client.Configuration(host=r.url)
    cfg = KubernetesExecutorConfig(type="kubernetes", namespace="{region}", deployment="{application}-{service}")
    ex = KubernetesExecutor("k8s", cfg, api_client=client.ApiClient(conf))
    res = ex.execute(REQ)
    ex.close()
    assert not res.ok and res.status == 401


def test_requests_beyond_limits_or_bad_names_never_reach_the_server(receiver):
    r = receiver(FakeApiServer({("us", "web-shop"): 2}))
    ex = make(r.url, max_replicas=5)
    res = ex.execute(REQ)
    assert not res.ok and res.attempts == 0 and "exceeds max_replicas 5" in res.error
    res = ex.execute(ScaleRequest("shop", "us", "Web_App", 3, "k8s", "d-1"))
    assert not res.ok and "not a DNS-1123 subdomain" in res.error
    ex.close()
    assert r.requests == []


def test_kubeconfig_file_drives_the_client(receiver, tmp_path: Path):
    """The executor's own client construction path: kubeconfig -> Configuration -> AppsV1Api."""
    api = FakeApiServer({("us", "web-shop"): 1})
    r = receiver(api)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": r.url}}],
        "users": [{"name": "pfepo", "user": {"token": TOKEN}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "pfepo"}}]}))
    cfg = KubernetesExecutorConfig(type="kubernetes", namespace="{region}", deployment="{application}-{service}",
                                   kubeconfig=str(kubeconfig), context="lab")
    ex = KubernetesExecutor("k8s", cfg)
    res = ex.execute(REQ)
    ex.close()
    assert res.ok, res
    assert api.replicas[("us", "web-shop")] == 7


def test_missing_kubeconfig_is_a_failed_call_not_a_crash(tmp_path: Path):
    cfg = KubernetesExecutorConfig(type="kubernetes", kubeconfig=str(tmp_path / "nope"))
    ex = KubernetesExecutor("k8s", cfg)
    res = ex.execute(REQ)
    assert not res.ok and res.detail == "no kubernetes client"


@pytest.mark.parametrize("ns", ["US", "-us"])
def test_bad_namespace_is_refused(ns):
    cfg = KubernetesExecutorConfig(type="kubernetes", namespace=ns)
    res = KubernetesExecutor("k8s", cfg).execute(REQ)
    assert not res.ok and "DNS-1123 label" in res.error


def test_hanging_api_server_times_out(receiver):
    import time

    r = receiver(lambda s, rec: rec.hang(s, rec))
    ex = make(r.url, timeout_s=0.3, retries=1)
    t0 = time.monotonic()
    res = ex.execute(REQ)
    took = time.monotonic() - t0
    ex.close()
    assert not res.ok and res.attempts == 2 and res.status is None and "ReadTimeout" in res.error, res
    assert 0.55 <= took < 2.5, took


def test_without_the_client_the_daemon_refuses_to_start_and_names_the_extra(monkeypatch):
    """The client is the optional extra pfepo[kubernetes]: a configured executor without it is a start-up error."""
    import sys

    from pfepo.actions.executors import build_executors

    monkeypatch.setitem(sys.modules, "kubernetes", None)  # what an import sees when the package is absent
    cfg = KubernetesExecutorConfig(type="kubernetes")
    with pytest.raises(ValueError, match=r"executors\.k8s: .*pip install 'pfepo\[kubernetes\]'"):
        build_executors({"k8s": cfg})
