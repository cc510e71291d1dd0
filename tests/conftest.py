"""Shared fixtures: a small valid daemon config the unit tests build on."""

from __future__ import annotations

import copy

import pytest

from mininet_topologies.multiregion import TopoSpec
from pfepo.config import PfepoConfig


@pytest.fixture
def cfg_dict(tmp_path) -> dict:
    spec = TopoSpec(weights={"eu": 50, "us": 30, "ap": 20})
    return copy.deepcopy(spec.config(rest_port=0, state_dir=str(tmp_path / "state"),
                                     history_path=str(tmp_path / "h.sqlite")))


@pytest.fixture
def cfg(cfg_dict) -> PfepoConfig:
    return PfepoConfig.model_validate(cfg_dict)
