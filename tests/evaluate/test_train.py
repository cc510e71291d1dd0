"""Offline (re)training: pfepo.evaluate.train.retrain swaps a model trained on labelled history in."""

from __future__ import annotations

from pfepo.evaluate.train import retrain
from pfepo.predict.engine import PredictiveEngine
from pfepo.traces.csv import read_trace
from pfepo.traces.generate import Sizes, generate


def test_retrain_learns_from_failures_and_persists(tmp_path):
    small = Sizes(endpoints=2, failing=1, failure_hours=1.5)
    paths = generate(tmp_path, 5, scenarios=("latency_creep", "loss_ramp", "cpu_exhaustion"), sizes=small)
    eng = PredictiveEngine()
    clf = retrain(eng, [read_trace(p) for p in paths], tmp_path / "m.joblib")
    assert (tmp_path / "m.json").is_file() and clf.info.training_window["positives"] > 0
    assert eng.classifier is clf
    again = PredictiveEngine(model_path=tmp_path / "m.joblib")
    assert again.classifier is not None and again.model_error is None
