"""Hot reload: valid edits swap atomically, invalid edits keep the last good set and expose the error."""

from __future__ import annotations

import os
import signal
import threading

from pfepo.policy.reload import PolicyReloader
from tests.waiting import wait_until

GOOD = """\
policies:
  - name: p1
    priority: {prio}
    risk: {{thresholds: {{act: 0.4}}}}
"""


def _bump_mtime(path, seconds):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(seconds * 1e9)))


def test_reload_swaps_valid_and_keeps_last_good(pwrite, pcfg):
    f = pwrite("a.yaml", GOOD.format(prio=1))
    swapped = []
    r = PolicyReloader([str(pwrite.folder)], lambda: pcfg, swapped.append)
    assert r.reload() and r.version == 1 and r.current.get("p1").priority == 1 and r.last_error == []
    first = r.current

    f.write_text(GOOD.format(prio=1).replace("act: 0.4", "act: lots") + "    colour: red\n")
    assert not r.reload()
    assert r.current is first and r.version == 1 and len(swapped) == 1  # last good stays live
    assert len(r.last_error) == 2 and r.last_error[0].startswith(f"{f}:4:")
    assert r.status()["last_error"] == r.last_error and r.status()["version"] == 1

    f.write_text(GOOD.format(prio=7))
    assert r.reload() and r.version == 2 and r.current.get("p1").priority == 7 and r.last_error == []
    assert swapped[-1] is r.current


def test_reference_checks_use_the_current_config(pwrite, pcfg):
    pwrite("a.yaml", GOOD.format(prio=1).replace("    risk:", "    match: {services: [web]}\n    risk:"))
    cfg = {"c": None}
    r = PolicyReloader([str(pwrite.folder)], lambda: cfg["c"])
    assert r.reload()  # no config: reference checks skipped
    cfg["c"] = pcfg.model_copy(update={"services": [s for s in pcfg.services if s.name != "web"]})
    assert not r.reload() and "unknown service 'web'" in r.last_error[0]
    assert r.current is not None and r.version == 1


def test_watcher_reloads_on_change_and_rejects_bad_edit(pwrite, pcfg):
    f = pwrite("a.yaml", GOOD.format(prio=1))
    done = threading.Event()
    r = PolicyReloader([str(pwrite.folder)], lambda: pcfg, lambda ps: done.set())
    assert r.reload()
    done.clear()
    r.start_watching(0.02)
    try:
        f.write_text(GOOD.format(prio=5))
        _bump_mtime(f, 2)
        assert done.wait(5) and r.version == 2 and r.current.get("p1").priority == 5
        f.write_text("policies: [\n")
        _bump_mtime(f, 4)
        wait_until(lambda: r.last_error, 5, "the watcher to report the broken file", interval=0.01)
        assert r.last_error and "YAML syntax error" in r.last_error[0]
        assert r.version == 2 and r.current.get("p1").priority == 5
        # A new file in the folder is a change too.
        done.clear()
        f.write_text(GOOD.format(prio=5))
        pwrite("b.yaml", GOOD.format(prio=9).replace("p1", "p2"))
        assert done.wait(5) and r.current.get("p2") is not None and r.last_error == []
    finally:
        r.stop()
    assert r._thread is None


def test_sighup_triggers_reload(pwrite, pcfg):
    pwrite("a.yaml", GOOD.format(prio=1))
    r = PolicyReloader([str(pwrite.folder)], lambda: pcfg)
    old = signal.getsignal(signal.SIGHUP)
    try:
        r.install_sighup()
        os.kill(os.getpid(), signal.SIGHUP)  # delivered to the main thread; no watcher -> reload inline
        wait_until(lambda: r.version == 1, 5, "the reload SIGHUP asked for", interval=0.01)
        assert r.current is not None
    finally:
        signal.signal(signal.SIGHUP, old)
