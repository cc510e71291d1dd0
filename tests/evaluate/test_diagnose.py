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


def test_false_alarms_name_the_rule_and_the_annotated_shape(tmp_path):
    """A look-alike trace: every false alarm names one of the engine's evidence rules and the annotated
    benign shape it belongs to (or none)."""
    from pfepo.predict.engine import SOURCES
    from pfepo.traces.lookalikes import KINDS, write_set

    (path,) = write_set(tmp_path, [3], per_seed=1)  # 10 s sampling, 8 h
    res = diagnose(str(path))
    assert res["family"] == "lookalike" and res["events"] == []
    for fa in res["false_alarms"]:
        assert fa["source"] in SOURCES[1:] and fa["shape"] in (*KINDS, "none")
    s = summary([res])
    assert sum(s["false_alarms_by_shape_metric_source"].values()) == len(res["false_alarms"])
