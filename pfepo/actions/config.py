"""Config models for scaling executors (daemon ``executors:``) and pulled health signals (per endpoint).

They live here, next to the code that uses them, and the daemon config (pfepo/config.py) embeds them.
Every model rejects unknown keys, and templates are checked at load time so a typo such as
``{regoin}`` is a located config error, not a failed scale-out during an incident.
"""

from __future__ import annotations

import math
import os
import re
import string
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

#: Placeholders an argv / deployment template may use, and nothing else (no attribute or index access).
PLACEHOLDERS = frozenset({"service", "region", "application", "capacity", "action"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED_HEADERS = {"content-type", "content-length", "idempotency-key", "x-pfepo-signature-256", "host"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def template_fields(template: str) -> list[str]:
    """Placeholder names in ``template``; raises ValueError for anything but plain ``{name}`` fields."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    for _literal, field, spec, conv in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{field}}} in {template!r} (allowed: {allowed})")
        if spec or conv:
            raise ValueError(f"placeholder {{{field}}} in {template!r} must not have a format spec or conversion")
        names.append(field)
    return names


def _http_url(v: object) -> object:
    if not isinstance(v, str):
        raise ValueError("must be a URL string")
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {v!r}")
    return v


HttpUrl = Annotated[str, BeforeValidator(_http_url)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class _Retrying(Strict):
    retries: int = Field(3, ge=0, le=10, description="extra attempts after a 5xx / connection error / timeout")
    backoff_s: float = Field(0.5, ge=0, le=60, description="first retry waits this long, then doubles")
    backoff_max_s: float = Field(10.0, ge=0, le=600, description="cap on one backoff wait")


class WebhookExecutorConfig(_Retrying):
    """POST a signed JSON scale request to ``url`` (see docs/actions.md for the receiver's side)."""

    type: Literal["webhook"]
    url: HttpUrl
    secret: str | None = Field(None, min_length=16, description="HMAC-SHA256 key (prefer secret_env)")
    secret_env: str | None = Field(None, description="name of the environment variable holding the key")
    timeout_s: Seconds = 5.0
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    verify_tls: bool = True

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError(f"not an environment variable name: {v!r}")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not _HEADER_NAME.match(k):
                raise ValueError(f"not an HTTP header name: {k!r}")
            if k.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {k!r} is set by pfepo and cannot be overridden")
            if "\n" in val or "\r" in val:
                raise ValueError(f"header {k!r} value must be one line")
        return v

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookExecutorConfig:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret or secret_env")
        return self

    def resolve_secret(self) -> bytes:
        """The HMAC key; a missing/short environment variable is an error at start-up, not at send time."""
        if self.secret is not None:
            return self.secret.encode()
        value = os.environ.get(self.secret_env or "", "")
        if len(value) < 16:
            raise ValueError(f"environment variable {self.secret_env} must hold a secret of 16+ characters")
        return value.encode()


class CommandExecutorConfig(Strict):
    """Run ``argv`` (no shell) with placeholders filled in; exit status 0 is success."""

    type: Literal["command"]
    argv: list[str] = Field(min_length=1, description="program and arguments, e.g. [scale.sh, '{region}']")
    timeout_s: Seconds = 30.0
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="added to the daemon's environment")

    @field_validator("argv")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        if template_fields(v[0]):
            raise ValueError("the program (argv[0]) must be fixed, not a template")
        if not v[0].strip():
            raise ValueError("argv[0] must name a program")
        for a in v:
            template_fields(a)
            if "\x00" in a:
                raise ValueError("arguments must not contain NUL")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"not environment variable names: {', '.join(bad)}")
        return v


class KubernetesExecutorConfig(_Retrying):
    """Patch the ``scale`` subresource of a Deployment to ``replicas = capacity``."""

    type: Literal["kubernetes"]
    namespace: str = Field("default", description="namespace; may use placeholders")
    deployment: str = Field("{application}", description="Deployment name; may use placeholders")
    kubeconfig: str | None = Field(None, description="kubeconfig path (default: $KUBECONFIG or ~/.kube/config)")
    context: str | None = None
    in_cluster: bool = Field(False, description="use the pod's service account instead of a kubeconfig")
    timeout_s: Seconds = 10.0
    max_replicas: int = Field(1000, ge=1, le=100_000, description="refuse requests above this")
    retries: int = Field(2, ge=0, le=10)

    @field_validator("namespace", "deployment")
    @classmethod
    def _template(cls, v: str) -> str:
        template_fields(v)
        if not v:
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _source(self) -> KubernetesExecutorConfig:
        if self.in_cluster and (self.kubeconfig or self.context):
            raise ValueError("in_cluster excludes kubeconfig/context")
        return self


ExecutorConfig = Annotated[
    WebhookExecutorConfig | CommandExecutorConfig | KubernetesExecutorConfig, Field(discriminator="type")
]


class DispatcherConfig(Strict):
    """How scale requests are queued, deduplicated and rate-limited (daemon ``scaling:``)."""

    workers: int = Field(2, ge=1, le=64, description="threads calling executors")
    queue_max: int = Field(64, ge=1, le=100_000, description="requests waiting; beyond this they are dropped")
    dedup_window_s: float = Field(600.0, ge=0, le=86400, description="same idempotency key is not resent within")
    rate_per_min: float = Field(6.0, gt=0, le=6000, description="token refill per (executor, target)")
    burst: int = Field(2, ge=1, le=1000, description="calls allowed at once per (executor, target)")


def _statuses(v: object) -> object:
    return [v] if isinstance(v, int) else v


class HealthCheckConfig(Strict):
    """An HTTP check of one endpoint: ``health_up`` is 1 when the status is expected, plus ``response_ms``."""

    url: HttpUrl
    interval_s: float = Field(10.0, ge=0.05, le=3600)
    timeout_s: float = Field(2.0, gt=0, le=60)
    expected_status: Annotated[list[Annotated[int, Field(ge=100, le=599)]], BeforeValidator(_statuses)] = Field(
        default_factory=lambda: [200], min_length=1, description="one status or a list")
    method: Literal["GET", "HEAD"] = "GET"
    verify_tls: bool = True


class ScrapeMetric(Strict):
    """Where one sample metric comes from in the scraped text."""

    name: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", description="sample name as in the text, e.g. x_total")
    labels: dict[str, str] = Field(default_factory=dict, description="only series carrying these label values")
    aggregate: Literal["sum", "avg", "max", "min"] = Field("sum", description="how matching series combine")
    rate: bool = Field(False, description="per-second rate between scrapes (for counters)")
    scale: float = Field(1.0, description="multiply the value (e.g. 100 for a fraction -> percent)")

    @field_validator("scale")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v) or v == 0:
            raise ValueError("scale must be a finite non-zero number")
        return v


def _metric_spec(v: object) -> object:
    return {"name": v} if isinstance(v, str) else v


class ScrapeConfig(Strict):
    """Pull a Prometheus text endpoint and map its series to sample metrics (cpu_pct, mem_pct, ...)."""

    url: HttpUrl
    interval_s: float = Field(15.0, ge=0.05, le=3600)
    timeout_s: float = Field(5.0, gt=0, le=60)
    max_bytes: int = Field(4_000_000, ge=1024, le=100_000_000, description="refuse larger exposition bodies")
    metrics: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")],
        Annotated[ScrapeMetric, BeforeValidator(_metric_spec)],
    ] = Field(min_length=1, description='sample metric -> source, e.g. {cpu_pct: process_cpu_percent}')
    verify_tls: bool = True
