"""A real etcd per test (Debian etcd-server): temp data dir, free loopback ports, stopped by PID.

Tests using it are marked ``etcd``; they skip when the binary is missing (``make system`` installs it).
"""

from __future__ import annotations

import shutil

import pytest

from pfepo_lab.cluster.localetcd import LocalEtcd


@pytest.fixture
def etcd():
    if not shutil.which("etcd"):
        pytest.skip("etcd not installed (make system installs etcd-server)")
    srv = LocalEtcd()
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def doc_controllers(etcd, cfg_dict, tmp_path):
    """``make(SyncClass, "c-a", "c-b", ...)`` -> one (coordinator, ControllerState, sync) per id: controllers
    sharing a revisioned document (pfepo.cluster.docsync) through the test's etcd; each with its own
    state dir, so what a controller persisted can be reloaded. Left (leases revoked) at teardown."""
    from pfepo.cluster.etcd import EtcdCoordinator
    from pfepo.config import PfepoConfig
    from pfepo.controller.state import ControllerState

    coords = []

    def make(sync_cls, *cids, wake=lambda: None):
        out = []
        for cid in cids:
            cfg = PfepoConfig.model_validate(dict(cfg_dict, state_dir=str(tmp_path / cid)))
            coord = EtcdCoordinator(etcd.endpoint, "t", cid, ttl_s=3)
            coord.join()
            coords.append(coord)
            state = ControllerState(cfg)
            out.append((coord, state, sync_cls(coord, state, wake)))
        return out

    yield make
    for coord in coords:
        coord.leave()
