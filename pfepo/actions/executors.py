"""Application scaling executors: the adapters that ask the outside world for more capacity in a region.

Each executor turns a :class:`ScaleRequest` into one outside call and reports an
:class:`ExecutionResult`; expected failures (HTTP errors, exit codes, timeouts, API errors) come back as
``ok=False`` results rather than exceptions so the dispatcher can audit them uniformly. Every executor
bounds its own time (HTTP timeout x attempts, subprocess timeout, API request timeout), which is what
lets a few worker threads serve a daemon whose scalers may hang.

* :class:`WebhookExecutor` - signed JSON POST with retries and an ``Idempotency-Key`` (receiver side:
  docs/actions.md).
* :class:`CommandExecutor` - an argv template run without a shell, in its own process group, killed on
  timeout.
* :class:`KubernetesExecutor` - patches a Deployment's ``scale`` subresource with the official client.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

from pfepo.actions.config import (
    CommandExecutorConfig,
    KubernetesExecutorConfig,
    WebhookExecutorConfig,
)

SIGNATURE_HEADER = "X-Pfepo-Signature-256"
ATTEMPT_HEADER = "X-Pfepo-Attempt"
USER_AGENT = "pfepo-scaler/1"
_OUTPUT_MAX = 2000
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    """One ``scale_application`` action for one region, as the planner emits it."""

    service: str
    region: str
    application: str
    desired_capacity: int
    executor: str
    decision_id: str = ""
    reason: str = ""
    dry_run: bool = False
    ts: float = 0.0

    @property
    def idempotency_key(self) -> str:
        """Same (service, region, application, capacity, decision) -> same key, so retries and repeats of
        one decision are recognisable by the receiver and by the dispatcher's dedup."""
        raw = json.dumps([self.service, self.region, self.application, int(self.desired_capacity),
                          self.decision_id], separators=(",", ":"))
        return "pfepo-" + hashlib.sha256(raw.encode()).hexdigest()[:32]

    def fields(self) -> dict[str, str]:
        """Values for template placeholders."""
        return {"service": self.service, "region": self.region, "application": self.application,
                "capacity": str(int(self.desired_capacity))}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "idempotency_key": self.idempotency_key}

    @classmethod
    def from_action(cls, action: Mapping[str, Any]) -> ScaleRequest:
        """From a planner action dict (``type: scale_application``); raises ValueError if incomplete.

        Without an explicit ``decision_id`` the decision is identified by policy, drained region and
        time, so one shift yields one key while a later shift gets a new one.
        """
        missing = [k for k in ("service", "region", "application", "desired_capacity", "executor")
                   if action.get(k) in (None, "")]
        if missing:
            raise ValueError(f"scale action lacks {', '.join(missing)}")
        cap = action["desired_capacity"]
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise ValueError(f"desired_capacity must be a non-negative integer, not {cap!r}")
        ts = float(action.get("ts") or 0.0)
        decision = action.get("decision_id") or f"{action.get('policy', '')}:{action.get('from_region', '')}:{ts:.3f}"
        return cls(service=str(action["service"]), region=str(action["region"]),
                   application=str(action["application"]), desired_capacity=cap,
                   executor=str(action["executor"]), decision_id=str(decision),
                   reason=str(action.get("reason") or ""), dry_run=bool(action.get("dry_run", False)), ts=ts)


@dataclass(slots=True)
class ExecutionResult:
    """What one executor call achieved; ``detail`` is a short human summary for the audit log."""

    ok: bool
    detail: str
    attempts: int = 1
    duration_s: float = 0.0
    status: int | None = None  # HTTP status or process exit code
    error: str | None = None
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Executor(Protocol):
    """What the dispatcher needs from a scaler."""

    name: str
    kind: str

    def target(self, request: ScaleRequest) -> str:
        """What is being scaled (rate limits are per executor and target); pure and cheap."""
        ...

    def execute(self, request: ScaleRequest) -> ExecutionResult:
        """Do the call; time-bounded; returns failures instead of raising them."""
        ...

    def close(self) -> None:
        ...


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Receiver-side check (constant time); used by the tests and usable by Python receivers."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header.strip())


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Wait before retry number ``attempt`` (1-based): base, 2*base, 4*base ... capped."""
    return min(cap, base * (2 ** (attempt - 1)))


def _clip(text: str, limit: int = _OUTPUT_MAX) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def _check_values(request: ScaleRequest) -> str | None:
    """Refuse values that would be read as options or break an argument (no shell, but still argv)."""
    if request.desired_capacity < 0:
        return "desired_capacity must be >= 0"
    for k, v in request.fields().items():
        if not v or v.startswith("-") or "\x00" in v or "\n" in v:
            return f"{k} value {v!r} is not allowed in a command/template"
    return None


class _Base:
    kind = "base"

    def __init__(self, name: str, sleep: Callable[[float], Any] | None = None):
        self.name = name
        self._closing = threading.Event()
        # Backoff waits end early on close(), so a shutdown is not held up by a retrying call.
        self._sleep = sleep or self._closing.wait

    def target(self, request: ScaleRequest) -> str:
        return f"{request.region}/{request.application}"

    def close(self) -> None:
        self._closing.set()


class WebhookExecutor(_Base):
    """HTTP POST of the request as JSON, signed with HMAC-SHA256, retried with exponential backoff.

    Retries happen on connection errors, timeouts, 5xx and 429; other statuses are final. The body and
    ``Idempotency-Key`` are identical on every attempt so the receiver can drop repeats.
    """

    kind = "webhook"

    def __init__(self, name: str, cfg: WebhookExecutorConfig, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], Any] | None = None, clock: Callable[[], float] = time.time):
        super().__init__(name, sleep)
        self.cfg = cfg
        self._secret = cfg.resolve_secret()
        self._clock = clock
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=cfg.timeout_s, verify=cfg.verify_tls, follow_redirects=False)

    def body(self, request: ScaleRequest) -> bytes:
        """Canonical JSON (sorted keys, no spaces) so the signed bytes are reproducible."""
        doc = {"type": "scale_application", "executor": self.name, "service": request.service,
               "region": request.region, "application": request.application,
               "desired_capacity": int(request.desired_capacity), "decision_id": request.decision_id,
               "idempotency_key": request.idempotency_key, "reason": request.reason,
               "requested_at": request.ts or self._clock()}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def execute(self, request: ScaleRequest) -> ExecutionResult:
        start = time.monotonic()
        body = self.body(request)
        headers = {**self.cfg.headers, "Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Idempotency-Key": request.idempotency_key, SIGNATURE_HEADER: sign(self._secret, body)}
        attempts, status, error = 0, None, None
        for attempt in range(1, self.cfg.retries + 2):
            attempts = attempt
            if attempt > 1:
                self._sleep(backoff_delay(attempt - 1, self.cfg.backoff_s, self.cfg.backoff_max_s))
                if self._closing.is_set():
                    error = f"shutting down after attempt {attempt - 1}: {error}"
                    break
            try:
                resp = self._client.post(self.cfg.url, content=body, timeout=self.cfg.timeout_s,
                                         headers={**headers, ATTEMPT_HEADER: str(attempt)})
            except httpx.TimeoutException as exc:
                status, error = None, f"timeout after {self.cfg.timeout_s:g} s ({type(exc).__name__})"
                continue
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
                continue
            status = resp.status_code
            text = _clip(resp.text, 500)
            if 200 <= status < 300:
                return ExecutionResult(True, f"HTTP {status}", attempts, time.monotonic() - start, status,
                                       None, text)
            error = f"HTTP {status}"
            if status < 500 and status != 429:
                return ExecutionResult(False, f"HTTP {status} (not retried)", attempts,
                                       time.monotonic() - start, status, error, text)
        return ExecutionResult(False, f"gave up after {attempts} attempt(s): {error}", attempts,
                               time.monotonic() - start, status, error)

    def close(self) -> None:
        super().close()
        if self._own_client:
            self._client.close()


class CommandExecutor(_Base):
    """Run an argv template (never through a shell) with a timeout; exit status 0 is success.

    The child gets its own session so a timeout kills it *and* anything it started (by process group
    id, which is the child's pid). ``PFEPO_*`` environment variables carry the request, including
    ``PFEPO_IDEMPOTENCY_KEY``.
    """

    kind = "command"

    def __init__(self, name: str, cfg: CommandExecutorConfig, **_: Any):
        super().__init__(name)
        self.cfg = cfg

    def argv(self, request: ScaleRequest) -> list[str]:
        values = request.fields()
        # Templates were validated to hold only plain {placeholder} fields, so format_map is safe here.
        return [a.format_map(values) for a in self.cfg.argv]

    def execute(self, request: ScaleRequest) -> ExecutionResult:
        start = time.monotonic()
        bad = _check_values(request)
        if bad:
            return ExecutionResult(False, "refused", 0, 0.0, None, bad)
        argv = self.argv(request)
        env = {**os.environ, **self.cfg.env,
               "PFEPO_SERVICE": request.service, "PFEPO_REGION": request.region,
               "PFEPO_APPLICATION": request.application, "PFEPO_CAPACITY": str(int(request.desired_capacity)),
               "PFEPO_DECISION_ID": request.decision_id, "PFEPO_IDEMPOTENCY_KEY": request.idempotency_key}
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, cwd=self.cfg.cwd, env=env, start_new_session=True)
        except OSError as exc:
            return ExecutionResult(False, "cannot start", 1, time.monotonic() - start, None,
                                   f"{argv[0]}: {exc.strerror or exc}")
        try:
            out, _ = proc.communicate(timeout=self.cfg.timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                out, _ = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipe
                proc.kill()
                out = b""
            return ExecutionResult(False, f"timed out after {self.cfg.timeout_s:g} s (killed)", 1,
                                   time.monotonic() - start, proc.returncode, "timeout",
                                   _clip(out.decode(errors="replace")))
        text = _clip(out.decode(errors="replace"))
        code = proc.returncode
        if code == 0:
            return ExecutionResult(True, "exit 0", 1, time.monotonic() - start, 0, None, text)
        what = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        return ExecutionResult(False, what, 1, time.monotonic() - start, code, what, text)


class KubernetesExecutor(_Base):
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

    def execute(self, request: ScaleRequest) -> ExecutionResult:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        start = time.monotonic()
        bad = _check_values(request)
        ns, dep = self.names(request)
        if bad is None and not _DNS_LABEL.match(ns):
            bad = f"namespace {ns!r} is not a DNS-1123 label"
        if bad is None and (len(dep) > 253 or not _DNS_SUBDOMAIN.match(dep)):
            bad = f"deployment name {dep!r} is not a DNS-1123 subdomain"
        if bad is None and request.desired_capacity > self.cfg.max_replicas:
            bad = f"desired_capacity {request.desired_capacity} exceeds max_replicas {self.cfg.max_replicas}"
        if bad:
            return ExecutionResult(False, "refused", 0, 0.0, None, bad)
        try:
            api = self._apps()
        except Exception as exc:  # kubeconfig missing/invalid: a failed call, not a crash
            return ExecutionResult(False, "no kubernetes client", 0, time.monotonic() - start, None,
                                   f"{type(exc).__name__}: {exc}")
        body = {"spec": {"replicas": int(request.desired_capacity)}}
        attempts, status, error = 0, None, None
        for attempt in range(1, self.cfg.retries + 2):
            attempts = attempt
            if attempt > 1:
                self._sleep(backoff_delay(attempt - 1, self.cfg.backoff_s, self.cfg.backoff_max_s))
                if self._closing.is_set():
                    break
            try:
                scale = api.patch_namespaced_deployment_scale(
                    dep, ns, body, field_manager="pfepo", _content_type="application/merge-patch+json",
                    _request_timeout=self.cfg.timeout_s)
            except ApiException as exc:
                status, error = exc.status, f"HTTP {exc.status}: {_api_message(exc)}"
                if exc.status and exc.status < 500 and exc.status != 429:
                    return ExecutionResult(False, f"{ns}/{dep}: {error} (not retried)", attempts,
                                           time.monotonic() - start, status, error)
                continue
            except (Urllib3Error, OSError) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
                continue
            spec = getattr(scale, "spec", None)
            replicas = getattr(spec, "replicas", None)
            return ExecutionResult(True, f"{ns}/{dep} replicas={replicas}", attempts, time.monotonic() - start,
                                   200, None)
        return ExecutionResult(False, f"{ns}/{dep}: gave up after {attempts} attempt(s): {error}", attempts,
                               time.monotonic() - start, status, error)

    def close(self) -> None:
        super().close()
        client = self._api_client
        if client is not None and hasattr(client, "close"):
            with contextlib.suppress(Exception):
                client.close()


def _api_message(exc: Any) -> str:
    """The ``message`` of a Kubernetes Status body, else the HTTP reason."""
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except Exception:
        return str(exc.reason)


_KINDS: dict[str, type] = {"webhook": WebhookExecutor, "command": CommandExecutor, "kubernetes": KubernetesExecutor}


def build_executor(name: str, cfg: Any, **kwargs: Any) -> Executor:
    """An executor from its config model; raises ValueError for a start-up problem (e.g. missing secret)."""
    return _KINDS[cfg.type](name, cfg, **kwargs)


def build_executors(configs: Mapping[str, Any]) -> dict[str, Executor]:
    """All configured executors; one ValueError naming every executor that cannot start."""
    out: dict[str, Executor] = {}
    errors = []
    for name, cfg in configs.items():
        try:
            out[name] = build_executor(name, cfg)
        except ValueError as exc:
            errors.append(f"executors.{name}: {exc}")
    if errors:
        for ex in out.values():
            ex.close()
        raise ValueError("; ".join(errors))
    return out
