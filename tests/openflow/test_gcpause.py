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


def test_a_wave_of_connections_is_frozen_once_it_has_been_quiet():
    calls = []
    r = gcpause.Refreezer(quiet_s=10.0, freeze=lambda: calls.append(1) or 42)
    assert r.tick(0.0) is None  # nothing connected yet
    r.connected(1.0)
    r.connected(5.0)  # still connecting
    assert r.tick(14.0) is None and not calls
    assert r.tick(15.0) == 42 and calls == [1]
    assert r.tick(30.0) is None and calls == [1]  # once per wave
    r.connected(40.0)  # a reconnect wave
    assert r.tick(50.5) == 42 and calls == [1, 1]


def test_refreeze_only_in_a_process_that_froze_at_start_up():
    """In a child process (the freeze hides objects from gc.get_referrers)."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        "from pfepo.openflow import gcpause\n"
        "assert gcpause._refreeze() is None and gc.get_freeze_count() == 0  # unit tests: never\n"
        "gcpause.freeze_startup()\n"
        "per_switch = [[i] for i in range(50_000)]  # what a connect wave leaves alive\n"
        "assert len(gc.get_objects()) >= 50_000\n"
        "assert gcpause._refreeze() >= 50_000\n"
        "assert len(gc.get_objects()) < 1_000, len(gc.get_objects())  # a full collection skips them\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
