"""``pfepo bench controller`` end to end at small N: the real daemon process against 5 fake switches.

Fake switches because hundreds of OVS bridges cannot run here (pfepo_lab/bench/_fakeswitches.py speaks real
os-ken-packed OpenFlow 1.3). Asserts the JSON our checks read and sane values, not speed (~30 s).
"""

from __future__ import annotations

import json

from pfepo.cli import main

KEYS = ("switches", "polls_kept", "poll_interval_p99_s", "samples_produced", "samples_dropped", "failover_p50_ms",
        "failover_p99_ms", "weight_changes_without_failure", "cpu_pct", "rss_mb", "rest_p99_ms")


def test_small_fleet(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    out = tmp_path / "ctl.json"
    rc = main(["bench", "controller", "--switches", "5", "--window", "4", "--warmup", "1", "--trials", "5",
               "--json", str(out)])
    doc = json.loads(out.read_text())
    (p,) = doc["points"]
    assert rc == 0, p.get("error")
    for k in KEYS:
        assert k in p, k
    assert p["switches"] == 5
    assert 0.5 <= p["polls_kept"] <= 1.0  # 5 switches at 1 s: every poll handled (a loaded CI may lose some)
    assert 0.5 < p["poll_interval_p99_s"] < 5
    assert p["samples_produced"] > 5 * 48 * 7 * 2  # at least two polls of every port in the window
    assert 0 <= p["samples_dropped"] <= p["samples_produced"]
    assert p["failover_trials"] == 5 and p["failover_timeouts"] == 0
    assert 0 < p["failover_p50_ms"] <= p["failover_p99_ms"] < 5000 and not p["failover_is_lower_bound"]
    assert p["weight_changes_without_failure"] == 0
    assert 0 < p["cpu_pct"] < 400 and 20 < p["rss_mb"] < 4000 and p["rest_p99_ms"] > 0
    assert (tmp_path / "ctl.png").stat().st_size > 1000
