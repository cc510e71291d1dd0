"""What one planner step hands to the actuation point (and the audit log)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Plan:
    """Desired state after one step.

    ``weights`` is what the single actuation point should make the data plane match: in dry-run it is
    the ``current`` weights unchanged, while ``proposed`` always holds what the planner would do.
    ``changes`` (weight moves with reasons), ``events`` (state transitions and holds) and ``actions``
    (allocate_bandwidth / scale_application / drain_hook requests) are plain dicts ready for the audit log; every
    one carries ``dry_run`` so a consumer can tell "would do" from "did".
    """

    ts: float
    dry_run: bool
    weights: dict[str, dict[str, int]]
    proposed: dict[str, dict[str, int]]
    changes: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    states: dict[str, dict[str, dict]] = field(default_factory=dict)
    evicted: dict[str, list[str]] = field(default_factory=dict)  # regions emptied per service (not in dry-run)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict:
        return {
            "ts": self.ts, "dry_run": self.dry_run, "weights": self.weights, "proposed": self.proposed,
            "changes": self.changes, "events": self.events, "actions": self.actions, "states": self.states,
            "evicted": self.evicted,
        }
