"""Wait on a condition, not a clock: poll ``predicate`` until it returns something truthy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, message: str = "condition",
               interval: float = 0.05) -> T:
    """Return the first truthy value of ``predicate()``; AssertionError naming ``message`` after ``timeout``.

    Exceptions from ``predicate`` count as "not yet" (a server still starting), the last one is reported.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            got = predicate()
            if got:
                return got
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)
