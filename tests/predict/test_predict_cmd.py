"""``pfepo predict``: real exports accepted (repairs reported), event-like causal risk, located errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pfepo.cli import main
from pfepo.predict.univariate import read_series, score, score_series

DT = 300.0


def _series(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    y = 100 + rng.normal(0, 3, n)
    y[2000:2150] += np.linspace(0, 80, 150)  # a growing excursion
    return y


def _times(n):
    return 1.7e9 + np.arange(n) * DT


def test_risk_is_causal_bounded_and_rises_at_an_onset():
    y = _series()
    t = _times(y.size)
    r = score_series(y, t)
    assert r.min() >= 0 and r.max() <= 1
    assert r[:2000].max() < 0.5  # quiet while normal
    assert r[2000:2150].max() >= 0.5  # the excursion raises an alarm while it grows
    y2 = y.copy()
    y2[2500:] = -500.0  # rewrite the future
    assert np.array_equal(score_series(y2, t)[:2500], r[:2500])


def _write(path, times, values, col="timestamp"):
    pd.DataFrame({col: times, "value": values}).to_csv(path, index=False)


def test_cli_writes_one_row_per_input_row(tmp_path, capsys):
    y = _series()[:1000]
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    iso = pd.to_datetime(_times(1000), unit="s").strftime("%Y-%m-%dT%H:%M:%SZ")
    pd.DataFrame({"time": iso, "v": y}).to_csv(src, index=False)
    assert main(["predict", "--input", str(src), "--time-column", "time", "--value-column", "v", "--output", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["timestamp", "value", "risk"] and len(df) == 1000
    assert df["risk"].between(0, 1).all()


def test_repeated_timestamps_are_averaged_and_reported(tmp_path, capsys):
    """A DST fall-back exported in local time repeats an hour: rows are kept, values averaged."""
    t = pd.date_range("2025-10-26 00:00", periods=600, freq="5min")
    local = list(t.strftime("%Y-%m-%d %H:%M:%S"))
    rep = local[24:36]  # 02:00-02:55 occurs twice
    times = local[:36] + rep + local[36:]
    vals = np.r_[np.full(36, 10.0), np.full(12, 14.0), np.full(564, 10.0)] + np.random.default_rng(1).normal(0, 0.1, 612)
    src, out = tmp_path / "dst.csv", tmp_path / "o.csv"
    _write(src, times, vals)
    s = read_series(src)
    assert s.duplicates == 12 and s.t.size == 600
    assert abs(s.y[24] - np.mean([vals[24], vals[36]])) < 1e-9
    assert main(["predict", "--input", str(src), "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "12 row(s) repeat an earlier timestamp: averaged" in err
    assert len(pd.read_csv(out)) == 612


def test_unsorted_rows_are_sorted_with_a_warning_and_keep_their_order_in_the_output(tmp_path, capsys):
    t = _times(400)
    y = np.random.default_rng(2).normal(5, 1, 400)
    order = np.r_[np.arange(200), np.arange(300, 400), np.arange(200, 300)]  # a block stepping backwards
    src, out = tmp_path / "u.csv", tmp_path / "o.csv"
    _write(src, t[order].astype(int), y[order])
    assert main(["predict", "--input", str(src), "--output", str(out)]) == 0
    assert "out of time order: sorted" in capsys.readouterr().err
    df = pd.read_csv(out)
    assert df["timestamp"].tolist() == t[order].astype(int).tolist()
    ref = score_series(y, t)
    assert np.allclose(df["risk"].to_numpy(), np.round(ref[order], 4))


def test_epoch_ms_gaps_empty_and_constant_stretches_are_accepted(tmp_path):
    t = np.r_[_times(300), _times(300)[-1] + 86_400 + np.arange(300) * DT]  # a one-day gap
    y = np.r_[np.full(150, 7.0), np.random.default_rng(3).normal(7, 0.2, 450)]
    cells = [f"{v:.3f}" for v in y]
    cells[10:40] = [""] * 30
    src, out = tmp_path / "ms.csv", tmp_path / "o.csv"
    pd.DataFrame({"timestamp": (t * 1000).astype(np.int64), "value": cells}).to_csv(src, index=False)
    s = read_series(src)
    assert any("milliseconds" in n for n in s.notes) and abs(s.t[0] - t[0]) < 1e-6
    assert main(["predict", "--input", str(src), "--output", str(out)]) == 0
    r = pd.read_csv(out)["risk"]
    assert len(r) == 600 and r.notna().all()


@pytest.mark.parametrize(
    "body, needle",
    [
        ("timestamp,value\n1,2\nlater,3\n", ":3: timestamp 'later' is not a time"),
        ("timestamp,value\n1,2\n2,abc\n", ":3: column 'value': 'abc' is not a number"),
        ("timestamp,value\n1e300,2\n2,3\n", ":2: timestamp '1e300' is out of range"),
        ("timestamp,value\ninf,2\n2,3\n", ":2: timestamp 'inf' is not a finite time"),
        ("host,value\nabc,2\n", "no column 'timestamp'"),  # the other column's cells are not times
        ("time,cpu,mem\n1,2,3\n", "no column 'value'"),
        ("timestamp,value\n", "no data rows"),
        # fourteenth session: line numbers count a comment preamble and a missing header; JSON says so
        ("# preamble\n# more\ntimestamp,value\n1,2\n2,abc\n", "in.csv:5: column 'value': 'abc' is not a number"),
        ("1,2\n2,3\nlater,4\n", "in.csv:3: timestamp 'later' is not a time"),  # no header: row 0 is line 1
        ('[{"timestamp": 1, "value": 2}]\n', "in.csv:1: this looks like JSON"),
        ("PK\x03\x04\x14\x00\x06\x00", "in.csv: this looks like a spreadsheet workbook"),  # twentieth session: .xlsx
        ("timestamp,value\n1,800MB\n2,1.2GB\n", "in.csv:2: column 'value': '800MB' is not a number"),  # two units
    ],
)
def test_cli_bad_input_names_the_row(tmp_path, body, needle, capsys):
    src = tmp_path / "in.csv"
    src.write_text(body)
    assert main(["predict", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_huge_horizon_is_refused_quickly(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n" + "".join(f"{k},{k % 3}\n" for k in range(10)))
    assert main(["predict", "--input", str(src), "--output", str(tmp_path / "o.csv"), "--horizon", "100000000"]) == 2
    assert "--horizon must be between 1 and 1000000" in capsys.readouterr().err


def test_score_matches_the_engine_core_on_a_threshold_free_metric():
    """One core: the engine scoring a metric without threshold gives pfepo predict's risk."""
    from pfepo.predict.engine import PredictiveEngine

    rng = np.random.default_rng(4)
    n = 700
    y = 50 + rng.normal(0, 1, n)
    y[500:] += 12
    step = 10.0
    t = 1.7e9 + np.arange(1, n + 1) * step
    eng = PredictiveEngine(step_s=step, thresholds={}, metrics=["value"], fits_per_step=0)
    risks = []
    for k in range(n):
        eng.observe("s", t[k], {"value": y[k]})
        eng.advance(t[k])
        risks.append(eng.core.risk[0])
    cli = score(read_series_from(t, y))
    assert np.allclose(np.array(risks), cli, atol=1e-9)
    assert max(risks) >= 0.5


def read_series_from(t, y):
    from pfepo.predict.univariate import from_columns

    return from_columns(pd.Series(t), pd.Series(y))


def test_score_series_takes_nan_values_as_missing():
    """An array with NaN (pandas 3 keeps a NaN cell as NA when cast to str) is scored, NaN = missing."""
    y = _series()
    y[500:520] = np.nan
    r = score_series(y, _times(y.size))
    assert r.shape == y.shape and np.isfinite(r).all()


def test_a_damaged_export_is_read_with_located_warnings(tmp_path, capsys):
    """A real export with a few broken cells, a ';' delimiter and a capitalised header is scored, not
    refused: the broken rows are named (file:line) and still get an output row (the previous row's risk)."""
    rows = [f"{1_400_000_000 + 60 * k};{50 + (k % 7)}" for k in range(300)]
    rows[50] = f";{50}"  # no timestamp (line 52)
    rows[80] = f"{1_400_000_000 + 60 * 80};#N/A"  # a spreadsheet error as the value (line 82)
    src, out = tmp_path / "in.csv", tmp_path / "o.csv"
    src.write_text("Timestamp;Value\n" + "\n".join(rows) + "\n")
    assert main(["predict", "--input", str(src), "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "delimiter ';'" in err and "column 'Timestamp' read as 'timestamp'" in err
    assert "1 row(s) without a usable timestamp skipped (first " in err and "in.csv:52: timestamp is empty" in err
    assert "1 value(s) that are not numbers read as missing" in err and "in.csv:82: '#N/A'" in err
    r = pd.read_csv(out)
    assert len(r) == 300 and r["risk"].notna().all()
    assert r["risk"].iloc[50] == r["risk"].iloc[49]


def test_more_than_a_few_broken_timestamps_is_an_error(tmp_path, capsys):
    """Broken times in more than 1 % of the rows mean the wrong column or format, not a damaged export."""
    rows = [f"{'x' if k % 20 == 0 else 1_400_000_000 + 60 * k},{k % 5}" for k in range(300)]
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert main(["predict", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    assert "in.csv:2: timestamp 'x' is not a time (expected epoch seconds or ISO-8601) (and 14 more" in capsys.readouterr().err


def test_an_empty_timestamp_cell_in_a_comma_file_is_skipped(tmp_path, capsys):
    """The comma fast path reads an empty time cell as NA (not text): still one located warning."""
    rows = [f"{1_400_000_000 + 60 * k},{50 + (k % 7)}" for k in range(300)]
    rows[50] = ",50"
    src, out = tmp_path / "in.csv", tmp_path / "o.csv"
    src.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert main(["predict", "--input", str(src), "--output", str(out)]) == 0
    assert "in.csv:52: timestamp is empty" in capsys.readouterr().err
    assert len(pd.read_csv(out)) == 300


@pytest.mark.parametrize(
    "sep, cells, expected, style",
    [
        (",", ['"4,962.4"', '"1,234"', "999.5"], [4962.4, 1234.0, 999.5], "digit grouping"),
        (";", ["4962,4", "1.234,5", "999"], [4962.4, 1234.5, 999.0], "a decimal comma"),
        (";", ["1,234", "0,5", "12"], [1.234, 0.5, 12.0], "a decimal comma"),  # ';' file: the comma is decimal
        (",", ['"1,234"', '"12,345"', "7"], [1234.0, 12345.0, 7.0], "digit grouping"),  # ',' file: grouping
    ],
)
def test_numbers_with_digit_grouping_or_a_decimal_comma_are_read(tmp_path, sep, cells, expected, style):
    """Spreadsheet exports in many locales: the value is read, with one warning naming the style and a line."""
    rows = [f"{1_400_000_000 + 60 * k}{sep}{cells[k % 3]}" for k in range(300)]
    src = tmp_path / "in.csv"
    src.write_text(f"timestamp{sep}value\n" + "\n".join(rows) + "\n")
    s = read_series(src)
    assert np.allclose(s.y[:3], expected)
    assert any(f"written with {style} read as numbers" in n for n in s.notes), s.notes


def test_columns_named_otherwise_are_found_when_only_one_fits(tmp_path, capsys):
    """``time,cpu_utilization``: the time-like column and the one other column, each with a warning; the
    output is the same as for the same file with the default names."""
    rows = [f"{1_400_000_000 + 300 * k},{v:.3f}" for k, v in enumerate(_series()[:2400])]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("time,cpu_utilization\n" + "\n".join(rows) + "\n")
    b.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert main(["predict", "--input", str(a), "--output", str(tmp_path / "oa.csv")]) == 0
    err = capsys.readouterr().err
    assert "column 'time' read as the time" in err and "column 'cpu_utilization' read as the value" in err
    assert main(["predict", "--input", str(b), "--output", str(tmp_path / "ob.csv")]) == 0
    assert pd.read_csv(tmp_path / "oa.csv")["risk"].equals(pd.read_csv(tmp_path / "ob.csv")["risk"])


def test_a_two_column_export_with_unknown_names_is_read_by_its_cells(tmp_path, capsys):
    """``Zeit;Wert`` with day-first dates and decimal commas (a German spreadsheet export): no name says
    which column is the time, its cells do. The risk is the same as for the file with the default names;
    a column whose cells are not times is still no time (the error lists the columns)."""
    t = pd.date_range("2021-03-27", periods=2400, freq="5min")
    v = _series()[:2400]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text('"Zeit";"Wert"\n' + "".join(f'"{x:%d.%m.%Y %H:%M}";"{str(round(y, 3)).replace(".", ",")}"\n'
                                             for x, y in zip(t, v, strict=True)))
    b.write_text("timestamp,value\n" + "".join(f"{x:%Y-%m-%d %H:%M},{round(y, 3)}\n" for x, y in zip(t, v, strict=True)))
    assert main(["predict", "--input", str(a), "--output", str(tmp_path / "oa.csv")]) == 0
    err = capsys.readouterr().err
    assert "column 'Zeit' read as the time (its cells are times)" in err and "column 'Wert' read as the value" in err
    assert main(["predict", "--input", str(b), "--output", str(tmp_path / "ob.csv")]) == 0
    assert pd.read_csv(tmp_path / "oa.csv")["risk"].equals(pd.read_csv(tmp_path / "ob.csv")["risk"])
    c = tmp_path / "c.csv"
    c.write_text("host,load\n" + "".join(f"web-{k},{y}\n" for k, y in enumerate(v[:50])))
    assert main(["predict", "--input", str(c), "--output", str(tmp_path / "oc.csv")]) == 2
    assert "no column 'timestamp' (columns: host, load)" in capsys.readouterr().err


def test_an_export_in_a_windows_code_page_is_read(tmp_path, capsys):
    """``Temperatur (°C)`` written in Latin-1 (a spreadsheet's code page, not UTF-8) was refused as an
    unreadable CSV: now read, with a warning, the column named as written; the same risk as in UTF-8."""
    rows = "".join(f"{1_400_000_000 + 300 * k},{v:.3f}\n" for k, v in enumerate(_series()[:2400]))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(("timestamp,Temperatur (°C)\n" + rows).encode("latin-1"))
    b.write_text("timestamp,Temperatur (°C)\n" + rows, encoding="utf-8")
    for f in (a, b):
        assert main(["predict", "--input", str(f), "--output", str(tmp_path / f"o{f.stem}.csv"),
                     "--value-column", "Temperatur (°C)"]) == 0
    err = capsys.readouterr().err
    assert err.count("not UTF-8 text: read as Latin-1") == 1
    assert pd.read_csv(tmp_path / "oa.csv")["risk"].equals(pd.read_csv(tmp_path / "ob.csv")["risk"])


def test_non_iso_dates_parse_as_row_by_row_parsing_does():
    """US-style dates are parsed with the first row's format (fast), and a row in another layout still
    row by row: the same instants as pandas' per-row parsing of every row."""
    from pfepo.predict.univariate import parse_times

    t = pd.date_range("2014-03-01", periods=500, freq="5min")
    text = pd.Series([f"{x:%m/%d/%Y %H:%M}" for x in t])
    text[7] = "March 1, 2014 00:35"  # another layout in the same column
    got, _ = parse_times(text, "x.csv")
    ref = (pd.to_datetime(text, format="mixed", utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    assert np.array_equal(got, ref.to_numpy())
    dayfirst = pd.Series([f"{x:%d/%m/%Y %H:%M}" for x in pd.date_range("2014-03-13", periods=600, freq="h")])
    got, _ = parse_times(dayfirst, "x.csv")  # the first row shows day-first dates: the whole column is
    assert np.all(np.diff(got) == 3600.0)  # (row by row, 01/04/2014 was January 4th: time went backwards)
    ampm = pd.Series([f"{x:%m/%d/%Y %I:%M:%S %p}" for x in t])  # a layout pandas does not guess
    got, _ = parse_times(ampm, "x.csv")
    assert np.array_equal(got, (t.tz_localize("UTC") - pd.Timestamp(0, tz="UTC")).total_seconds().to_numpy())


def _export(rows_t, rows_v, head="timestamp,value\n", sep=","):
    return head + "".join(f"{a}{sep}{b}\n" for a, b in zip(rows_t, rows_v, strict=True))


@pytest.mark.parametrize(
    "kind, warning",
    [
        ("preamble", "2 comment line(s) before the header skipped"),
        ("headerless", "no header row (line 1 is data)"),
        ("percent", "carry the unit '%'"),
        ("unit_with_space", "carry the unit 'ms'"),
        ("epoch_us", "read as epoch microseconds"),
        ("epoch_ns", "read as epoch nanoseconds"),
        ("spaces", "columns separated by spaces"),
    ],
)
def test_more_export_shapes_score_as_the_plain_file(tmp_path, capsys, kind, warning):
    """Exports with a comment preamble, without a header row, with a unit after every value, with epoch
    micro- or nanoseconds, or lined up with spaces: each is read with one warning and scores exactly as
    the plain ``timestamp,value`` file of the same samples (each was refused before)."""
    y = [f"{v:.3f}" for v in _series()[:2400]]
    secs = [1_400_000_000 + 300 * k for k in range(len(y))]
    plain = tmp_path / "plain.csv"
    plain.write_text(_export(secs, y))
    body = {
        "preamble": "# exported by a monitoring tool\n// unit: ms\n" + _export(secs, y),
        "headerless": _export([f"{pd.Timestamp(s, unit='s'):%Y-%m-%d %H:%M:%S}" for s in secs], y, head=""),
        "percent": _export(secs, [f"{v}%" for v in y]),
        "unit_with_space": _export(secs, [f"{v} ms" for v in y]),
        "epoch_us": _export([s * 1_000_000 for s in secs], y),
        "epoch_ns": _export([s * 1_000_000_000 for s in secs], y),
        "spaces": _export(secs, y, head="timestamp   value\n", sep="   "),
    }[kind]
    src = tmp_path / "in.csv"
    src.write_text(body)
    assert main(["predict", "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 0
    assert warning in capsys.readouterr().err
    assert main(["predict", "--input", str(plain), "--output", str(tmp_path / "p.csv")]) == 0
    got, ref = pd.read_csv(tmp_path / "o.csv"), pd.read_csv(tmp_path / "p.csv")
    assert len(got) == len(ref) == len(y) and got["risk"].equals(ref["risk"])



@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_a_compressed_export_is_sniffed_after_decompression(tmp_path, suffix):
    """pandas decompresses by suffix, and the delimiter and preamble are read from the decompressed text
    too: a compressed ``;`` file with a comment line was read as one column before."""
    import bz2
    import gzip
    import lzma
    import zipfile

    y = [f"{v:.3f}" for v in _series()[:600]]
    text = "# exported\n" + _export([1_400_000_000 + 300 * k for k in range(len(y))], y, head="timestamp;value\n", sep=";")
    src = tmp_path / f"in.csv{suffix}"
    if suffix == ".zip":
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("in.csv", text)
    else:
        with {".gz": gzip, ".bz2": bz2, ".xz": lzma}[suffix].open(src, "wt") as f:
            f.write(text)
    s = read_series(src)
    assert np.allclose(s.y, [float(v) for v in y])
    assert any("delimiter ';'" in n for n in s.notes) and any("1 comment line" in n for n in s.notes), s.notes


def test_the_summary_names_the_alarms_as_the_input_writes_their_times(tmp_path, capsys):
    """The last line says how many distinct times reached the alarm level and the first and last of them in
    the input's own notation (what an operator looks up in the file); a quiet series says none."""
    y = _series()
    iso = pd.to_datetime(_times(y.size), unit="s").strftime("%Y-%m-%dT%H:%M:%SZ")
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"timestamp": iso, "value": y}).to_csv(src, index=False)
    assert main(["predict", "--input", str(src), "--output", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    df = pd.read_csv(out)
    hot = df[df["risk"] >= 0.5]
    assert len(hot) > 0, "the excursion must alarm, else the test cannot fail"
    assert last == f"alarms: {len(hot)} time(s) with risk >= 0.5, first at {hot['timestamp'].iloc[0]}, last at {hot['timestamp'].iloc[-1]}"
    pd.DataFrame({"timestamp": iso[:1500], "value": 100.0 + np.arange(1500) % 3}).to_csv(src, index=False)
    assert main(["predict", "--input", str(src), "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "alarms: none (risk < 0.5 throughout)"
