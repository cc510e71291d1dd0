"""The optional ``cluster:`` config section: absent means one controller; mistakes are located."""

from __future__ import annotations

import pytest
import yaml

from pfepo.config import load_config
from pfepo.yamlconf import ConfigError


def _write(tmp_path, cfg_dict, cluster):
    if cluster is not None:
        cfg_dict["cluster"] = cluster
    p = tmp_path / "pfepo.yaml"
    p.write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
    return p


def test_no_cluster_section_is_the_single_controller_default(tmp_path, cfg_dict):
    assert load_config(_write(tmp_path, cfg_dict, None)).cluster is None


def test_cluster_section_defaults(tmp_path, cfg_dict):
    c = load_config(_write(tmp_path, cfg_dict, {"endpoints": ["http://127.0.0.1:2379"], "controller_id": "c1",
                                                "region": "eu"})).cluster
    assert (c.name, c.lease_ttl_s, c.region) == ("pfepo", 5, "eu")


def test_cluster_mistakes_are_located(tmp_path, cfg_dict):
    p = _write(tmp_path, cfg_dict, {"endpoints": ["127.0.0.1:2379"], "controller_id": "c1", "region": "mars",
                                    "lease_ttl_s": 1})
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    text = str(ei.value)
    assert "cluster.endpoints" in text and "http(s)://HOST[:PORT]" in text
    assert "cluster.lease_ttl_s" in text
    with pytest.raises(ConfigError) as ei:
        load_config(_write(tmp_path, cfg_dict, {"endpoints": ["http://127.0.0.1:2379"], "controller_id": "c1",
                                                "region": "mars"}))
    assert "cluster.region" in str(ei.value) and "unknown region 'mars'" in str(ei.value)
