"""The history-store interface every backend implements (embedded SQLite/DuckDB, InfluxDB)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from pfepo.telemetry.samples import Sample


@runtime_checkable
class HistoryStore(Protocol):
    """Append-only time-series history of Samples.

    ``write`` takes a batch (callers batch; see writer.BatchWriter). Queries return samples ordered by
    time ascending. Implementations must be safe to call from one writer thread and other reader threads.
    """

    def write(self, samples: Sequence[Sample]) -> None: ...

    def range(
        self,
        subject: str | None = None,
        metric: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int | None = None,
    ) -> list[Sample]:
        """Samples with start <= ts < end (either bound optional), oldest first, at most ``limit``."""
        ...

    def last(self, subject: str, metric: str | None = None, n: int = 100) -> list[Sample]:
        """The newest ``n`` samples for a subject (and metric), oldest first."""
        ...

    def subjects(self) -> list[str]: ...

    def close(self) -> None: ...


def tags_to_str(tags: Iterable[tuple[str, str]]) -> str:
    """Compact, order-stable encoding of tags for stores without a tag type."""
    return ",".join(f"{k}={v}" for k, v in sorted(tags))


@functools.lru_cache(maxsize=65536)
def tags_str_cached(tags: tuple[tuple[str, str], ...]) -> str:
    """``tags_to_str`` memoised: batches repeat the same per-port tags on every reply."""
    return tags_to_str(tags)


def str_to_tags(s: str | None) -> tuple[tuple[str, str], ...]:
    if not s:
        return ()
    return tuple(tuple(p.split("=", 1)) for p in s.split(","))  # type: ignore[misc]
