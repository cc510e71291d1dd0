"""Alarm metrics by hand, and ``pfepo evaluate`` end to end on a generated creep trace."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pfepo.cli import main
from pfepo.evaluate.harness import DEFAULT_MODEL
from pfepo.evaluate.metrics import KEYS, ShiftModel, Tally, episodes, score_endpoint
from pfepo.traces.generate import Sizes, generate


def test_score_endpoint_counts_leads_episodes_and_false_alarms():
    ts = np.arange(0.0, 4000.0, 10.0)
    up = np.ones(ts.size)
    up[(ts >= 2000) & (ts < 2300)] = 0  # one failure at t=2000
    alarm = np.zeros(ts.size, dtype=bool)
    alarm[(ts >= 1800) & (ts < 2000)] = True  # true episode, lead 200 s
    alarm[(ts >= 500) & (ts < 530)] = True  # false episode
    alarm[(ts >= 560) & (ts < 570)] = True  # within 60 s of the previous: same episode
    alarm[(ts >= 2000) & (ts < 2400)] = True  # while down / in the grace period: ignored
    t = score_endpoint(ts, up, alarm)
    assert (t.events, t.detected, t.leads) == (1, 1, [200.0])
    assert (t.episodes, t.true_episodes) == (2, 1)
    s = t.summary()
    assert tuple(s) == KEYS
    assert s["recall"] == 1.0 and s["precision"] == 0.5
    assert s["false_alarms_per_day"] == pytest.approx(1 / (3990 / 86400), rel=1e-3)
    # 200 s of alarm at 10 % per 10 s reaches the default maximum of 100 %; capped at 90 % otherwise
    assert s["shifted_share_at_failure"] == 1.0
    capped = score_endpoint(ts, up, alarm, shift=ShiftModel(max_pct=90)).summary()
    assert capped["shifted_share_at_failure"] == 0.9


def test_missed_event_and_empty_tally():
    ts = np.arange(0.0, 1000.0, 5.0)
    up = np.where(ts >= 900, 0.0, 1.0)
    t = score_endpoint(ts, up, np.zeros(ts.size, dtype=bool), shift=ShiftModel(max_pct=50))
    assert (t.events, t.detected, t.episodes) == (1, 0, 0)
    assert t.summary()["recall"] == 0.0 and t.summary()["median_lead_s"] is None
    assert Tally().summary()["precision"] is None
    assert episodes(ts, ts > 990, 60) == [(995.0, 995.0)]


def test_shift_model_ramps_and_fails_back():
    ts = np.arange(0.0, 200.0, 10.0)
    alarm = ts < 60
    s = ShiftModel(step_pct=25, interval_s=20, max_pct=100).shifted(ts, alarm)
    assert s.max() == 0.75 and s[-1] == 0.0 and np.all(s >= 0)


@pytest.fixture(scope="module")
def creep(tmp_path_factory):
    d = tmp_path_factory.mktemp("creep")
    return generate(d, 11, scenarios=("latency_creep",), sizes=Sizes(endpoints=3, failing=2, failure_hours=2.0))[0]


@pytest.mark.parametrize("mode", ["forecast-only", "model"])
def test_evaluate_json_keys_and_predictive_leads_reactive(creep, tmp_path, mode, capsys):
    if mode == "model" and not DEFAULT_MODEL.is_file():
        pytest.skip("no shipped model")
    out = tmp_path / "r.json"
    args = ["evaluate", str(creep), "--json", str(out), "--per-trace"] + (["--forecast-only"] if mode == "forecast-only" else [])
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert list(res) == ["events", "predictive", "reactive", "alarm_onsets_by"]
    by = res["alarm_onsets_by"]  # which signal drove each alarm onset
    assert by["forecast"] >= 2 and (mode == "model" or by["classifier"] == 0)  # creeps are forecast, not observed
    assert tuple(res["predictive"]) == KEYS and tuple(res["reactive"]) == KEYS
    assert res["events"] == 2
    p, r = res["predictive"], res["reactive"]
    assert p["recall"] == 1.0
    assert p["median_lead_s"] > r["median_lead_s"]
    assert p["shifted_share_at_failure"] >= r["shifted_share_at_failure"]
    printed = capsys.readouterr().out
    assert "recall" in printed and "onsets by forecast/observed/classifier" in printed


@pytest.mark.parametrize(
    "body, needle",
    [
        ("timestamp,endpoint,latency_ms\n5,a,1\nlater,a,1\n", ":3: unparsable timestamp 'later'"),
        ("ts,endpoint,latency_ms\n5,a,1\n", "missing required column(s): timestamp"),
    ],
)
def test_evaluate_bad_csv_is_a_located_error_not_a_traceback(tmp_path, body, needle, capsys):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    assert main(["evaluate", str(p), "--json", str(tmp_path / "o.json"), "--forecast-only"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


def test_evaluate_reads_the_policy(tmp_path, capsys):
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "policies:\n  - name: strict\n    criteria:\n"
        "      - {metric: latency_ms, op: '>', threshold: 120, weight: 1}\n"
        "    risk:\n      thresholds: {act: 0.7}\n"
    )
    csv = tmp_path / "t.csv"
    csv.write_text("timestamp,endpoint,latency_ms,up\n" + "".join(f"{5 * k},a,{50 + k},1\n" for k in range(200)))
    assert main(["evaluate", str(csv), "--policy", str(pol), "--forecast-only", "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "strict" in out and "act >= 0.7" in out
    res = json.loads((tmp_path / "o.json").read_text())
    assert res["events"] == 0 and res["predictive"]["recall"] is None
    assert res["reactive"]["false_alarms_per_day"] > 0  # latency passes 120 and stays: one false episode
    pol.write_text("policies: [oops]\n")
    assert main(["evaluate", str(csv), "--policy", str(pol), "--json", str(tmp_path / "o.json")]) == 2
    assert "p.yaml:1:" in capsys.readouterr().err


def test_alarm_rows_of_a_slowly_sampled_series_are_one_episode():
    """At 60 s sampling consecutive alarm rows are 60 s apart: still one episode, not one per row."""
    ts = np.arange(0.0, 3600.0, 60.0)
    up = np.ones(ts.size)
    alarm = (ts >= 600) & (ts < 1200)
    t = score_endpoint(ts, up, alarm)
    assert t.episodes == 1


def test_a_trace_written_endpoint_by_endpoint_evaluates_as_the_sorted_one(tmp_path, capsys):
    """The same rows grouped by endpoint instead of by time: the same JSON (a warning says it was sorted)."""
    from pfepo.traces.generate import Sizes, generate

    src = generate(tmp_path / "gen", 7, ("latency_creep",), Sizes(endpoints=2, failing=1, failure_hours=0.75))[0]
    text = src.read_text().splitlines()
    head, rows = text[0], text[1:]
    ep_col = head.split(",").index("endpoint")
    grouped = sorted(rows, key=lambda r: r.split(",")[ep_col])  # stable: each endpoint keeps its time order
    g = tmp_path / "grouped.csv"
    g.write_text("\n".join([head, *grouped]) + "\n")
    assert main(["evaluate", str(src), "--forecast-only", "--json", str(tmp_path / "a.json")]) == 0
    assert main(["evaluate", str(g), "--forecast-only", "--json", str(tmp_path / "b.json")]) == 0
    assert "out of time order" in capsys.readouterr().err
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())
