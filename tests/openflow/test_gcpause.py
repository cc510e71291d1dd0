"""The daemon's garbage-collector hook: every collection is timed."""

import gc

from pfepo.openflow import gcpause


def test_install_once_and_time_collections():
    w = gcpause.install()
    assert gcpause.install() is w  # once per process, however many apps start
    before = w.stats()[2][0]
    gc.collect()
    n, longest = w.stats()[2]
    assert n == min(100, before + 1) and 0.0 <= longest < 5.0
    assert w in gc.callbacks
