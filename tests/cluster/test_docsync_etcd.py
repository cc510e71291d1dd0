"""What the shared documents have in common (pfepo/cluster/docsync.py), for each of them: a write is a
compare-and-set on the revision just read, so a controller that read before another wrote never overwrites
it; it wakes the agent, and its next sync adopts theirs and then applies its own merge rule."""

from __future__ import annotations

import pytest

from pfepo.cluster.bandwidth import BandwidthSync
from pfepo.cluster.baseline import BaselineSync

pytestmark = pytest.mark.etcd

CASES = {
    # merge per region: both overrides survive
    "bandwidth": (BandwidthSync, lambda s: s.set_bandwidth("web", {"eu": 10.0}, source="operator"),
                  lambda s: s.set_bandwidth("web", {"us": 20.0}, source="operator"),
                  lambda s: {r: s.bandwidth_snapshot()["web"][r] for r in ("eu", "us")},
                  {"eu": 10.0, "us": 20.0}),
    # the whole document: the first write wins, the later override is superseded
    "baseline": (BaselineSync, lambda s: s.set_baseline("web", {"eu": 1, "us": 1, "ap": 0}, source="operator"),
                 lambda s: s.set_baseline("web", {"eu": 0, "us": 1, "ap": 1}, source="operator"),
                 lambda s: s.baseline_snapshot()["web"], {"eu": 0.5, "us": 0.5, "ap": 0.0}),
}


@pytest.mark.parametrize("case", CASES)
def test_a_write_racing_a_newer_revision_is_refused_then_merged_by_the_rule(doc_controllers, case):
    cls, change_a, change_b, view, want = CASES[case]
    woken = []
    (ca, a, sa), (cb, b, sb) = doc_controllers(cls, "c-a", "c-b", wake=lambda: woken.append(1))
    sa.sync()
    start = sb.sync()
    change_a(a)
    change_b(b)
    read = cb.get_doc

    def read_then_a_writes(name):  # b reads, then a writes before b's compare-and-set
        got = read(name)
        cb.get_doc = read
        assert sa.sync() > start
        return got

    cb.get_doc = read_then_a_writes
    woken.clear()
    assert sb.sync() == start  # refused: nothing of b's written over a's revision
    assert woken  # the agent is asked to sync again
    won = ca.get_doc(cls.name)[0]
    final = sb.sync()  # adopts a's revision, then its merge rule
    assert final >= won and sa.sync() == final
    assert view(a) == view(b) == want
