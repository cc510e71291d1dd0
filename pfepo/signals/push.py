"""Validation of pushed signals (POST /api/v1/signals): pure, so the API handler stays thin.

Regional monitoring and applications push batches of {endpoint, metric, value, timestamp?}. Each item is
checked on its own; good items are stored, bad ones are reported back with a reason, never dropped
silently and never failing the whole batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pfepo.telemetry.samples import Sample

METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_SKEW_S = 3600.0  # reject timestamps more than an hour in the future or a week in the past
MAX_AGE_S = 7 * 86400.0


@dataclass(frozen=True)
class Rejected:
    index: int
    reason: str


def validate_signals(
    items: object, known: Mapping[str, tuple[tuple[str, str], ...]], now: float, max_items: int
) -> tuple[list[Sample], list[Rejected]]:
    """Split a decoded JSON batch into samples to store and rejected items.

    ``known`` maps every subject that may be pushed (endpoint names, ``uplink:REGION``) to its tags.
    Raises ValueError when the batch itself is malformed (not a list, too many items).
    """
    if isinstance(items, Mapping) and "signals" in items:
        items = items["signals"]
    if not isinstance(items, list):
        raise ValueError('body must be a JSON list of signals or {"signals": [...]}')
    if len(items) > max_items:
        raise ValueError(f"batch has {len(items)} items; at most {max_items} per request")
    good: list[Sample] = []
    bad: list[Rejected] = []
    for i, it in enumerate(items):
        reason = _check(it, known, now)
        if reason:
            bad.append(Rejected(i, reason))
            continue
        ts = float(it.get("timestamp", now))
        good.append(Sample(ts, it["endpoint"], it["metric"], float(it["value"]),
                           (*known[it["endpoint"]], ("source", "push"))))
    return good, bad


def _check(it: object, known: Mapping[str, object], now: float) -> str | None:
    if not isinstance(it, Mapping):
        return "item must be an object"
    extra = set(it) - {"endpoint", "metric", "value", "timestamp"}
    if extra:
        return f"unknown field(s): {', '.join(sorted(extra))}"
    ep, metric, value = it.get("endpoint"), it.get("metric"), it.get("value")
    if not isinstance(ep, str) or ep not in known:
        return f"unknown endpoint {ep!r}"
    if not isinstance(metric, str) or not METRIC_NAME.match(metric):
        return f"metric must match {METRIC_NAME.pattern}, got {metric!r}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"value must be a finite number, got {value!r}"
    ts = it.get("timestamp", now)
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        return f"timestamp must be epoch seconds, got {ts!r}"
    if ts > now + MAX_SKEW_S or ts < now - MAX_AGE_S:
        return f"timestamp {ts} is too far from now ({now:.0f})"
    return None


def pushable_subjects(regions: Iterable) -> dict[str, tuple[tuple[str, str], ...]]:
    """Subjects that may be pushed, with their tags: endpoints and region uplinks."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for r in regions:
        out[f"uplink:{r.name}"] = (("region", r.name),)
        for e in r.endpoints:
            out[e.name] = (("region", r.name),)
    return out
