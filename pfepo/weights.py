"""Traffic shares <-> SELECT-group bucket weights.

OVS hashes each flow into at most 64 slots (16 by default) and gives each bucket slots in proportion
to its weight, so shares finer than 1/64 cannot be honoured. We quantise shares to integers summing to
``slots`` (64 by default) with the largest-remainder method: the sum is exact, no weight is negative,
and each weight is off by less than one slot from the exact share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def normalise(weights: Mapping[str, float]) -> dict[str, float]:
    """Shares summing to 1. Raises ValueError on negative, non-finite or all-zero weights."""
    for k, w in weights.items():
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"weight for {k!r} must be a finite number >= 0, got {w!r}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("weights must sum to more than 0")
    return {k: w / total for k, w in weights.items()}


def quantize(weights: Mapping[str, float], slots: int = 64) -> dict[str, int]:
    """Integers summing to ``slots`` closest to the given proportions (largest remainder, ties by name)."""
    shares = normalise(weights)
    exact = {k: s * slots for k, s in shares.items()}
    out = {k: math.floor(v) for k, v in exact.items()}
    left = slots - sum(out.values())
    order = sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))
    for k in order[:left]:
        out[k] += 1
    return out


def effective(weights: Mapping[str, float], down: set[str]) -> dict[str, float]:
    """Weights with regions whose path is down set to 0; if all would be 0, keep them unchanged.

    Keeping the last weights when every path is down avoids a group with only zero buckets (which drops
    everything) while nothing better exists.
    """
    out = {k: (0.0 if k in down else float(w)) for k, w in weights.items()}
    return out if sum(out.values()) > 0 else dict(weights)
