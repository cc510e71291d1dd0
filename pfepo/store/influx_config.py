"""Settings of the InfluxDB history backend (used when ``history.backend: influxdb``).

Two API modes share one schema (docs/history-store.md): ``v1`` talks line protocol to ``/write`` and
InfluxQL to ``/query`` (InfluxDB 1.x); ``v2`` writes through the ``influxdb-client`` package
(InfluxDB 2.x/3.x, VictoriaMetrics) and reads through InfluxQL on the v1-compatible ``/query`` or Flux.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class InfluxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api: Literal["v1", "v2"] = Field("v1", description="v1: InfluxDB 1.x; v2: influxdb-client (2.x, 3.x)")
    url: str = Field("http://127.0.0.1:8086", description="base URL, http:// or https://")
    database: str = Field(
        "pfepo", min_length=1, description="v1 database; in v2 the DBRP database name InfluxQL reads use"
    )
    retention_policy: str | None = Field(None, description="v1 retention policy (server default if unset)")
    username: str | None = None
    password: SecretStr | None = None
    org: str | None = Field(None, description="v2 organisation")
    bucket: str | None = Field(None, description="v2 bucket")
    token: SecretStr | None = Field(None, description="v2 API token")
    read_via: Literal["influxql", "flux", "none"] = Field(
        "influxql",
        description="v2 reads: InfluxQL on /query (2.x with a DBRP mapping, 3.x), Flux (2.x) or none "
        "(write-only servers such as VictoriaMetrics)",
    )
    timeout_s: float = Field(5.0, gt=0, le=120, description="per request; a slower server counts as down")
    verify_tls: bool = True
    spool_path: str = Field("var/influx-spool.sqlite", description="on-disk spool for an unreachable server")
    spool_max_mb: float = Field(256.0, gt=0, description="bound of the spool payload")
    spool_drop: Literal["oldest", "newest"] = Field(
        "oldest", description="what to drop when the spool is full"
    )
    fallback_to_embedded: bool = Field(
        False, description="if the server check fails at startup, run on the embedded store (loud warning)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _mode(self) -> InfluxConfig:
        if self.api == "v2":
            missing = [k for k in ("org", "bucket") if not getattr(self, k)]
            if missing:
                raise ValueError(f"api v2 needs {' and '.join(missing)}")
        if self.api == "v1" and self.read_via == "flux":
            raise ValueError("read_via: flux needs api: v2 (InfluxDB 1.x reads use InfluxQL)")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def spool_max_bytes(self) -> int:
        return int(self.spool_max_mb * 1024 * 1024)
