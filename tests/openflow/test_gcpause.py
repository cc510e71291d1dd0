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


def test_freeze_startup_takes_what_is_alive_out_of_later_collections():
    """In a child process: the freeze must not hide this test process's objects from gc.get_referrers."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "from pfepo.openflow import gcpause\n"
        "alive = [[i] for i in range(100_000)]  # lists are always tracked\n"
        "frozen = gcpause.freeze_startup()\n"
        "assert frozen >= 100_000, frozen\n"
        "assert len(gc.get_objects()) < 1_000, len(gc.get_objects())  # what a full collection walks now\n"
        "later = [[i] for i in range(10)]\n"
        "assert len(gc.get_objects()) >= 10  # new objects are still collected\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
