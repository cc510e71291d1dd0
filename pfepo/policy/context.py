"""Endpoint context: what the daemon config says about each (service, endpoint) pair.

Policies select and weigh endpoints by service, region, application, priority and SLA. An endpoint
serves a service when its region carries a weight for the service and its application matches the
service's application (if no endpoint of that region matches, every endpoint of the region serves it).
Endpoint-level ``priority``/``sla`` win over the service's when set explicitly in the config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pfepo.config import PfepoConfig


@dataclass(frozen=True)
class EndpointContext:
    endpoint: str
    region: str
    service: str | None
    application: str
    priority: str
    sla_tier: str | None = None
    sla_weight: float = 1.0
    sla_latency_ms: float | None = None
    nominal_share: float = 0.0  # the service's configured share for this region (0..1)
    region_count: int = 1  # regions the service spreads over

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.service, self.endpoint)

    def attr(self, name: str) -> str | None:
        return getattr(self, name, None)

    def to_dict(self) -> dict:
        return asdict(self)


def contexts_from_config(config: PfepoConfig) -> list[EndpointContext]:
    """One context per (service, endpoint) pair; endpoints serving no service get ``service=None``."""
    out: list[EndpointContext] = []
    served: set[str] = set()
    for svc in config.services:
        total = sum(svc.weights.values()) or 1.0
        for region in config.regions:
            if region.name not in svc.weights:
                continue
            eps = [e for e in region.endpoints if e.application == svc.application] or list(region.endpoints)
            for e in eps:
                served.add(e.name)
                explicit = e.model_fields_set
                sla = e.sla if "sla" in explicit else svc.sla
                out.append(EndpointContext(
                    endpoint=e.name,
                    region=region.name,
                    service=svc.name,
                    application=e.application,
                    priority=e.priority if "priority" in explicit else svc.priority,
                    sla_tier=getattr(sla, "tier", None),
                    sla_weight=float(sla.weight),
                    sla_latency_ms=sla.latency_ms,
                    nominal_share=svc.weights[region.name] / total,
                    region_count=len(svc.weights),
                ))
    for region in config.regions:
        for e in region.endpoints:
            if e.name not in served:
                out.append(EndpointContext(
                    endpoint=e.name, region=region.name, service=None, application=e.application,
                    priority=e.priority, sla_tier=getattr(e.sla, "tier", None), sla_weight=float(e.sla.weight),
                    sla_latency_ms=e.sla.latency_ms,
                ))
    return out
