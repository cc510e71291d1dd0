"""Daemon configuration: a pydantic model loaded from YAML with located errors (see yamlconf)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from pfepo.actions.config import DispatcherConfig, ExecutorConfig, HealthCheckConfig, ScrapeConfig
from pfepo.store.influx_config import InfluxConfig
from pfepo.yamlconf import load_model

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


def _dpid(v: object) -> object:
    """Accept 1, "1", "0x1" or "00:00:00:00:00:00:00:01" for a datapath id."""
    if isinstance(v, str):
        s = v.strip().lower()
        if ":" in s:
            s = "0x" + s.replace(":", "")
        try:
            return int(s, 0)
        except ValueError:
            raise ValueError(f"not a datapath id: {v!r}") from None
    return v


def _mac(v: object) -> object:
    if isinstance(v, str) and _MAC.match(v.lower()):
        return v.lower()
    raise ValueError(f"not a MAC address: {v!r} (expected aa:bb:cc:dd:ee:ff)")


def _ipv4(v: object) -> object:
    try:
        return str(ipaddress.IPv4Address(str(v)))
    except ValueError:
        raise ValueError(f"not an IPv4 address: {v!r}") from None


Dpid = Annotated[int, BeforeValidator(_dpid), Field(ge=1, le=2**64 - 1)]
Mac = Annotated[str, BeforeValidator(_mac)]
IPv4 = Annotated[str, BeforeValidator(_ipv4)]
Name = Annotated[str, Field(pattern=_NAME)]
PortNo = Annotated[int, Field(ge=1, le=0xFFFFFF00)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MIN_TOKEN_CHARS = 16  # bearer tokens shorter than this are refused at startup, wherever they come from


class OpenFlowTlsConfig(Strict):
    """OpenFlow over TLS (os-ken's ctl_privkey/ctl_cert/ca_certs); switches connect with ssl:HOST:PORT."""

    privkey: str = Field(description="controller private key (PEM)")
    cert: str = Field(description="controller certificate (PEM)")
    ca_certs: str | None = Field(None, description="CA that signed the switch certificates: switches must "
                                 "present one (mutual TLS); unset = any switch may connect over TLS")


class OpenFlowConfig(Strict):
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(6653, ge=1, le=65535)
    weight_slots: int = Field(
        64, ge=2, le=1024, description="bucket weights are integers summing to this (OVS hashes into <=64 slots)"
    )
    affinity: bool = Field(
        True, description="pin each connection to its region with conntrack (weight changes move only new "
        "connections); false: OVS remaps live connections on every weight change")
    conntrack_zone: int = Field(
        7701, ge=1, le=65535, description="conntrack zone for pinned connections (one for all services; pick one "
        "no other application on the switches uses)")
    tls: OpenFlowTlsConfig | None = Field(None, description="listen with TLS instead of plain TCP")


class ApiToken(Strict):
    """A bearer token for the REST API, with a role: read < operate (overrides) < admin (force)."""

    name: Name = Field(description="who holds it; written to the audit log (the token never is)")
    role: Literal["read", "operate", "admin"]
    token: str | None = Field(None, min_length=MIN_TOKEN_CHARS, description="inline (prefer token_file/env)")
    token_file: str | None = Field(None, description="read the token from this file (first line)")
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                  description="read the token from this environment variable")

    @model_validator(mode="after")
    def _one_source(self) -> ApiToken:
        n = sum(x is not None for x in (self.token, self.token_file, self.token_env))
        if n != 1:
            raise ValueError("give exactly one of token, token_file, token_env")
        return self


class RestTlsConfig(Strict):
    certfile: str = Field(description="server certificate chain (PEM)")
    keyfile: str = Field(description="server private key (PEM)")
    client_ca: str | None = Field(None, description="require client certificates signed by this CA (mutual TLS)")


class RestConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tokens: list[ApiToken] = Field(default_factory=list, description="bearer tokens; none = every write refused")
    open_reads: bool = Field(False, description="GET endpoints (and /metrics) answer without a token")
    docs: bool = Field(False, description="serve /docs and /openapi.json (to read-role tokens, or open_reads)")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host header values accepted (DNS-rebinding guard); loopback names "
        "and rest.host are always accepted; '*' accepts any")
    max_body_bytes: int = Field(65536, ge=1024, le=16 * 1_048_576,
                                description="request bodies over this are refused (signals have their own cap)")
    tls: RestTlsConfig | None = Field(None, description="serve HTTPS")
    allow_insecure_remote: bool = Field(
        False, description="allow a non-loopback rest.host without TLS and tokens (not recommended)")
    console_prewarm: bool = Field(
        True, description="replay the history for the console's what-if in a background process (nice 19) at "
        "start and every 30 min, so the first what-if needs no cold replay (docs/console.md)")


class HistoryConfig(Strict):
    backend: Literal["sqlite", "duckdb", "influxdb"] = "sqlite"
    path: str = "var/history.sqlite"
    flush_interval_s: float = Field(1.0, gt=0, le=60)
    batch_size: int = Field(5000, ge=1, le=1_000_000)
    queue_max: int = Field(200_000, ge=1000)
    influxdb: InfluxConfig | None = None


class SignalsConfig(Strict):
    """Pushed signals (POST /api/v1/signals). Disabled until a token is set."""

    token: str | None = Field(None, min_length=MIN_TOKEN_CHARS, description="bearer token pushers must send")
    token_file: str | None = Field(None, description="read the token from this file instead")
    max_items: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    max_items_per_s: float = Field(5000.0, gt=0, description="token bucket across all pushers")

    def resolved_token(self) -> str | None:
        if self.token_file:
            from pathlib import Path

            tok = Path(self.token_file).read_text().strip() or None
            if tok is not None and len(tok) < MIN_TOKEN_CHARS:
                raise ValueError(f"signals.token_file: token shorter than {MIN_TOKEN_CHARS} characters")
            return tok
        return self.token


class ProbeConfig(Strict):
    """Link latency/loss probing between the client-side switch and each region switch."""

    enabled: bool = True
    per_interval: int = Field(5, ge=1, le=100, description="probes per direction per poll interval")
    timeout_s: float = Field(1.0, gt=0, le=30, description="a probe not back by then counts as lost")


class PolicyConfig(Strict):
    """Where the YAML policies live and how often the decision loop runs."""

    paths: list[str] = Field(default_factory=lambda: ["policies"], description="policy files or folders")
    interval_s: float = Field(1.0, ge=0.05, le=300, description="decision loop period")
    watch_interval_s: float = Field(2.0, ge=0.1, le=300, description="policy file change polling")
    observation_max_age_s: float = Field(30.0, gt=0, description="older measurements are ignored")
    audit_path: str | None = Field(None, description="JSON-lines audit log (default STATE_DIR/audit.jsonl)")
    audit_max_bytes: int = Field(16 * 1_048_576, ge=4096, description="rotate the audit log at this size")
    audit_max_age_s: float = Field(86400.0, gt=0, description="... or when its first record is this old")
    audit_keep: int = Field(8, ge=1, le=1000, description="rotated audit files kept (older ones deleted)")
    reload_budget_s: float = Field(5.0, gt=0, le=300, description="a policy reload taking longer is abandoned")


class PredictConfig(Strict):
    """The predictive engine (pfepo.predict), run on a worker thread beside the decision loop."""

    enabled: bool = True
    horizon_s: float = Field(300.0, gt=0, description="P(failure within this horizon)")
    step_s: float = Field(10.0, gt=0, description="model step: samples are averaged into steps this long")
    trend_tau_s: float = Field(120.0, gt=0, le=86400, description="time constant of the trend estimate")
    drift: Literal["brown", "window"] = Field(
        "brown", description="forecast drift: Brown's double smoothing (default) or a least-squares slope over "
        "trend_tau_s (faster on new ramps, see docs/prediction.md)")
    model_path: str | None = Field(
        None, description="gradient-boosting model (.joblib with its .json sidecar); None: forecast-only. "
        "'shipped': the model packaged with pfepo (needs step_s 10 and horizon_s 300)",
    )


class SlaConfig(Strict):
    tier: str | None = Field(None, description="SLA tier name, for policy selectors (e.g. gold)")
    latency_ms: float | None = Field(None, gt=0)
    availability_pct: float | None = Field(None, gt=0, le=100)
    weight: float = Field(1.0, ge=0, le=100, description="SLA weight in risk = probability x impact x sla_weight")


class SwitchConfig(Strict):
    name: Name
    dpid: Dpid


class EndpointConfig(Strict):
    name: Name
    ip: IPv4
    mac: Mac
    port: PortNo = Field(description="port of the region switch the endpoint attaches to")
    application: str = "web"
    priority: Literal["low", "medium", "high", "critical"] = "medium"
    sla: SlaConfig = SlaConfig()
    health: HealthCheckConfig | None = Field(None, description="HTTP health check pulled by the daemon")
    scrape: ScrapeConfig | None = Field(None, description="Prometheus text endpoint for CPU/memory")


class UplinkConfig(Strict):
    switch: Name = Field(description="switch (where clients attach) whose port leads to this region")
    port: PortNo
    capacity_mbps: float = Field(1000.0, gt=0)


class RegionConfig(Strict):
    name: Name
    switch: Name
    uplink: UplinkConfig
    endpoints: list[EndpointConfig] = Field(min_length=1)


class ServiceConfig(Strict):
    name: Name
    vip: IPv4
    vip_mac: Mac
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    weights: dict[str, float] = Field(min_length=1, description="initial traffic share per region")
    bandwidth_mbps: dict[str, float] = Field(
        default_factory=dict,
        description="initial bandwidth allocation per region (an OpenFlow meter on the region switch); "
        "regions not listed are unmetered",
    )
    application: str = "web"
    priority: Literal["low", "medium", "high", "critical"] = "medium"
    sla: SlaConfig = SlaConfig()

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        from pfepo.planner.weights import normalise, weight_problem

        problems = [p for k, w in v.items() if (p := weight_problem(k, w))]
        if problems:
            raise ValueError("; ".join(problems))
        normalise(v)  # zero sum
        return v

    @field_validator("bandwidth_mbps")
    @classmethod
    def _bandwidth(cls, v: dict[str, float]) -> dict[str, float]:
        from pfepo.planner.weights import MAX_BANDWIDTH_MBPS, MIN_BANDWIDTH_MBPS

        bad = [k for k, w in v.items() if not (MIN_BANDWIDTH_MBPS <= w <= MAX_BANDWIDTH_MBPS)]
        if bad:
            raise ValueError(f"bandwidth_mbps must be in [{MIN_BANDWIDTH_MBPS:g}, {MAX_BANDWIDTH_MBPS:g}] "
                             f"(bad: {', '.join(bad)})")
        return v


class PortCapacity(Strict):
    switch: Name
    port: PortNo
    capacity_mbps: float = Field(gt=0)


class ClusterConfig(Strict):
    """Multi-controller coordination on etcd (docs/coordination.md). Absent: one controller, as before."""

    endpoints: list[str] = Field(min_length=1, description="etcd client URLs, e.g. http://127.0.0.1:2379")
    name: Name = Field("pfepo", description="cluster name: every key lives under /pfepo/NAME/")
    controller_id: Name = Field(description="this controller's id, unique in the cluster")
    region: Name | None = Field(None, description="region this controller serves (owns its switches)")
    lease_ttl_s: int = Field(5, ge=2, le=300, description="membership/ownership lease; a dead peer's "
                             "switches move after at most this long")
    timeout_s: float = Field(2.0, gt=0, le=60, description="per etcd request")
    capacity_mbps: dict[Name, float] = Field(
        default_factory=dict, description="per region: Mbit/s it accepts from other regions' shifts (claims "
        "reserve it); a region not listed: its uplink's capacity_mbps")
    demand_mbps: dict[Name, float] = Field(
        default_factory=dict, description="per service: Mbit/s this controller's clients send; a shift of k "
        "of the weight slots reserves k/slots of it (not listed: the source region's uplink capacity)")
    ingress: dict[Name, dict[Name, PortNo]] = Field(
        default_factory=dict, description="more client-side switches (one per region): switch -> {region: "
        "port leading to that region}; each splits the services like the regions' uplink switch")
    switch_regions: dict[Name, Name] = Field(
        default_factory=dict, description="switch -> region it belongs to (its region's controller owns it); "
        "overrides the rule derived from regions/uplinks")
    inter_region_ports: dict[Name, list[PortNo]] = Field(
        default_factory=dict, description="switch -> ports where traffic from other regions arrives: such "
        "traffic is never steered again (one-hop rule, docs/coordination.md)")

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if not re.match(r"^https?://[^/:]+(:\d+)?/?$", e)]
        if bad:
            raise ValueError(f"etcd endpoints must be http(s)://HOST[:PORT] (bad: {', '.join(bad)})")
        return v


class PfepoConfig(Strict):
    """The whole daemon configuration (configs/pfepo.yaml)."""

    openflow: OpenFlowConfig = OpenFlowConfig()
    rest: RestConfig = RestConfig()
    poll_interval_s: float = Field(1.0, ge=0.1, le=300)
    state_dir: str = "var/state"
    dry_run: bool = False
    default_capacity_mbps: float = Field(1000.0, gt=0)
    history: HistoryConfig = HistoryConfig()
    signals: SignalsConfig = SignalsConfig()
    probes: ProbeConfig = ProbeConfig()
    policy: PolicyConfig = PolicyConfig()
    predict: PredictConfig = PredictConfig()
    executors: dict[Name, ExecutorConfig] = Field(default_factory=dict, description="application scalers")
    scaling: DispatcherConfig = DispatcherConfig()
    switches: list[SwitchConfig] = Field(min_length=1)
    regions: list[RegionConfig] = Field(min_length=1)
    services: list[ServiceConfig] = Field(default_factory=list)
    capacities: list[PortCapacity] = Field(default_factory=list)
    cluster: ClusterConfig | None = Field(None, description="etcd coordination; None: a single controller")

    def reference_errors(self) -> list[tuple[tuple[int | str, ...], str]]:
        """Cross-references pydantic cannot see field by field, each with the path it concerns."""
        errors: list[tuple[tuple[int | str, ...], str]] = []
        sw_names = [s.name for s in self.switches]
        _dupes(("switches",), "name", [s.name for s in self.switches], errors)
        _dupes(("switches",), "dpid", [s.dpid for s in self.switches], errors)
        _dupes(("regions",), "name", [r.name for r in self.regions], errors)
        _dupes(("services",), "name", [s.name for s in self.services], errors)
        _dupes(("services",), "vip", [s.vip for s in self.services], errors)
        for i, r in enumerate(self.regions):
            _dupes(("regions", i, "endpoints"), "port", [e.port for e in r.endpoints], errors)
            if r.switch not in sw_names:
                errors.append((("regions", i, "switch"), f"unknown switch {r.switch!r}"))
            if r.uplink.switch not in sw_names:
                errors.append((("regions", i, "uplink", "switch"), f"unknown switch {r.uplink.switch!r}"))
        seen_ep: dict[str, str] = {}
        for i, r in enumerate(self.regions):
            for j, e in enumerate(r.endpoints):
                for key in (e.name, e.ip):
                    if key in seen_ep:
                        errors.append((("regions", i, "endpoints", j), f"duplicate endpoint {key!r}"))
                    seen_ep[key] = r.name
        regions = {r.name for r in self.regions}
        for i, s in enumerate(self.services):
            for k in s.weights:
                if k not in regions:
                    errors.append((("services", i, "weights", k), f"unknown region {k!r}"))
            for k in s.bandwidth_mbps:
                if k not in s.weights:
                    errors.append((("services", i, "bandwidth_mbps", k), f"region {k!r} does not serve {s.name!r}"))
        for i, c in enumerate(self.capacities):
            if c.switch not in sw_names:
                errors.append((("capacities", i, "switch"), f"unknown switch {c.switch!r}"))
        if self.cluster is not None:
            errors.extend(_cluster_errors(self, set(sw_names), regions))
        return errors

    # Lookups used by the controller and the API.
    def switch_by_dpid(self, dpid: int) -> SwitchConfig | None:
        return next((s for s in self.switches if s.dpid == dpid), None)

    def switch(self, name: str) -> SwitchConfig:
        return next(s for s in self.switches if s.name == name)

    def region(self, name: str) -> RegionConfig:
        return next(r for r in self.regions if r.name == name)

    def service(self, name: str) -> ServiceConfig:
        return next(s for s in self.services if s.name == name)

    def capacity_mbps(self, switch: str, port: int) -> float:
        for c in self.capacities:
            if c.switch == switch and c.port == port:
                return c.capacity_mbps
        for r in self.regions:
            if r.uplink.switch == switch and r.uplink.port == port:
                return r.uplink.capacity_mbps
        return self.default_capacity_mbps

    def endpoint_region(self) -> dict[str, str]:
        return {e.name: r.name for r in self.regions for e in r.endpoints}


def _cluster_errors(cfg: PfepoConfig, switches: set[str], regions: set[str]) -> list[tuple[tuple, str]]:
    """References inside the ``cluster:`` section (switches, regions, services it names)."""
    c = cfg.cluster
    assert c is not None
    errors: list[tuple[tuple, str]] = []
    if c.region is not None and c.region not in regions:
        errors.append((("cluster", "region"), f"unknown region {c.region!r}"))
    for field_, names in (("capacity_mbps", c.capacity_mbps), ("switch_regions", c.switch_regions.values())):
        errors.extend((("cluster", field_), f"unknown region {r!r}") for r in names if r not in regions)
    services = {s.name for s in cfg.services}
    errors.extend((("cluster", "demand_mbps", s), f"unknown service {s!r}") for s in c.demand_mbps
                  if s not in services)
    errors.extend((("cluster", "demand_mbps", s), "must be > 0") for s, v in c.demand_mbps.items() if not v > 0)
    errors.extend((("cluster", "capacity_mbps", r), "must be >= 0") for r, v in c.capacity_mbps.items() if v < 0)
    for field_, mapping in (("ingress", c.ingress), ("switch_regions", c.switch_regions),
                            ("inter_region_ports", c.inter_region_ports)):
        errors.extend((("cluster", field_, sw), f"unknown switch {sw!r}") for sw in mapping if sw not in switches)
    for sw, ports in c.ingress.items():
        errors.extend((("cluster", "ingress", sw, r), f"unknown region {r!r}") for r in ports if r not in regions)
    if c.inter_region_ports and not cfg.openflow.affinity:
        errors.append((("cluster", "inter_region_ports"), "the one-hop rule needs openflow.affinity (conntrack "
                       "sends transit replies back where their request came from)"))
    return errors


def _dupes(where: tuple, field: str, values: list, errors: list) -> None:
    seen: set = set()
    for i, v in enumerate(values):
        if v in seen:
            errors.append(((*where, i, field), f"duplicate {field} {v!r}"))
        seen.add(v)


def load_config(path: str | Path) -> PfepoConfig:
    """Load and validate the daemon config; raises yamlconf.ConfigError listing every problem."""
    return load_model(path, PfepoConfig)
