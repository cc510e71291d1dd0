"""Baseline, planned and observed state of the controller, thread-safe.

The baseline (the operator's traffic split per service: the config's weights until an operator override
replaces them) is the single source of truth. The planner's weights, when it has any, ride on top of it;
link state zeroes down regions; the result is what the OpenFlow adapter makes the switches hold (on
connect, on reconnect, on every poll). The baseline is persisted (``desired.json``, and ``desired`` in
the API: the names users see did not change) so a daemon restart leaves traffic where it was.

Threads: the REST API, the decision loop and the OpenFlow thread all call in here. Every read and write
of the fields below happens under ``_lock``; readers get copies (``snapshot_*``), never the live dicts.
``desired.json`` is written atomically and OUTSIDE ``_lock`` (under ``_save_lock``, which only writers
take), so a frozen or full disk can delay an operator's write but never reconcile, the decision loop or
/health. Listeners (the OpenFlow adapter) are called after a change and must not block: the adapter
posts an event to its own thread, which is the only one that talks to switches.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pfepo.config import PfepoConfig
from pfepo.planner.weights import effective, normalise, quantize
from pfepo.telemetry.rates import PORT_METRICS, PortRates

if TYPE_CHECKING:
    from pfepo.openflow.desired import Meter
    from pfepo.openflow.switch import SyncStatus
    from pfepo.telemetry.portstats import PortRateBatch

log = logging.getLogger(__name__)
_UTIL = PORT_METRICS.index("utilization_pct")  # column of PortRateBatch.rates


class WeightError(ValueError):
    """An operator-supplied weight set that cannot be applied (unknown region, negative, zero sum)."""


class BandwidthError(ValueError):
    """An operator-supplied bandwidth allocation that cannot be applied (unknown region, not in (0, 1e6])."""


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
    meters: dict[int, Meter] = field(default_factory=dict)  # meter id -> desired.Meter read back
    sync: SyncStatus | None = None  # last read-back vs desired (groups, meters, flows); None: not connected
    # The latest rates of its ports as one pair of arrays (telemetry.portstats.PortRateBatch): one object
    # per switch and reply, not a PortRates per port. At 1,000 switches those were 48k objects a poll
    # round that lived long enough to be promoted, and so kept triggering full garbage collections (every
    # thread waits). ``current_rates`` builds per-port PortRates when a reader asks; ``snapshot_switches``
    # copies carry them in ``PortInfo.rates`` as before.
    port_rates: PortRateBatch | None = None

    def current_rates(self) -> dict[int, PortRates]:
        """port -> its latest PortRates, from the batch or a single-port update, whichever is newer."""
        out = self.port_rates.port_rates() if self.port_rates is not None else {}
        for p, info in list(self.ports.items()):
            r = info.rates
            if r is not None and (p not in out or r.ts > out[p].ts):
                out[p] = r
        return out


def atomic_write(path: Path, data: bytes | Iterable[bytes | memoryview], mode: int = 0o666) -> None:
    """Write ``path`` so a crash leaves either the old or the new file: temp file, fsync, rename, fsync dir.
    ``data``: the bytes, or parts written one after another (large buffers without joining them);
    ``mode``: the new file's permissions (before the umask).

    Raises OSError (disk full, read-only, ...) with the temp file removed and ``path`` untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
            for part in (data,) if isinstance(data, bytes | bytearray | memoryview) else data:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself is done
    finally:
        os.close(fd)


class ControllerState:
    def __init__(self, cfg: PfepoConfig, clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.clock = clock
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()  # serialises writers of desired.json; held during disk I/O
        self._save_wanted = threading.Event()  # background save of planner changes (never blocks the loop)
        self._saver: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        self.started_at = clock()
        self.switches: dict[int, SwitchInfo] = {s.dpid: SwitchInfo(s.name, s.dpid) for s in cfg.switches}
        self.unknown_switches: dict[int, float] = {}
        self.baseline: dict[str, dict[str, float]] = {s.name: normalise(s.weights) for s in cfg.services}
        self.baseline_source: dict[str, str] = {s.name: "config" for s in cfg.services}
        # Weights the planner currently wants (None: follow ``baseline``). Not persisted: after a restart
        # the planner resumes from what the switches hold and fails back gradually.
        self.planned: dict[str, dict[str, int] | None] = {s.name: None for s in cfg.services}
        self.baseline_version = 0  # bumps on every operator/config change of ``baseline``
        # Regions whose pinned connections the planner evicted (connection affinity), per service.
        self.evicted: dict[str, frozenset[str]] = {s.name: frozenset() for s in cfg.services}
        self.bandwidth: dict[str, dict[str, float | None]] = {
            s.name: {r: s.bandwidth_mbps.get(r) for r in s.weights} for s in cfg.services
        }
        # What operators (REST, or another controller's operator via the cluster) set, per service and
        # region, as opposed to the planner's raises: what pfepo.cluster shares. Since this process started.
        self.bandwidth_overrides: dict[str, dict[str, float | None]] = {}
        self._path = Path(cfg.state_dir) / "desired.json"
        self._load()

    # --- the baseline split ------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            saved = json.loads(self._path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable saved state %s: %s", self._path, exc)
            return
        if not isinstance(saved, dict):
            log.warning("ignoring saved state %s: not a JSON object", self._path)
            return
        for name, bw in (saved.get("bandwidth") or {}).items():
            if name in self.bandwidth and isinstance(bw, dict) and set(bw) == set(self.bandwidth[name]):
                bad = [r for r, v in bw.items() if v is not None and not _valid_mbps(v)]
                if bad:
                    log.warning("ignoring saved bandwidth of %s in %s: invalid value for %s", name, self._path,
                                ", ".join(sorted(bad)))
                    continue
                self.bandwidth[name] = {r: (None if v is None else float(v)) for r, v in bw.items()}
        for name, weights in (saved.get("desired") or {}).items():
            if name in self.baseline and isinstance(weights, dict) and set(weights) == set(self.baseline[name]):
                try:
                    self.baseline[name] = self.validate_weights(name, weights)
                    self.baseline_source[name] = "saved"
                except (ValueError, TypeError):
                    log.warning("ignoring invalid saved weights for %s in %s", name, self._path)

    def _save(self, baseline: Mapping, bandwidth: Mapping) -> None:
        """Persist; call with ``_save_lock`` held and ``_lock`` NOT held. Raises OSError unchanged."""
        atomic_write(self._path, json.dumps({"desired": baseline, "bandwidth": bandwidth,
                                             "saved_at": self.clock()}, indent=1).encode())

    def _save_in_background(self) -> None:
        """Planner changes: saved by a helper thread, latest state wins, errors logged (not raised)."""
        self._save_wanted.set()
        if self._saver is None or not self._saver.is_alive():
            self._saver = threading.Thread(target=self._saver_loop, name="state-saver", daemon=True)
            self._saver.start()

    def _saver_loop(self) -> None:
        while self._save_wanted.wait(timeout=30):
            self._save_wanted.clear()
            try:
                with self._save_lock:
                    self._save(*self._persisted())
            except OSError as exc:
                log.error("cannot save %s: %s (planner change kept in memory only)", self._path, exc)

    def _persisted(self) -> tuple[dict, dict]:
        with self._lock:
            return copy.deepcopy(self.baseline), copy.deepcopy(self.bandwidth)

    def validate_weights(self, service: str, weights: Mapping[str, object]) -> dict[str, float]:
        """Check an override; raise WeightError naming the problem. Nothing changes here."""
        if service not in self.baseline:
            raise KeyError(service)
        known = set(self.baseline[service])
        unknown = sorted(set(weights) - known)
        if unknown:
            raise WeightError(f"unknown region(s) for service {service!r}: {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        vals: dict[str, float] = {}
        for k, v in weights.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise WeightError(f"weight for {k!r} must be a number, got {v!r}")
            try:
                vals[k] = float(v)
            except OverflowError:
                raise WeightError(f"weight for {k!r} is too large") from None
            if not math.isfinite(vals[k]) or vals[k] < 0:
                raise WeightError(f"weight for {k!r} must be a finite number >= 0, got {v!r}")
        top = max(vals.values(), default=0.0)
        if top > 0:  # scale first: 1e308 + 1e308 would overflow the sum and make every share 0
            vals = {k: v / top for k, v in vals.items()}
        try:
            shares = normalise(vals)
        except ValueError as exc:
            raise WeightError(str(exc)) from None
        # Regions left out of an override get 0: the override states the whole split.
        return {r: shares.get(r, 0.0) for r in self.baseline[service]}

    def set_baseline(self, service: str, weights: Mapping[str, float], source: str) -> dict[str, float]:
        """Validate, persist, then apply an operator split.

        Persisted FIRST: if saving fails the OSError is raised unchanged and nothing has changed (nothing
        is sent to switches), so the caller can answer 503 truthfully.
        """
        shares = self.validate_weights(service, weights)
        with self._save_lock:
            baseline, bandwidth = self._persisted()
            baseline[service] = shares
            self._save(baseline, bandwidth)
            with self._lock:
                self.baseline[service] = shares
                self.baseline_source[service] = source
                self.planned[service] = None  # an operator's split replaces whatever the planner was doing
                self.baseline_version += 1
        self._notify()
        return shares

    def set_planned(self, weights: Mapping[str, Mapping[str, int]], based_on_version: int | None = None) -> bool:
        """The planner's bucket weights (the decision loop's single actuation point calls this).

        ``based_on_version`` is the ``baseline_version`` the plan was computed from: if an operator changed
        the baseline meanwhile, the stale plan is dropped instead of overwriting the operator.
        """
        changed = False
        with self._lock:
            if based_on_version is not None and based_on_version != self.baseline_version:
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
            raise BandwidthError(f"unknown region(s) for service {service!r}: {', '.join(unknown)}")
        for k, v in mbps.items():
            if v is not None and not _valid_mbps(v):
                raise BandwidthError(f"bandwidth for {k!r} must be a number in (0, 1e6] Mbit/s or null, got {v!r}")
        new = {k: (None if v is None else float(v)) for k, v in mbps.items()}
        if source == "planner":  # the decision loop must never wait for the disk
            with self._lock:
                self.bandwidth[service].update(new)
                out = dict(self.bandwidth[service])
            self._save_in_background()
        else:  # operator: persisted first, OSError raised unchanged with nothing changed
            with self._save_lock:
                baseline, bandwidth = self._persisted()
                bandwidth[service].update(new)
                self._save(baseline, bandwidth)
                with self._lock:
                    self.bandwidth[service].update(new)
                    self.bandwidth_overrides.setdefault(service, {}).update(new)
                    out = dict(self.bandwidth[service])
        log.info("bandwidth of %s set by %s: %s", service, source, out)
        self._notify()
        return out

    def add_listener(self, fn: Callable[[], None]) -> None:
        """``fn()`` runs after every change of what switches should hold, on the changing thread."""
        self._listeners.append(fn)

    # --- snapshots (copies, safe to use without the lock) --------------------------------------------
    def baseline_snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return copy.deepcopy(self.baseline)

    def planned_snapshot(self) -> dict[str, dict[str, int] | None]:
        with self._lock:
            return copy.deepcopy(self.planned)

    def evicted_snapshot(self) -> dict[str, frozenset[str]]:
        with self._lock:
            return dict(self.evicted)

    def bandwidth_snapshot(self) -> dict[str, dict[str, float | None]]:
        with self._lock:
            return copy.deepcopy(self.bandwidth)

    def snapshot_switches(self) -> list[SwitchInfo]:
        """Copies of every configured switch (ports, read-back groups and meters, sync status)."""
        with self._lock:
            out = []
            for sw in self.switches.values():
                rates = sw.current_rates()
                out.append(replace(sw, ports={p: replace(i, rates=rates.get(p)) for p, i in sw.ports.items()},
                                   applied=copy.deepcopy(sw.applied), meters=dict(sw.meters)))
            return out

    def switch_rows(self) -> list[tuple[str, bool, bool | None, list[tuple[int, float]]]]:
        """(name, connected, in sync or None, [(port, utilization %)]) per switch for /metrics. The lock is
        held only to take references (no per-port copy as in ``snapshot_switches``), so a scrape does not
        hold up the OpenFlow thread recording a port status; utilisation comes from the rate arrays."""
        with self._lock:
            held = [(sw.name, sw.connected, None if sw.sync is None else sw.sync.in_sync, sw.port_rates,
                     [(p, i.rates) for p, i in sw.ports.items() if i.rates is not None])
                    for sw in self.switches.values()]
        rows = []
        for name, connected, in_sync, batch, singles in held:
            util: dict[int, float] = {}
            if batch is not None:
                util = dict(zip(batch.ports.tolist(), batch.rates[:, _UTIL].tolist(), strict=True))
            for p, r in singles:
                if batch is None or r.ts > batch.ts:
                    util[p] = r.utilization_pct
            rows.append((name, connected, in_sync, sorted(util.items())))
        return rows

    def unknown_switches_snapshot(self) -> dict[int, float]:
        with self._lock:
            return dict(self.unknown_switches)

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
        """Quantised bucket weights per service: the planner's weights or the baseline, down regions zeroed."""
        slots = self.cfg.openflow.weight_slots
        with self._lock:
            down = self.down_regions()
            return {svc: quantize(effective(self.planned[svc] or w, down), slots) for svc, w in self.baseline.items()}

    def baseline_weights(self) -> dict[str, dict[str, int]]:
        """Quantised operator/config shares, before the planner and link state."""
        slots = self.cfg.openflow.weight_slots
        with self._lock:
            return {svc: quantize(w, slots) for svc, w in self.baseline.items()}

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

    def set_switch_rates(self, dpid: int, rates: PortRateBatch) -> None:
        """All ports of one stats reply: one reference kept per switch (see SwitchInfo.port_rates)."""
        ports = rates.ports.tolist()
        with self._lock:
            sw = self.switches.get(dpid)
            if sw is not None:
                sw.port_rates = rates
                known = sw.ports
                for p in ports:
                    if p not in known:
                        known[p] = PortInfo()

    def connected_count(self) -> tuple[int, int]:
        """(connected, configured) switches, without copying any port (for /api/v1/health, polled often)."""
        with self._lock:
            return sum(sw.connected for sw in self.switches.values()), len(self.switches)

    def set_sync_status(self, dpid: int, status: SyncStatus | None) -> None:
        """What the switch holds vs what it should (from the OpenFlow side); None when it disconnected."""
        with self._lock:
            sw = self.switches.get(dpid)
            if sw is None:
                return
            sw.sync = status
            if status is not None:
                sw.applied = {gid: dict(w) for gid, w in status.groups.items()}
                sw.meters = dict(status.meters)

    def snapshot_services(self) -> list[dict]:
        """Per service: baseline shares (``desired`` in the API), bucket weights, what each ingress switch holds."""
        from pfepo.openflow.desired import service_group_id

        out = []
        with self._lock:
            weights = self.bucket_weights()
            down = self.down_regions()
            # Flows, meters and groups of every connected switch must match, not just this group's weights
            # (in a cluster, of every switch we master: another controller's have no sync here, status None).
            tables_ok = all(sw.sync.in_sync for sw in self.switches.values() if sw.connected and sw.sync is not None)
            for i, svc in enumerate(self.cfg.services):
                gid = service_group_id(i)
                applied = {
                    sw.name: dict(sw.applied[gid]) for sw in self.switches.values() if gid in sw.applied
                }
                out.append({
                    "name": svc.name,
                    "vip": svc.vip,
                    "port": svc.port,
                    "protocol": svc.protocol,
                    "group_id": gid,
                    "desired": dict(self.baseline[svc.name]),
                    "desired_source": self.baseline_source[svc.name],
                    "planned": self.planned[svc.name],
                    "bucket_weights": weights[svc.name],
                    "weight_slots": self.cfg.openflow.weight_slots,
                    "down_regions": sorted(down & set(svc.weights)),
                    "applied": applied,
                    "bandwidth_mbps": dict(self.bandwidth[svc.name]),
                    "in_sync": tables_ok and bool(applied) and all(a == weights[svc.name] for a in applied.values()),
                })
        return out


def _valid_mbps(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) and 0 < v <= 1e6
