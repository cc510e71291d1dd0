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
