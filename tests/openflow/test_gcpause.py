"""The daemon's garbage-collector hook: what exists at start is frozen, every collection is timed."""

import gc

from pfepo.openflow import gcpause


def test_install_freezes_once_and_times_collections():
    w = gcpause.install()
    assert gcpause.install() is w  # once per process, however many apps start
    assert w.frozen > 0 and gc.get_freeze_count() > 0
    before = w.stats()[2][0]
    gc.collect()
    n, longest = w.stats()[2]
    assert n == min(100, before + 1) and 0.0 <= longest < 5.0
    assert w in gc.callbacks
