"""ControllerState: validated, persisted first, written outside the lock, snapshots are copies."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import pytest

from pfepo.controller import state as state_mod
from pfepo.controller.state import BandwidthError, ControllerState, WeightError, atomic_write
from pfepo.openflow.switch import SyncStatus


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def st(cfg) -> ControllerState:
    return ControllerState(cfg, clock=FakeClock())


def cfg_path(cfg) -> Path:
    return Path(cfg.state_dir) / "desired.json"


def _saved(cfg) -> dict:
    return json.loads(cfg_path(cfg).read_text())


def test_override_is_persisted_and_survives_a_restart(cfg, st):
    st.set_baseline("web", {"eu": 1, "us": 1, "ap": 2}, source="operator")
    assert _saved(cfg)["desired"]["web"] == {"eu": 0.25, "us": 0.25, "ap": 0.5}
    again = ControllerState(cfg)
    assert again.baseline_source["web"] == "saved"
    assert again.bucket_weights()["web"] == {"eu": 16, "us": 16, "ap": 32}


def test_failed_save_raises_oserror_and_changes_nothing(cfg, st, monkeypatch):
    calls = []
    st.add_listener(lambda: calls.append(1))
    before, version = st.baseline_snapshot(), st.baseline_version

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state_mod, "atomic_write", full)
    with pytest.raises(OSError) as exc:
        st.set_baseline("web", {"eu": 1, "us": 0, "ap": 0}, source="operator")
    assert exc.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        st.set_bandwidth("web", {"eu": 20}, source="operator")
    assert st.baseline_snapshot() == before and st.baseline_version == version
    assert st.bandwidth_snapshot()["web"]["eu"] is None
    assert calls == []  # nothing was pushed toward the switches


def test_a_frozen_disk_blocks_neither_readers_nor_the_planner(cfg, st, monkeypatch):
    release, writing = threading.Event(), threading.Event()

    def frozen(path, data):
        writing.set()
        release.wait(10)

    monkeypatch.setattr(state_mod, "atomic_write", frozen)
    writer = threading.Thread(target=st.set_baseline, args=("web", {"eu": 1, "us": 1, "ap": 1}, "operator"))
    writer.start()
    assert writing.wait(5)
    done = threading.Event()

    def readers_and_planner():
        st.bucket_weights()
        st.snapshot_services()
        st.snapshot_switches()
        st.set_planned({"web": {"eu": 10, "us": 30, "ap": 24}})
        st.set_bandwidth("web", {"us": 30}, source="planner")  # saved in the background
        done.set()

    threading.Thread(target=readers_and_planner, daemon=True).start()
    try:
        assert done.wait(2), "a reader or the planner waited for the frozen disk"
        assert st.bucket_weights()["web"] == {"eu": 10, "us": 30, "ap": 24}
    finally:
        release.set()
        writer.join(5)
    assert st.baseline_source["web"] == "operator"


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "d.json"
    atomic_write(p, b"old")

    def boom(*_a):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(state_mod.os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write(p, b"new")
    assert p.read_bytes() == b"old"
    assert [f.name for f in tmp_path.iterdir()] == ["d.json"]  # no temp file left behind


def test_weights_that_would_overflow_are_scaled_not_zeroed(st):
    assert st.validate_weights("web", {"eu": 1e308, "us": 1e308, "ap": 0}) == {"eu": 0.5, "us": 0.5, "ap": 0.0}
    for bad in ({"eu": float("nan")}, {"eu": float("inf")}, {"eu": -1}, {"eu": "5"}, {"eu": 0, "us": 0}):
        with pytest.raises(WeightError):
            st.validate_weights("web", bad)


def test_bad_bandwidth_is_a_bandwidth_error_not_a_weight_error(st):
    before = st.bandwidth_snapshot()
    for bad in ({"mars": 10}, {"eu": 0}, {"eu": -5}, {"eu": 2e6}, {"eu": float("nan")}, {"eu": "10"}):
        with pytest.raises(BandwidthError) as exc:
            st.set_bandwidth("web", bad, source="operator")
        assert not isinstance(exc.value, WeightError), bad
    assert st.bandwidth_snapshot() == before


def test_unusable_saved_values_are_ignored_with_a_warning(cfg, caplog):
    cfg_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    cfg_path(cfg).write_text(json.dumps({
        "desired": {"web": {"eu": "lots", "us": 1, "ap": 1}},
        "bandwidth": {"web": {"eu": "fast", "us": None, "ap": None}},
    }))
    st = ControllerState(cfg)
    assert st.baseline_source["web"] == "config"
    assert st.bandwidth_snapshot()["web"]["eu"] is None
    assert "ignoring" in caplog.text


def test_snapshots_are_copies(st):
    st.baseline_snapshot()["web"]["eu"] = 99
    st.bandwidth_snapshot()["web"]["eu"] = 5
    st.snapshot_switches()[0].ports[1] = None
    assert st.baseline_snapshot()["web"]["eu"] == 0.5
    assert st.bandwidth_snapshot()["web"]["eu"] is None
    assert 1 not in st.snapshot_switches()[0].ports


def test_in_sync_needs_groups_meters_and_flows_of_every_connected_switch(st):
    st.switch_connected(1, True)
    st.switch_connected(0x11, True)
    ok = SyncStatus({1: st.bucket_weights()["web"]}, {}, True, True, True)
    st.set_sync_status(1, ok)
    st.set_sync_status(0x11, SyncStatus({}, {}, True, True, flows_ok=False))
    assert not st.snapshot_services()[0]["in_sync"]
    st.set_sync_status(0x11, SyncStatus({}, {}, True, True, True))
    assert st.snapshot_services()[0]["in_sync"]


def test_uplink_down_moves_share_and_notifies(st):
    calls = []
    st.add_listener(lambda: calls.append(1))
    assert st.set_port_up(1, 1, False) is True
    assert st.down_regions() == {"eu"} and st.bucket_weights()["web"]["eu"] == 0 and calls == [1]
    assert st.set_port_up(1, 7, False) is False  # not an uplink: no push
    assert calls == [1]


def test_stale_plan_is_dropped_after_an_operator_override(st):
    v = st.baseline_version
    st.set_baseline("web", {"eu": 1, "us": 1, "ap": 1}, source="operator")
    assert st.set_planned({"web": {"eu": 0, "us": 32, "ap": 32}}, based_on_version=v) is False
    assert st.planned_snapshot()["web"] is None


def test_switch_rates_are_kept_as_arrays_and_read_as_port_rates(st):
    """A reply's rates are one PortRateBatch per switch (no PortRates object per port until asked)."""
    import numpy as np

    from pfepo.telemetry.portstats import PortRateBatch
    from pfepo.telemetry.rates import PORT_METRICS, PortRates
    from pfepo.telemetry.samples import SampleBatch

    sw = next(iter(st.switches.values()))
    rates = np.arange(2 * len(PORT_METRICS), dtype=np.float64).reshape(2, len(PORT_METRICS))
    batch = PortRateBatch(100.0, 1.0, np.array([1, 7]), rates, SampleBatch(100.0, ("a", "b"), ((), ()),
                                                                          PORT_METRICS, rates))
    st.set_switch_rates(sw.dpid, batch)
    live = st.switches[sw.dpid]
    assert live.port_rates is batch and all(live.ports[p].rates is None for p in (1, 7))  # nothing per port
    snap = {s.dpid: s for s in st.snapshot_switches()}[sw.dpid]
    assert snap.ports[7].rates == PortRates(100.0, 1.0, *rates[1].tolist())
    util = {name: u for name, _c, _s, u in st.switch_rows()}[sw.name]
    assert util == [(1, rates[0, -1]), (7, rates[1, -1])]
    st.set_port_rates(sw.dpid, 7, PortRates(101.0, 1.0, *([0.5] * len(PORT_METRICS))))  # a newer single one
    assert live.current_rates()[7].ts == 101.0 and live.current_rates()[1].ts == 100.0
    assert dict({name: u for name, _c, _s, u in st.switch_rows()}[sw.name])[7] == 0.5
