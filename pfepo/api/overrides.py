"""Operator overrides checked against the live policies' safety rules (pure: no I/O).

An override may not shift more regions of a service away than the strictest ``max_regions_drained``
of the policies that select the service: a region counts as shifted away when it is up, has a nominal
(config) share and gets less than the policies' ``min_share_percent`` (or nothing). Regions whose
uplink is down do not count: moving traffic off a dead path is always allowed. An admin may ``force``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pfepo.policy.context import contexts_from_config
from pfepo.policy.policyset import matches


def safety_problem(cfg, policies: Iterable, service: str, shares: Mapping[str, float],
                   down: set[str]) -> str | None:
    """Why ``shares`` (summing to 1) breaks a safety rule of ``policies`` for ``service``, or None."""
    contexts = [c for c in contexts_from_config(cfg) if c.service == service]
    relevant = [p for p in policies if p.enabled and any(matches(p, c) for c in contexts)]
    if not relevant:
        return None
    cap_policy = min(relevant, key=lambda p: p.safety.max_regions_drained)
    cap = cap_policy.safety.max_regions_drained
    floor_pct = max(p.safety.min_share_percent for p in relevant)
    nominal = cfg.service(service).weights
    away = sorted(r for r, s in shares.items()
                  if r not in down and nominal.get(r, 0) > 0 and (s <= 0 or s * 100 < floor_pct))
    if len(away) > cap:
        return (f"override shifts {len(away)} regions away ({', '.join(away)}: share below "
                f"{floor_pct:g}%), policy {cap_policy.name!r} allows max_regions_drained {cap}; "
                f"an admin token may send \"force\": true")
    return None
