"""Application scaling executors: the adapters that ask the outside world for more capacity in a region.

Each executor turns a :class:`ScaleRequest` into one outside call and reports an
:class:`ExecutionResult` (base.py). One module per kind:

* webhook.py - :class:`WebhookExecutor`, signed JSON POST with retries and an ``Idempotency-Key``
  (receiver side: docs/actions.md).
* command.py - :class:`CommandExecutor`, an argv template run without a shell, in its own process
  group, killed on timeout.
* kubernetes.py - :class:`KubernetesExecutor`, patches a Deployment's ``scale`` subresource with the
  official client (the optional extra ``pfepo[kubernetes]``).

Webhook and kubernetes share one retry loop (retry.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pfepo.actions.executors.base import BaseExecutor, ExecutionResult, Executor, ScaleRequest
from pfepo.actions.executors.command import CommandExecutor
from pfepo.actions.executors.kubernetes import KubernetesExecutor
from pfepo.actions.executors.retry import backoff_delay, retrying
from pfepo.actions.executors.webhook import (
    ATTEMPT_HEADER,
    SIGNATURE_HEADER,
    USER_AGENT,
    WebhookExecutor,
    sign,
    verify,
)

__all__ = [
    "ATTEMPT_HEADER", "SIGNATURE_HEADER", "USER_AGENT", "BaseExecutor", "CommandExecutor", "ExecutionResult",
    "Executor", "KubernetesExecutor", "ScaleRequest", "WebhookExecutor", "backoff_delay", "build_executor",
    "build_executors", "retrying", "sign", "verify",
]

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
