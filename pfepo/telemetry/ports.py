"""Names and tags for port samples, so history speaks of endpoints and regions, not port numbers."""

from __future__ import annotations

from pfepo.config import PfepoConfig


class PortNames:
    """(switch, port) -> (subject, tags). Endpoint ports are named by endpoint, uplinks ``uplink:REGION``."""

    def __init__(self, cfg: PfepoConfig):
        self._names: dict[tuple[str, int], tuple[str, dict[str, str]]] = {}
        for r in cfg.regions:
            self._names[(r.uplink.switch, r.uplink.port)] = (f"uplink:{r.name}", {"region": r.name, "kind": "uplink"})
            for e in r.endpoints:
                self._names[(r.switch, e.port)] = (e.name, {"region": r.name, "kind": "endpoint"})

    def name(self, switch: str, port: int) -> tuple[str, tuple[tuple[str, str], ...]]:
        subject, extra = self._names.get((switch, port), (f"{switch}:{port}", {"kind": "port"}))
        tags = {"switch": switch, "port": str(port), **extra}
        return subject, tuple(sorted(tags.items()))
