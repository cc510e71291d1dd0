"""Scale-out by role: two real `pfepo run` controllers share fake OpenFlow switches through etcd, and each
polls only the switches it masters (a SLAVE sends no port-stats request, nothing is polled twice).

The switches are issue 14's fake switches (no OVS can run many; the wire format is real), each connected
to both controllers (``pfepo_lab/cluster/scaleout.py``); etcd is a throw-away ``LocalEtcd``. ~20 s.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from pfepo_lab.cluster.scaleout import run_point

pytestmark = pytest.mark.etcd


def test_two_controllers_split_the_switches_and_a_slave_polls_none():
    if not shutil.which("etcd"):
        pytest.skip("etcd not installed (make system installs etcd-server)")
    p = asyncio.run(run_point(12, 8, 1.0, controllers=2, window=4.0, warmup=1.0, ttl_s=3))
    assert "error" not in p, p
    assert p["ready"], p  # steady state reached before the window (each switch polled by one controller)
    per = p["per_controller"]
    assert sum(c["masters"] for c in per) == 12 and all(c["masters"] > 0 for c in per), per
    assert all(c["polls_as_slave"] == 0 for c in per), per
    assert all(c["switches_polled"] == c["masters"] for c in per), per  # exactly its own switches
    assert p["switches_polled_by_several"] == 0 and p["switches_not_polled"] == 0, p
    assert p["samples_dropped"] == 0, p
    assert p["polls_kept"] > 0.5, p  # every switch's counters reach one controller's history
