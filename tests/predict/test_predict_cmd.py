"""``pfepo predict``: causal risk for a univariate series, located errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pfepo.cli import main
from pfepo.predict.univariate import score_series


def _series(n=900, seed=0):
    rng = np.random.default_rng(seed)
    y = 100 + rng.normal(0, 3, n)
    y[600:750] += np.linspace(0, 80, 150)  # a growing excursion
    y[300:303] += 40  # a brief spike
    return y


def test_risk_is_causal_bounded_and_flags_a_growing_excursion():
    y = _series()
    r = score_series(y)
    assert r.min() >= 0 and r.max() <= 1
    assert r[:290].max() < 0.1  # quiet while normal
    assert r[740] > 0.6 > r[310]  # a growing excursion outranks a brief spike
    y2 = y.copy()
    y2[700:] = -500.0  # rewrite the future
    assert np.array_equal(score_series(y2)[:700], r[:700])


def test_constant_and_missing_values(tmp_path):
    r = score_series(np.r_[np.full(200, 5.0), [np.nan, np.inf], np.full(50, 5.0)])
    assert np.isfinite(r).all() and r.max() < 0.1


def test_cli_writes_timestamp_value_risk(tmp_path, capsys):
    y = _series()
    src = tmp_path / "in.csv"
    pd.DataFrame({"time": [f"2026-01-01T{k // 3600:02d}:{k // 60 % 60:02d}:{k % 60:02d}Z" for k in range(900)], "v": y}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    assert main(["predict", "--input", str(src), "--time-column", "time", "--value-column", "v", "--output", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["timestamp", "value", "risk"] and len(df) == 900
    assert df["risk"].between(0, 1).all()


@pytest.mark.parametrize(
    "body, needle",
    [
        ("timestamp,value\n1,2\n1,3\n", ":3: duplicate timestamp 1"),
        ("timestamp,value\n2,2\n1,3\n", ":3: rows are not sorted"),
        ("timestamp,value\n1,2\nlater,3\n", ":3: unparsable timestamp"),
        ("timestamp,value\n1,2\n2,abc\n", ":3: value 'abc' is not a number"),
        ("time,value\n1,2\n", "no column 'timestamp'"),
    ],
)
def test_cli_bad_input_names_the_row(tmp_path, body, needle, capsys):
    src = tmp_path / "in.csv"
    src.write_text(body)
    assert main(["predict", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
