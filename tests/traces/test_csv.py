"""Trace CSV validation: every problem names the row; the generator is deterministic and varied."""

from __future__ import annotations

import numpy as np
import pytest

from pfepo.traces.csv import TraceError, failure_starts, read_trace
from pfepo.traces.generate import SCENARIOS, Sizes, generate

HEAD = "timestamp,endpoint,latency_ms,loss_pct,up\n"


def _write(tmp_path, text: str):
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p


def test_reads_epoch_and_iso_and_ignores_extra_columns(tmp_path):
    p = _write(
        tmp_path,
        "timestamp,endpoint,latency_ms,extra,up\n"
        "1000,a,10,x,1\n"
        "1970-01-01T00:16:45Z,a,11,y,0\n"
        "1010,a,,z,1\n",
    )
    tr = read_trace(p)
    assert tr.frame["ts"].tolist() == [1000.0, 1005.0, 1010.0]
    assert np.isnan(tr.frame["latency_ms"].iloc[2])
    assert "extra" not in tr.frame.columns
    assert failure_starts(tr)["a"].tolist() == [1005.0]


@pytest.mark.parametrize(
    "body, needle",
    [
        ("timestamp,latency_ms\n1,2\n", "missing required column(s): endpoint"),
        ("timestamp,endpoint,foo\n1,a,2\n", "no metric column"),
        (HEAD + "1,a,1,0,1\nyesterday,a,1,0,1\n", ":3: unparsable timestamp 'yesterday'"),
        (HEAD + "1,a,1,0,1\n2,a,fast,0,1\n", ":3: column 'latency_ms': 'fast' is not a number"),
        (HEAD + "1,a,1,0,1\n2,a,1,0,2\n", ":3: column 'up' must be 0 or 1"),
        (HEAD + "1,,1,0,1\n", ":2: empty endpoint"),
    ],
)
def test_errors_name_the_row(tmp_path, body, needle):
    with pytest.raises(TraceError) as exc:
        read_trace(_write(tmp_path, body))
    assert needle in str(exc.value)
    assert str(tmp_path / "t.csv") in str(exc.value)


def test_nan_and_inf_cells_are_kept_for_the_engine_to_reject(tmp_path):
    tr = read_trace(_write(tmp_path, HEAD + "1,a,nan,inf,1\n2,a,-inf,1,\n"))
    assert np.isnan(tr.frame["latency_ms"].iloc[0])
    assert np.isinf(tr.frame["loss_pct"].iloc[0])
    assert tr.frame["up"].tolist() == [1.0, 1.0]  # empty up carries the last known state


def test_missing_value_cells_read_as_pfepo_predict_reads_them(tmp_path):
    """``n/a``, ``N/A``, ``-`` and ``NULL`` are missing values in both readers (pfepo/tabular.py); they were
    errors in trace files."""
    tr = read_trace(_write(tmp_path, HEAD + "1,a,n/a,-,1\n2,a,N/A,NULL,1\n3,a,7,0.5,1\n"))
    assert np.isnan(tr.frame["latency_ms"].iloc[:2]).all() and np.isnan(tr.frame["loss_pct"].iloc[:2]).all()
    assert tr.frame["latency_ms"].iloc[2] == 7.0


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(TraceError, match="empty file"):
        read_trace(_write(tmp_path, ""))
    with pytest.raises(TraceError, match="no such file"):
        read_trace(tmp_path / "nope.csv")


def test_generator_is_deterministic_and_has_the_scenarios(tmp_path):
    small = Sizes(endpoints=2, failing=1, failure_hours=1.0, benign_hours=1.0)
    a = generate(tmp_path / "a", 7, sizes=small)
    b = generate(tmp_path / "b", 7, sizes=small)
    c = generate(tmp_path / "c", 8, scenarios=("latency_creep",), sizes=small)
    assert [p.name for p in a] == [f"{s}-s7.csv" for s in SCENARIOS]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    assert c[0].read_bytes() != a[0].read_bytes()
    for p in a:
        tr = read_trace(p)
        events = sum(len(v) for v in failure_starts(tr).values())
        if "benign" in p.name:
            assert events == 0
        elif "flapping" in p.name:
            assert events >= 3
        else:
            assert events == 1


def test_generate_traces_command(tmp_path, capsys):
    from pfepo.cli import main

    args = ["generate-traces", "--out", str(tmp_path), "--seed", "3", "--scenarios", "loss_ramp", "benign_daily",
            "--endpoints", "2", "--failing", "1", "--failure-hours", "1", "--benign-hours", "1"]
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benign_daily-s3.csv", "loss_ramp-s3.csv"]
    assert main(["generate-traces", "--out", str(tmp_path), "--endpoints", "1", "--failing", "2"]) == 2
    assert "--failing" in capsys.readouterr().err


def test_rows_out_of_order_are_sorted_and_repeats_merged_with_located_notes(tmp_path):
    """A file written endpoint by endpoint (each block in time order) is sorted by time, stable, and a
    repeated (timestamp, endpoint) is one row: metrics averaged, down if any repeat says down. Both were
    errors before; real exports look like this."""
    tr = read_trace(_write(tmp_path, HEAD + "1,a,1,0,1\n5,a,3,0,0\n1,b,7,0,1\n5,b,8,0,1\n5,b,10,,0\n"))
    f = tr.frame
    assert f["ts"].tolist() == [1.0, 1.0, 5.0, 5.0] and f["endpoint"].tolist() == ["a", "b", "a", "b"]
    assert f["latency_ms"].tolist() == [1.0, 7.0, 3.0, 9.0] and f["loss_pct"].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert f["up"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert {k: v.tolist() for k, v in failure_starts(tr).items()} == {"a": [5.0], "b": [5.0]}
    assert any("1 row(s) out of time order (first" in n and "t.csv:4" in n for n in tr.notes), tr.notes
    assert any("1 row(s) repeat an earlier timestamp" in n and "t.csv:6" in n for n in tr.notes), tr.notes


def test_epoch_milli_and_nanoseconds_are_read_by_their_size(tmp_path):
    """Numeric timestamps all beyond 1e11 s are not seconds (year 5100+): milli- or nanoseconds by size, as
    ``pfepo predict`` reads them, with a note (they were read as seconds: a 5 s step became 5,000 s)."""
    for mult, unit in ((1_000, "milliseconds"), (1_000_000_000, "nanoseconds")):
        body = HEAD + "".join(f"{(1_700_000_000 + 5 * k) * mult},a,10,0,1\n" for k in range(3))
        tr = read_trace(_write(tmp_path, body))
        assert tr.frame["ts"].tolist() == [1_700_000_000.0, 1_700_000_005.0, 1_700_000_010.0]
        assert any(f"read as epoch {unit}" in n for n in tr.notes), tr.notes


def test_column_names_in_another_letter_case_are_read_with_a_note(tmp_path):
    tr = read_trace(_write(tmp_path, "Timestamp,Endpoint,Latency_ms,UP\n1,a,10,1\n2,a,11,0\n"))
    assert tr.metrics == ["latency_ms"] and tr.frame["up"].tolist() == [1.0, 0.0]
    assert "column 'Timestamp' read as 'timestamp'" in tr.notes
