"""Fixtures that start real servers (influxd 1.x, VictoriaMetrics) on free loopback ports in temp dirs.

Each server is started for one test and stopped by its PID, its directory removed, also when the
test fails. Tests using them are marked ``influx``; they skip when the server binary is missing
(``make system`` installs both).
"""

from __future__ import annotations

import shutil

import pytest

from pfepo.store.influx_config import InfluxConfig
from pfepo_lab.bench.history import LocalInfluxd, LocalVictoriaMetrics


def _need(exe: str) -> None:
    if not shutil.which(exe):
        pytest.skip(f"{exe} not installed (make system installs it)")


@pytest.fixture
def influxd():
    """A running influxd with an empty database ``pfepo``."""
    _need("influxd")
    srv = LocalInfluxd()
    try:
        srv.start()
        srv.query("CREATE DATABASE pfepo")
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def influxd_auth():
    """influxd with authentication on, an admin ``admin``/``secret`` and database ``pfepo``."""
    _need("influxd")
    srv = LocalInfluxd(auth=True)
    try:
        srv.start()
        srv.query("CREATE USER admin WITH PASSWORD 'secret' WITH ALL PRIVILEGES")
        srv.query("CREATE DATABASE pfepo", auth=("admin", "secret"))
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def victoria():
    _need("victoria-metrics")
    srv = LocalVictoriaMetrics()
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def v1_cfg(influxd, tmp_path):
    return InfluxConfig(
        url=influxd.url, database="pfepo", timeout_s=2, spool_path=str(tmp_path / "spool.sqlite")
    )
