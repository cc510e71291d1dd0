"""Gradient-boosting P(failure within horizon) over window features, saved with its metadata.

A model file ``NAME.joblib`` always travels with ``NAME.json``: format version, feature list, horizon and
step it was trained for, training window and validation metrics. Loading checks the feature list
against what the engine computes, so a model trained for other features is refused (the engine then
falls back to forecast-only) instead of silently scoring garbage.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path

import joblib
import numpy as np

FORMAT_VERSION = 1
SHIPPED = "shipped"  # model_path naming the model shipped with the package


def shipped_model_path() -> Path:
    """The model shipped as package data (``pfepo/predict/models/``), located through importlib.resources
    so it is found wherever the package is installed, not relative to the working directory."""
    return Path(str(files("pfepo.predict") / "models" / "pfepo-predict.joblib"))


# Where earlier releases' configs pointed at the shipped model (a repository folder, gone since the model
# became package data): such a config keeps working.
LEGACY_SHIPPED = Path("models/pfepo-predict.joblib")


def resolve_model_path(path: str | Path) -> Path:
    """``"shipped"`` -> the shipped model; anything else is a file path. The old repository path of the
    shipped model also means the shipped model while no such file exists (configs written before 0.2)."""
    if str(path) == SHIPPED or (Path(path) == LEGACY_SHIPPED and not Path(path).exists()):
        return shipped_model_path()
    return Path(path)


class ModelError(ValueError):
    """A model file is missing, unreadable or does not match the engine."""


@dataclass
class ModelInfo:
    """The JSON sidecar of a saved model."""

    format_version: int
    model_version: str
    created_utc: str
    feature_names: list[str]
    horizon_s: float
    step_s: float
    training_window: dict = field(default_factory=dict)  # start/end (epoch s), rows, positives, sources
    validation: dict = field(default_factory=dict)  # roc_auc, average_precision, brier, rows
    sklearn_version: str = ""
    params: dict = field(default_factory=dict)


def sidecar(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


class FailureClassifier:
    """Wraps a fitted sklearn classifier and its ModelInfo."""

    def __init__(self, model, info: ModelInfo):
        self.model = model
        self.info = info

    @classmethod
    def train(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray,
        feature_names: list[str],
        horizon_s: float,
        step_s: float,
        window: dict | None = None,
        seed: int = 0,
        params: dict | None = None,
    ) -> FailureClassifier:
        """Fit on labelled rows; validation metrics come from whole groups (traces) held out.

        Holding out whole traces (not random rows) keeps neighbouring, nearly identical rows of the
        same episode out of both sides, so the validation numbers are not flattered.
        """
        import sklearn
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

        hp = {"max_iter": 200, "learning_rate": 0.08, "max_leaf_nodes": 31, "min_samples_leaf": 40, "l2_regularization": 1.0}
        hp.update(params or {})
        if len(np.unique(y)) < 2:
            raise ModelError("training data needs both failures and non-failures")
        ug = np.unique(groups)
        rng = np.random.default_rng(seed)
        held = rng.choice(ug, size=max(1, len(ug) // 5), replace=False) if len(ug) >= 5 else np.array([])
        val = np.isin(groups, held)
        validation: dict = {}
        if val.any() and len(np.unique(y[val])) == 2 and len(np.unique(y[~val])) == 2:
            m = HistGradientBoostingClassifier(random_state=seed, **hp).fit(x[~val], y[~val])
            p = m.predict_proba(x[val])[:, 1]
            validation = {
                "rows": int(val.sum()),
                "groups_held_out": int(len(held)),
                "roc_auc": round(float(roc_auc_score(y[val], p)), 4),
                "average_precision": round(float(average_precision_score(y[val], p)), 4),
                "brier": round(float(brier_score_loss(y[val], p)), 5),
            }
        model = HistGradientBoostingClassifier(random_state=seed, **hp).fit(x, y)
        info = ModelInfo(
            format_version=FORMAT_VERSION,
            model_version=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            feature_names=list(feature_names),
            horizon_s=float(horizon_s),
            step_s=float(step_s),
            training_window={**(window or {}), "rows": int(len(y)), "positives": int(y.sum())},
            validation=validation,
            sklearn_version=sklearn.__version__,
            params=hp,
        )
        return cls(model, info)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        return self.model.predict_proba(x)[:, 1]

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (joblib) and its JSON sidecar atomically (temp file + rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        joblib.dump({"format_version": FORMAT_VERSION, "model": self.model}, tmp, compress=3)
        tmp.replace(p)
        js = sidecar(p)
        tmpj = js.with_name(js.name + ".tmp")
        tmpj.write_text(json.dumps(asdict(self.info), indent=2) + "\n")
        tmpj.replace(js)
        return p

    @classmethod
    def load(cls, path: str | Path, expect_features: list[str] | None = None) -> FailureClassifier:
        p = Path(path)
        js = sidecar(p)
        if not p.is_file() or not js.is_file():
            raise ModelError(f"{p}: model or its sidecar {js.name} is missing")
        try:
            meta = json.loads(js.read_text())
            info = ModelInfo(**meta)
            blob = joblib.load(p)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one kind of problem for callers
            raise ModelError(f"{p}: cannot read model: {exc}") from None
        if info.format_version != FORMAT_VERSION or blob.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{p}: format version {info.format_version}, expected {FORMAT_VERSION}")
        if expect_features is not None and list(info.feature_names) != list(expect_features):
            raise ModelError(f"{p}: trained on other features than this engine computes (retrain it)")
        return cls(blob["model"], info)
