"""What the predictor hands to the policy engine for one endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Prediction:
    """P(failure within ``horizon_s``) for an endpoint, with what drove it.

    ``predicted`` holds forecast metric values at the horizon (e.g. {"latency_ms": 140.0}) so policy
    criteria can apply to predicted values; ``drivers`` lists (feature or metric, contribution) pairs,
    largest first, so every decision can be explained.
    """

    endpoint: str
    ts: float
    probability: float
    horizon_s: float
    predicted: dict[str, float] = field(default_factory=dict)
    drivers: list[tuple[str, float]] = field(default_factory=list)
    model: str = "forecast"
