"""The retry loop shared by the webhook and kubernetes executors, with a recorded sleep (no waiting)."""

from __future__ import annotations

import threading

import pytest

from pfepo.actions.executors.retry import Failed, Failure, failed_result, retryable_status, retrying


class Flaky:
    """Fails with ``errors`` in order, then returns the attempt number."""

    def __init__(self, *errors: Exception):
        self.errors = list(errors)
        self.calls: list[int] = []

    def __call__(self, attempt: int) -> int:
        self.calls.append(attempt)
        if self.errors:
            raise self.errors.pop(0)
        return attempt


def classify(exc: Exception) -> Failure | None:
    return Failure(f"io: {exc}") if isinstance(exc, OSError) else None


def run(call, retries=3, closing=None, sleep=None):
    waits: list[float] = []
    tried = retrying(call, classify, retries=retries, backoff_s=0.5, backoff_max_s=1.5,
                     sleep=sleep or waits.append, closing=closing or threading.Event())
    return tried, waits


def test_succeeds_after_retryable_failures_with_backoff():
    call = Flaky(OSError("refused"), Failed(Failure("HTTP 503", 503)))
    tried, waits = run(call)
    assert (tried.value, tried.attempts, tried.failure) == (3, 3, None)
    assert call.calls == [1, 2, 3] and waits == [0.5, 1.0]


def test_a_final_failure_stops_at_once():
    call = Flaky(Failed(Failure("HTTP 422", 422, retry=False, output="bad")))
    tried, waits = run(call)
    assert tried.value is None and tried.final and tried.attempts == 1 and waits == []
    res = failed_result(tried, 0.1, "ns/web: ")
    assert (res.detail, res.error, res.status, res.output) == ("ns/web: HTTP 422 (not retried)", "HTTP 422", 422,
                                                               "bad")


def test_gives_up_after_the_retries_with_the_last_error():
    call = Flaky(*(OSError(f"e{i}") for i in range(5)))
    tried, waits = run(call, retries=2)
    assert tried.attempts == 3 and waits == [0.5, 1.0] and tried.failure.error == "io: e2"
    assert failed_result(tried, 0.0).detail == "gave up after 3 attempt(s): io: e2"


def test_close_during_a_backoff_wait_ends_the_loop():
    closing = threading.Event()
    call = Flaky(OSError("down"), OSError("down"))
    tried, _ = run(call, closing=closing, sleep=lambda s: closing.set())
    assert tried.stopped and tried.attempts == 1 and call.calls == [1]
    assert failed_result(tried, 0.0).error == "shutting down after attempt 1: io: down"


def test_an_unclassified_exception_is_a_bug_and_propagates():
    with pytest.raises(KeyError):
        run(Flaky(KeyError("x")))


@pytest.mark.parametrize("status, retry", [(None, True), (0, True), (500, True), (503, True), (429, True),
                                           (400, False), (401, False), (404, False), (422, False)])
def test_retryable_status(status, retry):
    assert retryable_status(status) is retry
