"""Classifier persistence: round trip with metadata, refusal of mismatched models, cold start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pfepo.predict.classifier import FailureClassifier, ModelError
from pfepo.predict.engine import PredictiveEngine


def _toy(names, n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(names)))
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 1.0).astype(int)
    groups = np.arange(n) // 60
    return x, y, groups


def test_save_load_round_trip_keeps_metadata_and_predictions(tmp_path):
    names = [f"f{i}" for i in range(4)]
    x, y, g = _toy(names)
    clf = FailureClassifier.train(x, y, g, names, 300.0, 10.0, window={"start": 1.0, "end": 2.0}, params={"max_iter": 30})
    path = clf.save(tmp_path / "m.joblib")
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["feature_names"] == names
    assert meta["training_window"]["rows"] == len(y) and meta["training_window"]["positives"] == int(y.sum())
    assert meta["validation"]["roc_auc"] > 0.8
    assert meta["horizon_s"] == 300.0 and meta["model_version"]
    back = FailureClassifier.load(path, expect_features=names)
    np.testing.assert_allclose(back.predict_proba(x[:50]), clf.predict_proba(x[:50]))
    assert back.predict_proba(x[:50])[np.argmax(x[:50, 0])] > 0.5
    with pytest.raises(ModelError, match="other features"):
        FailureClassifier.load(path, expect_features=names[::-1])


def test_missing_sidecar_or_garbage_is_a_model_error(tmp_path):
    names = ["a", "b"]
    x, y, g = _toy(names)
    p = FailureClassifier.train(x, y, g, names, 300.0, 10.0, params={"max_iter": 10}).save(tmp_path / "m.joblib")
    (tmp_path / "m.json").unlink()
    with pytest.raises(ModelError, match="missing"):
        FailureClassifier.load(p)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        FailureClassifier.load(p)


def test_engine_cold_start_falls_back_to_forecast_only(tmp_path):
    eng = PredictiveEngine(model_path=tmp_path / "absent.joblib")
    assert eng.classifier is None and "missing" in eng.model_error
    eng.observe("a", 10.0, {"latency_ms": 20.0})
    assert eng.predict(20.0)["a"].model == "forecast"


def test_engine_refuses_a_model_for_other_features(tmp_path):
    names = ["a", "b"]
    x, y, g = _toy(names)
    p = FailureClassifier.train(x, y, g, names, 300.0, 10.0, params={"max_iter": 10}).save(tmp_path / "m.joblib")
    eng = PredictiveEngine(model_path=p)
    assert eng.classifier is None and "other features" in eng.model_error


def test_the_shipped_model_is_package_data_and_loads_by_name():
    from pfepo.predict.classifier import shipped_model_path
    from pfepo.predict.engine import PredictiveEngine

    path = shipped_model_path()
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert "pfepo/predict/models" in path.as_posix()
    eng = PredictiveEngine(model_path="shipped")
    assert eng.classifier is not None, eng.model_error


def test_a_config_with_the_old_shipped_model_path_still_loads_it(tmp_path, monkeypatch):
    """Configs written before the model became package data said models/pfepo-predict.joblib."""
    from pfepo.predict.classifier import resolve_model_path, shipped_model_path
    from pfepo.predict.engine import PredictiveEngine

    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("models/pfepo-predict.joblib") == shipped_model_path()
    assert PredictiveEngine(model_path="models/pfepo-predict.joblib").classifier is not None
    # ... but a file of the operator's own at that path wins.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "pfepo-predict.joblib").write_bytes(b"")
    assert resolve_model_path("models/pfepo-predict.joblib") == Path("models/pfepo-predict.joblib")


def test_online_prediction_does_not_import_offline_evaluation():
    """The daemon's side (pfepo.predict) never pulls in pfepo.evaluate: no engine <-> dataset <-> replay cycle."""
    import subprocess
    import sys

    code = ("import sys, pfepo.predict.engine, pfepo.predict.learning, pfepo.predict.univariate; "
            "bad = [m for m in sys.modules if m.startswith('pfepo.evaluate')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
