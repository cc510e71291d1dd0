"""Desired and observed state of the controller, thread-safe.

The desired traffic shares per service are the single source of truth: the OpenFlow adapter makes the
switches match them (on connect, on reconnect, on every poll), the REST API and the planner change them.
They are persisted so a daemon restart leaves traffic where it was.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pfepo.config import PfepoConfig
from pfepo.telemetry.rates import PortRates
from pfepo.weights import effective, normalise, quantize

log = logging.getLogger(__name__)


class WeightError(ValueError):
    """An operator-supplied weight set that cannot be applied (unknown region, negative, zero sum)."""


@dataclass
class PortInfo:
    up: bool = True
    rates: PortRates | None = None
    changed_at: float = 0.0


@dataclass
class SwitchInfo:
    name: str
    dpid: int
    connected: bool = False
    connected_at: float = 0.0
    ports: dict[int, PortInfo] = field(default_factory=dict)
    applied: dict[int, dict[str, int]] = field(default_factory=dict)  # group id -> {label: weight}
    meters: dict[int, object] = field(default_factory=dict)  # meter id -> desired.Meter read back


class ControllerState:
    def __init__(self, cfg: PfepoConfig, clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.clock = clock
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []
        self.started_at = clock()
        self.switches: dict[int, SwitchInfo] = {s.dpid: SwitchInfo(s.name, s.dpid) for s in cfg.switches}
        self.unknown_switches: dict[int, float] = {}
        self.desired: dict[str, dict[str, float]] = {s.name: normalise(s.weights) for s in cfg.services}
        self.desired_source: dict[str, str] = {s.name: "config" for s in cfg.services}
        # Weights the planner currently wants (None: follow ``desired``). Not persisted: after a restart
        # the planner resumes from what the switches hold and fails back gradually.
        self.planned: dict[str, dict[str, int] | None] = {s.name: None for s in cfg.services}
        self.desired_version = 0  # bumps on every operator/config change of ``desired``
        # Regions whose pinned connections the planner evicted (connection affinity), per service.
        self.evicted: dict[str, frozenset[str]] = {s.name: frozenset() for s in cfg.services}
        self.bandwidth: dict[str, dict[str, float | None]] = {
            s.name: {r: s.bandwidth_mbps.get(r) for r in s.weights} for s in cfg.services
        }
        self._path = Path(cfg.state_dir) / "desired.json"
        self._load()

    # --- desired weights -------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            saved = json.loads(self._path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable saved state %s: %s", self._path, exc)
            return
        for name, bw in saved.get("bandwidth", {}).items():
            if name in self.bandwidth and set(bw) == set(self.bandwidth[name]):
                self.bandwidth[name] = bw
        for name, weights in saved.get("desired", {}).items():
            if name in self.desired and set(weights) == set(self.desired[name]):
                try:
                    self.desired[name] = normalise(weights)
                    self.desired_source[name] = "saved"
                except ValueError:
                    log.warning("ignoring invalid saved weights for %s", name)

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"desired": self.desired, "bandwidth": self.bandwidth,
                                   "saved_at": self.clock()}, indent=1))
        os.replace(tmp, self._path)

    def validate_weights(self, service: str, weights: Mapping[str, object]) -> dict[str, float]:
        """Check an override; raise WeightError naming the problem. Nothing changes here."""
        if service not in self.desired:
            raise KeyError(service)
        known = set(self.desired[service])
        unknown = sorted(set(weights) - known)
        if unknown:
            raise WeightError(f"unknown region(s) for service {service!r}: {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        vals: dict[str, float] = {}
        for k, v in weights.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise WeightError(f"weight for {k!r} must be a number, got {v!r}")
            vals[k] = float(v)
        try:
            shares = normalise(vals)
        except ValueError as exc:
            raise WeightError(str(exc)) from None
        # Regions left out of an override get 0: the override states the whole split.
        return {r: shares.get(r, 0.0) for r in self.desired[service]}

    def set_desired(self, service: str, weights: Mapping[str, float], source: str) -> dict[str, float]:
        shares = self.validate_weights(service, weights)
        with self._lock:
            self.desired[service] = shares
            self.desired_source[service] = source
            self.planned[service] = None  # an operator's split replaces whatever the planner was doing
            self.desired_version += 1
            self._save()
        self._notify()
        return shares

    def set_planned(self, weights: Mapping[str, Mapping[str, int]], based_on_version: int | None = None) -> bool:
        """The planner's bucket weights (the decision loop's single actuation point calls this).

        ``based_on_version`` is the ``desired_version`` the plan was computed from: if an operator changed
        the baseline meanwhile, the stale plan is dropped instead of overwriting the operator.
        """
        changed = False
        with self._lock:
            if based_on_version is not None and based_on_version != self.desired_version:
                return False
            for svc, w in weights.items():
                if svc in self.planned and self.planned[svc] != dict(w):
                    self.planned[svc] = dict(w)
                    changed = True
        if changed:
            self._notify()
        return changed

    def set_evicted(self, evicted: Mapping[str, object]) -> bool:
        """The planner's evicted regions per service (the decision loop's actuation point calls this)."""
        changed = False
        with self._lock:
            for svc, regions in evicted.items():
                new = frozenset(regions)
                if svc in self.evicted and self.evicted[svc] != new:
                    self.evicted[svc] = new
                    changed = True
        if changed:
            self._notify()
        return changed

    def set_bandwidth(self, service: str, mbps: Mapping[str, object], source: str) -> dict[str, float | None]:
        """Change allocated Mbit/s per region (None = unmetered); regions not named keep theirs."""
        if service not in self.bandwidth:
            raise KeyError(service)
        known = set(self.bandwidth[service])
        unknown = sorted(set(mbps) - known)
        if unknown:
            raise WeightError(f"unknown region(s) for service {service!r}: {', '.join(unknown)}")
        for k, v in mbps.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1e6):
                raise WeightError(f"bandwidth for {k!r} must be a number in (0, 1e6] Mbit/s or null, got {v!r}")
        with self._lock:
            self.bandwidth[service].update({k: (None if v is None else float(v)) for k, v in mbps.items()})
            self._save()
            out = dict(self.bandwidth[service])
        log.info("bandwidth of %s set by %s: %s", service, source, out)
        self._notify()
        return out

    def add_listener(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def _notify(self) -> None:
        for fn in self._listeners:
            try:
                fn()
            except Exception:
                log.exception("state listener failed")

    # --- what the switches should get --------------------------------------------------------------
    def down_regions(self) -> set[str]:
        """Regions whose uplink port is down on its switch."""
        with self._lock:
            down = set()
            by_name = {s.name: s for s in self.switches.values()}
            for r in self.cfg.regions:
                sw = by_name.get(r.uplink.switch)
                port = sw.ports.get(r.uplink.port) if sw else None
                if port is not None and not port.up:
                    down.add(r.name)
            return down

    def bucket_weights(self) -> dict[str, dict[str, int]]:
        """Quantised bucket weights per service: desired shares with down regions zeroed."""
        down = self.down_regions()
        slots = self.cfg.openflow.weight_slots
        with self._lock:
            return {svc: quantize(effective(self.planned[svc] or w, down), slots) for svc, w in self.desired.items()}

    def baseline_weights(self) -> dict[str, dict[str, int]]:
        """Quantised operator/config shares, before the planner and link state."""
        slots = self.cfg.openflow.weight_slots
        with self._lock:
            return {svc: quantize(w, slots) for svc, w in self.desired.items()}

    # --- observations from switches ----------------------------------------------------------------
    def switch_connected(self, dpid: int, connected: bool) -> SwitchInfo | None:
        with self._lock:
            sw = self.switches.get(dpid)
            if sw is None:
                if connected:
                    self.unknown_switches[dpid] = self.clock()
                return None
            sw.connected = connected
            if connected:
                sw.connected_at = self.clock()
            return sw

    def set_port_up(self, dpid: int, port: int, up: bool) -> bool:
        """Record a port's link state; True when it changed a region uplink's state."""
        with self._lock:
            sw = self.switches.get(dpid)
            if sw is None:
                return False
            info = sw.ports.setdefault(port, PortInfo())
            changed = info.up != up
            info.up = up
            info.changed_at = self.clock()
            is_uplink = any(r.uplink.switch == sw.name and r.uplink.port == port for r in self.cfg.regions)
        if changed and is_uplink:
            log.warning("uplink %s:%d is %s", sw.name, port, "up" if up else "DOWN")
            self._notify()
        return changed and is_uplink

    def set_port_rates(self, dpid: int, port: int, rates: PortRates) -> None:
        with self._lock:
            sw = self.switches.get(dpid)
            if sw is not None:
                sw.ports.setdefault(port, PortInfo()).rates = rates

    def set_applied(self, dpid: int, groups: Mapping[int, dict[str, int]]) -> None:
        with self._lock:
            sw = self.switches.get(dpid)
            if sw is not None:
                sw.applied = dict(groups)

    def set_applied_meters(self, dpid: int, meters: Mapping[int, object]) -> None:
        with self._lock:
            sw = self.switches.get(dpid)
            if sw is not None:
                sw.meters = dict(meters)

    def snapshot_services(self) -> list[dict]:
        """Per service: desired shares, bucket weights, and what each ingress switch holds."""
        from pfepo.openflow.desired import service_group_id

        weights = self.bucket_weights()
        down = self.down_regions()
        out = []
        with self._lock:
            for i, svc in enumerate(self.cfg.services):
                gid = service_group_id(i)
                applied = {
                    sw.name: sw.applied[gid] for sw in self.switches.values() if gid in sw.applied
                }
                out.append({
                    "name": svc.name,
                    "vip": svc.vip,
                    "port": svc.port,
                    "protocol": svc.protocol,
                    "group_id": gid,
                    "desired": dict(self.desired[svc.name]),
                    "desired_source": self.desired_source[svc.name],
                    "planned": self.planned[svc.name],
                    "bucket_weights": weights[svc.name],
                    "weight_slots": self.cfg.openflow.weight_slots,
                    "down_regions": sorted(down & set(svc.weights)),
                    "applied": applied,
                    "bandwidth_mbps": dict(self.bandwidth[svc.name]),
                    "in_sync": bool(applied) and all(a == weights[svc.name] for a in applied.values()),
                })
        return out
