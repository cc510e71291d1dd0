"""The diagnosis tool: every failure event is accounted for (detected, or why it was missed)."""

from __future__ import annotations

from pfepo.evaluate.diagnose import diagnose, summary
from pfepo.traces.families import family_trace


def test_diagnose_accounts_for_every_event_and_groups_the_misses(tmp_path):
    path = tmp_path / "loss_ramp-f3.csv"
    family_trace("loss_ramp", 3, endpoints=2, failing=1, dt=10.0, hours=2.0).to_csv(path, index=False)
    res = diagnose(str(path))
    assert res["family"] == "loss_ramp" and res["sampling_s"] == 10.0
    assert len(res["events"]) == 1
    ev = res["events"][0]
    assert set(ev) >= {"lead_s", "first_above_s", "peak_over_threshold", "max_evidence"}
    s = summary([res])
    assert s["events"] == 1
    missed = s["missed_never_above_threshold"] + s["missed_first_above_in_last_60_s"] + s["missed_above_earlier"]
    assert s["detected"] + missed == 1
