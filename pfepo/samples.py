"""The one record every source produces and every store/consumer takes."""

from __future__ import annotations

from dataclasses import dataclass


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
