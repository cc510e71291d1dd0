"""A validated set of policies and the one conflict rule.

Conflict rule: when several enabled policies match an endpoint, the one with the highest ``priority``
wins alone (actions are never merged). Two enabled policies with the *same* priority that can match
the same endpoint are rejected at load time as a conflict, so the winner is never decided by accident;
the name order used below as a tie-break only makes the choice deterministic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from pfepo.policy.context import EndpointContext
from pfepo.policy.model import Policy


def matches(policy: Policy, ctx: EndpointContext) -> bool:
    for attr, wanted in policy.match.field_values().items():
        if wanted and ctx.attr(attr) not in wanted:
            return False
    return True


def may_overlap(a: Policy, b: Policy, contexts: Sequence[EndpointContext] | None) -> bool:
    """Whether two policies can select a common endpoint: exactly with contexts, else by selectors."""
    if contexts is not None:
        return any(matches(a, c) and matches(b, c) for c in contexts)
    fa, fb = a.match.field_values(), b.match.field_values()
    return all(not (fa[k] and fb[k]) or bool(set(fa[k]) & set(fb[k])) for k in fa)


@dataclass(frozen=True)
class PolicySet:
    """Immutable: the reloader swaps whole sets, so readers never see a half-updated set."""

    policies: tuple[Policy, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)  # policy name -> "FILE:LINE"
    files: tuple[str, ...] = ()

    @cached_property
    def ordered(self) -> list[Policy]:
        """Enabled policies, winner first: highest priority, then name."""
        return sorted((p for p in self.policies if p.enabled), key=lambda p: (-p.priority, p.name))

    @cached_property
    def _selectors(self) -> list[tuple[Policy, list[tuple[str, frozenset[str]]]]]:
        return [(p, [(k, frozenset(v)) for k, v in p.match.field_values().items() if v]) for p in self.ordered]

    def select(self, ctx: EndpointContext) -> tuple[Policy | None, list[Policy]]:
        """(winning policy, the other matching policies it overrode)."""
        hits = [p for p, sel in self._selectors if all(getattr(ctx, k) in vals for k, vals in sel)]
        return (hits[0], hits[1:]) if hits else (None, [])

    def get(self, name: str) -> Policy | None:
        return next((p for p in self.policies if p.name == name), None)

    @property
    def digest(self) -> str:
        """Content hash, so operators and the API can tell which set is live."""
        body = json.dumps([p.model_dump(mode="json") for p in self.policies], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    def summary(self) -> dict:
        return {
            "digest": self.digest,
            "files": list(self.files),
            "policies": [{"name": p.name, "priority": p.priority, "enabled": p.enabled,
                          "source": self.sources.get(p.name)} for p in self.ordered],
        }

    @classmethod
    def of(cls, policies: Iterable[Policy]) -> PolicySet:
        """Build a set in code (tests, simulate) without files or conflict checks."""
        return cls(tuple(policies))
