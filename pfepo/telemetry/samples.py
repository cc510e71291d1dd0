"""The one record every source produces and every store/consumer takes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Sample:
    """A measurement: ``subject`` is an endpoint name or a ``switch:port`` id.

    ``tags`` carry context for stores that index it (region, service, switch, port).
    """

    ts: float
    subject: str
    metric: str
    value: float
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str, default: str = "") -> str:
        for k, v in self.tags:
            if k == key:
                return v
        return default


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Many samples taken at one instant, columnar: one row per subject, one column per metric.

    Port counters arrive as one reply per switch; keeping them as one numpy array from parse to store
    costs one object per reply instead of seven ``Sample`` objects per port. ``tags[i]`` belongs to
    ``subjects[i]``. NaN values are "no value" and are never stored.
    """

    ts: float
    subjects: tuple[str, ...]
    tags: tuple[tuple[tuple[str, str], ...], ...]
    metrics: tuple[str, ...]
    values: np.ndarray  # float64, shape (len(subjects), len(metrics))

    def __len__(self) -> int:
        return int(self.values.size)

    def samples(self) -> list[Sample]:
        """The same data as Samples (for stores and consumers that take one record at a time)."""
        out = []
        for subject, tags, row in zip(self.subjects, self.tags, self.values.tolist(), strict=True):
            out.extend(Sample(self.ts, subject, m, v, tags) for m, v in zip(self.metrics, row, strict=True)
                       if v == v)
        return out


def expand(items) -> list[Sample]:
    """Samples and SampleBatches -> Samples."""
    out: list[Sample] = []
    for it in items:
        if isinstance(it, SampleBatch):
            out.extend(it.samples())
        else:
            out.append(it)
    return out
