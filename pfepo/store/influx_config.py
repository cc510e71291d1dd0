"""Settings of the InfluxDB history backend (used when ``history.backend: influxdb``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class InfluxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api: Literal["v1", "v2"] = "v1"
    url: str = "http://127.0.0.1:8086"
    database: str = "pfepo"
