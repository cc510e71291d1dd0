"""Patch a Deployment's ``scale`` subresource with the official Kubernetes client (optional extra).

The client (``pip install 'pfepo[kubernetes]'``) is imported only when a kubernetes executor is
configured; without it the daemon refuses to start and names the extra. Its loaders are what make a
kubeconfig (tokens, client certificates, exec credential plugins) or in-cluster service account work,
which is why this executor does not speak to the API server with a plain HTTP client.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from pfepo.actions.config import KubernetesExecutorConfig
from pfepo.actions.executors.base import BaseExecutor, ExecutionResult, ScaleRequest, check_values
from pfepo.actions.executors.retry import Failure, failed_result, retryable_status, retrying

MISSING_CLIENT = ("the kubernetes executor needs the Kubernetes Python client, which is an optional extra: "
                  "pip install 'pfepo[kubernetes]'")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def client_installed() -> bool:
    """Whether the optional ``kubernetes`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("kubernetes") is not None


class KubernetesExecutor(BaseExecutor):
    """Set a Deployment's replicas through ``AppsV1Api.patch_namespaced_deployment_scale``.

    The patch is a JSON merge patch ``{"spec": {"replicas": N}}`` on the ``scale`` subresource (the
    client would otherwise label a dict body as a JSON *Patch*, which an API server rejects). Retries on
    5xx, 429 and connection errors. No cluster runs in this project's environment: the tests point a
    real ``kubernetes.client.ApiClient`` at a local HTTP server that imitates just
    ``PATCH /apis/apps/v1/namespaces/NS/deployments/NAME/scale`` (tests/actions/test_kubernetes.py), so
    the client's request building and response parsing are exercised, but not a real API server's
    admission, RBAC or controller behaviour.
    """

    kind = "kubernetes"

    def __init__(self, name: str, cfg: KubernetesExecutorConfig, *, api: Any = None, api_client: Any = None,
                 sleep: Callable[[float], Any] | None = None):
        if api is None and api_client is None and not client_installed():
            raise ValueError(MISSING_CLIENT)  # at start-up, where build_executors names the executor
        super().__init__(name, sleep)
        self.cfg = cfg
        self._api = api
        self._api_client = api_client
        self._lock = threading.Lock()

    def names(self, request: ScaleRequest) -> tuple[str, str]:
        values = request.fields()
        return self.cfg.namespace.format_map(values), self.cfg.deployment.format_map(values)

    def target(self, request: ScaleRequest) -> str:
        ns, dep = self.names(request)
        return f"{ns}/{dep}"

    def _apps(self) -> Any:
        """The AppsV1Api, built on first use so a daemon starts even before its kubeconfig is valid."""
        with self._lock:
            if self._api is None:
                from kubernetes import client, config  # heavy import, only for kubernetes users

                if self._api_client is None:
                    conf = client.Configuration()
                    if self.cfg.in_cluster:
                        config.load_incluster_config(client_configuration=conf)
                    else:
                        config.load_kube_config(config_file=self.cfg.kubeconfig, context=self.cfg.context,
                                                client_configuration=conf)
                    self._api_client = client.ApiClient(conf)
                self._api = client.AppsV1Api(self._api_client)
            return self._api

    def refusal(self, request: ScaleRequest) -> str | None:
        """Why the request must not reach the API server (names, limits), or None."""
        bad = check_values(request)
        ns, dep = self.names(request)
        if bad is None and not _DNS_LABEL.match(ns):
            bad = f"namespace {ns!r} is not a DNS-1123 label"
        if bad is None and (len(dep) > 253 or not _DNS_SUBDOMAIN.match(dep)):
            bad = f"deployment name {dep!r} is not a DNS-1123 subdomain"
        if bad is None and request.desired_capacity > self.cfg.max_replicas:
            bad = f"desired_capacity {request.desired_capacity} exceeds max_replicas {self.cfg.max_replicas}"
        return bad

    def execute(self, request: ScaleRequest) -> ExecutionResult:
        start = time.monotonic()
        bad = self.refusal(request)
        if request.action != "scale":  # a deployment has no "close keep-alives" verb: never scale it to 0
            bad = f"the kubernetes executor only scales; a {request.action} hook needs a webhook or command executor"
        if bad:
            return ExecutionResult(False, "refused", 0, 0.0, None, bad)
        ns, dep = self.names(request)
        try:
            api = self._apps()
        except Exception as exc:  # kubeconfig missing/invalid: a failed call, not a crash
            return ExecutionResult(False, "no kubernetes client", 0, time.monotonic() - start, None,
                                   f"{type(exc).__name__}: {exc}")
        body = {"spec": {"replicas": int(request.desired_capacity)}}

        def patch(attempt: int) -> Any:
            return api.patch_namespaced_deployment_scale(
                dep, ns, body, field_manager="pfepo", _content_type="application/merge-patch+json",
                _request_timeout=self.cfg.timeout_s)

        tried = retrying(patch, _classify, retries=self.cfg.retries, backoff_s=self.cfg.backoff_s,
                         backoff_max_s=self.cfg.backoff_max_s, sleep=self.sleep, closing=self.closing)
        if tried.value is None:
            return failed_result(tried, time.monotonic() - start, f"{ns}/{dep}: ")
        replicas = getattr(getattr(tried.value, "spec", None), "replicas", None)
        return ExecutionResult(True, f"{ns}/{dep} replicas={replicas}", tried.attempts, time.monotonic() - start,
                               200, None)

    def close(self) -> None:
        super().close()
        client = self._api_client
        if client is not None and hasattr(client, "close"):
            with contextlib.suppress(Exception):
                client.close()


def _classify(exc: Exception) -> Failure | None:
    """API errors by status (message from the Status body); connection errors are retried."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, ApiException):
        return Failure(f"HTTP {exc.status}: {_api_message(exc)}", exc.status, retryable_status(exc.status))
    if isinstance(exc, Urllib3Error | OSError):
        return Failure(f"{type(exc).__name__}: {exc}")
    return None


def _api_message(exc: Any) -> str:
    """The ``message`` of a Kubernetes Status body, else the HTTP reason."""
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except Exception:
        return str(exc.reason)
