"""Trace families: deterministic, valid trace CSVs, the stated sampling, failures where promised."""

from __future__ import annotations

import numpy as np

from pfepo.traces.csv import failure_starts, read_trace
from pfepo.traces.families import (
    BENIGN_FAMILIES,
    FAILURE_FAMILIES,
    family_of,
    family_trace,
    generate_families,
)


def test_families_are_deterministic_valid_and_labelled(tmp_path):
    paths = generate_families(tmp_path, 3, ("cpu_climb", "benign_busy"), dt=30.0)
    assert [family_of(p) for p in paths] == ["cpu_climb", "benign_busy"]
    cpu, benign = (read_trace(p) for p in paths)
    assert np.allclose(np.diff(np.unique(cpu.frame["ts"])), 30.0)
    assert sum(len(v) for v in failure_starts(cpu).values()) == 2
    assert sum(len(v) for v in failure_starts(benign).values()) == 0
    again = family_trace("cpu_climb", 3, dt=30.0)
    assert again.equals(family_trace("cpu_climb", 3, dt=30.0))


def test_every_family_draws_its_own_sampling_between_1_and_60_s():
    for fam in FAILURE_FAMILIES + BENIGN_FAMILIES:
        f = family_trace(fam, 11, endpoints=1, failing=1, hours=0.5)
        dt = np.diff(np.unique(f["timestamp"].to_numpy()))
        assert 1.0 <= np.median(dt) <= 60.0
