"""Signed JSON POST with retries and an ``Idempotency-Key`` (receiver side: docs/actions.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from pfepo.actions.config import WebhookExecutorConfig
from pfepo.actions.executors.base import BaseExecutor, ExecutionResult, ScaleRequest, clip
from pfepo.actions.executors.retry import Failed, Failure, failed_result, retryable_status, retrying

SIGNATURE_HEADER = "X-Pfepo-Signature-256"
ATTEMPT_HEADER = "X-Pfepo-Attempt"
USER_AGENT = "pfepo-scaler/1"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Receiver-side check (constant time); used by the tests and usable by Python receivers."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header.strip())


class WebhookExecutor(BaseExecutor):
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
        if request.action != "scale":  # a drain hook: the receiver closes (or stops closing) keep-alives
            doc["type"], doc["action"] = "drain_hook", request.action
            del doc["desired_capacity"]
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def _classify(self, exc: Exception) -> Failure | None:
        if isinstance(exc, httpx.TimeoutException):
            return Failure(f"timeout after {self.cfg.timeout_s:g} s ({type(exc).__name__})")
        if isinstance(exc, httpx.HTTPError):
            return Failure(f"{type(exc).__name__}: {exc}")
        return None

    def execute(self, request: ScaleRequest) -> ExecutionResult:
        start = time.monotonic()
        body = self.body(request)
        headers = {**self.cfg.headers, "Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Idempotency-Key": request.idempotency_key, SIGNATURE_HEADER: sign(self._secret, body)}

        def post(attempt: int) -> tuple[int, str]:
            resp = self._client.post(self.cfg.url, content=body, timeout=self.cfg.timeout_s,
                                     headers={**headers, ATTEMPT_HEADER: str(attempt)})
            status, text = resp.status_code, clip(resp.text, 500)
            if not 200 <= status < 300:
                raise Failed(Failure(f"HTTP {status}", status, retryable_status(status), text))
            return status, text

        tried = retrying(post, self._classify, retries=self.cfg.retries, backoff_s=self.cfg.backoff_s,
                         backoff_max_s=self.cfg.backoff_max_s, sleep=self.sleep, closing=self.closing)
        if tried.value is None:
            return failed_result(tried, time.monotonic() - start)
        status, text = tried.value
        return ExecutionResult(True, f"HTTP {status}", tried.attempts, time.monotonic() - start, status, None, text)

    def close(self) -> None:
        super().close()
        if self._own_client:
            self._client.close()
