"""The one retry loop of the network executors (webhook, kubernetes): exponential backoff, cut short on close.

An executor passes the call (given the 1-based attempt number) and a ``classify`` that turns what the
call raised into a :class:`Failure` saying whether another attempt can help. What the loop returns is
enough to build an :class:`~pfepo.actions.executors.base.ExecutionResult` without repeating the
bookkeeping in every executor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pfepo.actions.executors.base import ExecutionResult

T = TypeVar("T")


class Failed(Exception):
    """Raised by a call for an answer that is a failure but not an exception of its client (HTTP 5xx)."""

    def __init__(self, failure: Failure):
        super().__init__(failure.error)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt: ``retry`` False means another attempt cannot help (4xx but 429)."""

    error: str
    status: int | None = None
    retry: bool = True
    output: str = ""


@dataclass(slots=True)
class Tried(Generic[T]):
    """The outcome: ``value`` if an attempt succeeded, else the last ``failure``."""

    value: T | None
    attempts: int
    failure: Failure | None = None
    stopped: bool = False  # close() ended a backoff wait
    final: bool = False  # the last failure was not retryable


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Wait before retry number ``attempt`` (1-based): base, 2*base, 4*base ... capped."""
    return min(cap, base * (2 ** (attempt - 1)))


def retryable_status(status: int | None) -> bool:
    """Connection errors (no status), 5xx and 429 may pass on another attempt; other 4xx will not."""
    return not status or status >= 500 or status == 429


def retrying(call: Callable[[int], T], classify: Callable[[Exception], Failure | None], *, retries: int,
             backoff_s: float, backoff_max_s: float, sleep: Callable[[float], Any],
             closing: threading.Event) -> Tried[T]:
    """Call up to ``retries + 1`` times. ``classify`` returns None for an exception that is a bug, not a
    failed call: it propagates. :class:`Failed` raised by ``call`` carries its failure as it is."""
    failure: Failure | None = None
    attempt = 0
    for attempt in range(1, retries + 2):
        if attempt > 1:
            sleep(backoff_delay(attempt - 1, backoff_s, backoff_max_s))
            if closing.is_set():
                return Tried(None, attempt - 1, failure, stopped=True)
        try:
            return Tried(call(attempt), attempt)
        except Failed as exc:
            failure = exc.failure
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
        if not failure.retry:
            return Tried(None, attempt, failure, final=True)
    return Tried(None, attempt, failure)


def failed_result(tried: Tried[Any], duration_s: float, prefix: str = "") -> ExecutionResult:
    """The audit record of a call that did not succeed; ``prefix`` names the target (``ns/name: ``)."""
    f = tried.failure or Failure("no attempt made")
    error = f"shutting down after attempt {tried.attempts}: {f.error}" if tried.stopped else f.error
    detail = (f"{prefix}{error} (not retried)" if tried.final
              else f"{prefix}gave up after {tried.attempts} attempt(s): {error}")
    return ExecutionResult(False, detail, tried.attempts, duration_s, f.status, error, f.output)
