"""Traffic shares <-> SELECT-group bucket weights.

OVS hashes each flow into at most 64 slots (16 by default) and gives each bucket slots in proportion
to its weight, so shares finer than 1/64 cannot be honoured. We quantise shares to integers summing to
``slots`` (64 by default) with the largest-remainder method: the sum is exact, no weight is negative,
and each weight is off by less than one slot from the exact share.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

# Bounds on operator input. A weight is a proportion: 0, or within [MIN_WEIGHT, MAX_WEIGHT], so the sum
# of any weight set stays finite (1e308 + 1e308 overflows to inf and every share would become 0) and a
# denormal such as 5e-324 cannot stand for "almost nothing" in a division.
MIN_WEIGHT = 1e-6
MAX_WEIGHT = 1e6
# Meter rates in Mbit/s: below 0.1 an OpenFlow meter starves a service (5e-324 became a 1 kbit/s meter).
MIN_BANDWIDTH_MBPS = 0.1
MAX_BANDWIDTH_MBPS = 1e6


def weight_problem(key: str, w: object) -> str | None:
    """Why ``w`` is not an acceptable weight, or None."""
    if isinstance(w, bool) or not isinstance(w, int | float):
        return f"weight for {key!r} must be a number, got {type(w).__name__}"
    if isinstance(w, int) and abs(w) > MAX_WEIGHT:
        return f"weight for {key!r} must be a finite number >= 0 and <= {MAX_WEIGHT:g}"
    if not math.isfinite(w) or w < 0 or w > MAX_WEIGHT:
        return f"weight for {key!r} must be a finite number >= 0 and <= {MAX_WEIGHT:g}, got {w!r}"
    if 0 < w < MIN_WEIGHT:
        return f"weight for {key!r} must be 0 or at least {MIN_WEIGHT:g}, got {w!r}"
    return None


def bandwidth_problem(key: str, v: object) -> str | None:
    """Why ``v`` is not an acceptable bandwidth (Mbit/s, None = unmetered), or None."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or isinstance(v, int) and abs(v) > MAX_BANDWIDTH_MBPS \
            or not (MIN_BANDWIDTH_MBPS <= v <= MAX_BANDWIDTH_MBPS):
        shown = repr(v) if isinstance(v, float) or isinstance(v, int) and abs(v) <= MAX_BANDWIDTH_MBPS else "a number"
        return (f"bandwidth for {key!r} must be a number in [{MIN_BANDWIDTH_MBPS:g}, {MAX_BANDWIDTH_MBPS:g}] "
                f"Mbit/s or null, got {shown}")
    return None


def normalise(weights: Mapping[str, float]) -> dict[str, float]:
    """Shares summing to 1. Raises ValueError on negative, non-finite or all-zero weights, or a sum that
    overflows (operator input is bounded earlier by ``weight_problem``; this guards every other path)."""
    for k, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weight for {k!r} must be a finite number >= 0, got {w!r}")
    try:
        total = math.fsum(float(w) for w in weights.values())
    except OverflowError:
        total = math.inf
    if not math.isfinite(total):
        raise ValueError("weights are too large: their sum overflows")
    if total <= 0:
        raise ValueError("weights must sum to more than 0")
    return {k: float(w) / total for k, w in weights.items()}


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
