"""Fixtures for tests on real Open vSwitch + Mininet with the daemon as a separate process."""

from __future__ import annotations

import pytest

from mininet_topologies.lab import Lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lb = Lab(tmp_path_factory.mktemp("lab"))
    lb.start()
    yield lb
    lb.stop()
    log = lb.workdir / "daemon.log"
    if log.exists():
        print(log.read_text()[-3000:])
