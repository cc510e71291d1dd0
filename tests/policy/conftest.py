"""A daemon config with three services over three regions, the example policies' target setup."""

from __future__ import annotations

import textwrap

import pytest

from pfepo.config import PfepoConfig
from pfepo.yamlconf import parse_text, validate_doc

CONFIG_YAML = """\
switches:
  - {name: s1, dpid: 1}
  - {name: s2, dpid: 2}
  - {name: s3, dpid: 3}
  - {name: s4, dpid: 4}
regions:
  - name: eu
    switch: s2
    uplink: {switch: s1, port: 1}
    endpoints:
      - {name: eu-web1, ip: 10.0.1.1, mac: "00:00:00:00:01:01", port: 1}
      - {name: eu-pay1, ip: 10.0.1.2, mac: "00:00:00:00:01:02", port: 2, application: payments}
      - {name: eu-bulk1, ip: 10.0.1.3, mac: "00:00:00:00:01:03", port: 3, application: bulk}
  - name: us
    switch: s3
    uplink: {switch: s1, port: 2}
    endpoints:
      - {name: us-web1, ip: 10.0.2.1, mac: "00:00:00:00:02:01", port: 1}
      - {name: us-pay1, ip: 10.0.2.2, mac: "00:00:00:00:02:02", port: 2, application: payments}
      - {name: us-bulk1, ip: 10.0.2.3, mac: "00:00:00:00:02:03", port: 3, application: bulk}
  - name: ap
    switch: s4
    uplink: {switch: s1, port: 3}
    endpoints:
      - {name: ap-web1, ip: 10.0.3.1, mac: "00:00:00:00:03:01", port: 1, priority: low}
      - {name: ap-pay1, ip: 10.0.3.2, mac: "00:00:00:00:03:02", port: 2, application: payments}
services:
  - {name: web, vip: 10.0.0.100, vip_mac: "00:00:00:00:00:64", port: 80, weights: {eu: 1, us: 1, ap: 1}}
  - name: payments
    vip: 10.0.0.101
    vip_mac: "00:00:00:00:00:65"
    port: 443
    application: payments
    priority: high
    sla: {latency_ms: 50, availability_pct: 99.95, weight: 2}
    weights: {eu: 2, us: 1, ap: 1}
  - {name: bulk, vip: 10.0.0.102, vip_mac: "00:00:00:00:00:66", port: 8000, application: bulk, priority: low,
     weights: {eu: 1, us: 1}}
"""


def make_config(extra: str = "") -> PfepoConfig:
    return validate_doc(parse_text(CONFIG_YAML + textwrap.dedent(extra), "cfg.yaml"), PfepoConfig)


@pytest.fixture
def pcfg() -> PfepoConfig:
    return make_config()


@pytest.fixture
def config_file(tmp_path):
    p = tmp_path / "pfepo.yaml"
    p.write_text(CONFIG_YAML)
    return p


@pytest.fixture
def pwrite(tmp_path):
    """Write a dedented policy file into tmp_path/pol and return its path."""
    folder = tmp_path / "pol"
    folder.mkdir()

    def write(name: str, text: str):
        p = folder / name
        p.write_text(textwrap.dedent(text))
        return p

    write.folder = folder
    return write
