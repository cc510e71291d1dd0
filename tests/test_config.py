import textwrap

import pytest
import yaml

from pfepo.cli import main
from pfepo.config import PfepoConfig, load_config
from pfepo.yamlconf import ConfigError


def write(tmp_path, text: str):
    p = tmp_path / "pfepo.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_shipped_config_is_valid_and_matches_demo_topology():
    from mininet_topologies.multiregion import TopoSpec

    cfg = load_config("configs/pfepo.yaml")
    topo = PfepoConfig.model_validate(TopoSpec(weights={"eu": 50, "us": 30, "ap": 20}).config())
    assert cfg.switches == topo.switches and cfg.regions == topo.regions
    assert [s.name for s in cfg.services] == ["web"]


def test_roundtrip_generated_config(tmp_path, cfg_dict):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg_dict))
    cfg = load_config(p)
    assert cfg.region("eu").endpoints[0].ip == "10.0.1.1"
    assert cfg.capacity_mbps("pfc0", 1) == 100.0


def test_errors_name_file_line_and_field(tmp_path):
    p = write(tmp_path, """\
        poll_interval_s: fast
        switches:
          - name: core
            dpid: 1
            colour: blue
        regions:
          - name: eu
            switch: core
            uplink: {switch: core, port: 1}
            endpoints:
              - {name: eu-1, ip: 10.0.1.999, mac: "00:00:00:00:01:01", port: 2}
        services:
          - name: web
            vip: 10.0.100.1
            vip_mac: "02:00:00:00:00:64"
            port: 80
            weights: {eu: -1}
        """)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    lines = [str(pr) for pr in ei.value.problems]
    assert any(s.startswith(f"{p}:1:") and "poll_interval_s" in s for s in lines), lines
    assert any(s.startswith(f"{p}:5:") and "switches.0.colour: unknown key" in s for s in lines), lines
    assert any(s.startswith(f"{p}:11:") and "not an IPv4 address" in s for s in lines), lines
    assert any(s.startswith(f"{p}:17:") and "weights" in s for s in lines), lines


def test_reference_errors_are_located(tmp_path):
    p = write(tmp_path, """\
        switches:
          - {name: core, dpid: 1}
        regions:
          - name: eu
            switch: nowhere
            uplink: {switch: core, port: 1}
            endpoints:
              - {name: eu-1, ip: 10.0.1.1, mac: "00:00:00:00:01:01", port: 2}
        services:
          - name: web
            vip: 10.0.100.1
            vip_mac: "02:00:00:00:00:64"
            port: 80
            weights: {eu: 1, mars: 1}
        """)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    lines = [str(pr) for pr in ei.value.problems]
    assert f"{p}:5:5: regions.0.switch: unknown switch 'nowhere'" in lines
    assert any(s.startswith(f"{p}:14:") and "unknown region 'mars'" in s for s in lines), lines


def test_yaml_syntax_error_is_located(tmp_path):
    p = write(tmp_path, "switches: [\n  - {name: a\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(ei.value.problems[0]).startswith(f"{p}:")
    assert "YAML syntax error" in str(ei.value)


def test_run_with_bad_config_exits_nonzero_without_traceback(tmp_path, capsys):
    p = write(tmp_path, "switches: []\nregions: []\n")
    assert main(["run", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{p}:1:" in err


def test_missing_file(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read file" in capsys.readouterr().err
