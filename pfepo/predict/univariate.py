"""One series in, event-like risk out (``pfepo predict``): real exports read as they come.

Reading (``read_series``) accepts what real telemetry exports look like and repairs it with a report
instead of refusing it:

- timestamps: epoch seconds, epoch milliseconds (all values > 1e11) or ISO-8601 / other common date
  formats (naive times are taken as UTC, so a daylight-saving change shows up as repeated or missing
  local hours);
- repeated timestamps (e.g. the repeated hour of a DST change): averaged into one step, counted;
- rows out of time order: sorted (stable), counted and warned about;
- empty, ``nan``/``null`` values, non-finite values: missing (risk carries the previous value);
- gaps and constant stretches need nothing special.

Unusable input is a ``SeriesError`` naming ``FILE:LINE`` (header = line 1): a missing column, a timestamp
that is not a time, out of range (|t| > 1e11 s, about year 5100) or infinite, a value that is text.

Scoring (``score``) runs pfepo.predict.core.AnomalyCore over the whole series at once, with the grid
step ``dt`` = the median interval between distinct timestamps. ``score_series`` is the array-only form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pfepo.predict.core import AnomalyCore, CoreParams

MAX_ABS_TIME_S = 1e11
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)
MISSING_TEXT = ("", "nan", "na", "n/a", "null", "none", "-")
_NA_CELLS = sorted({c for m in MISSING_TEXT for c in (m, m.upper(), m.capitalize())} | {"NaN"})
MAX_HORIZON_ROWS = 1_000_000


class SeriesError(ValueError):
    """The input cannot be used; the message names the file and line."""


@dataclass
class Series:
    """Rows of the file (original order) and the distinct-time grid they map to."""

    raw_time: np.ndarray  # original timestamp text per row
    raw_value: np.ndarray  # original value text per row
    t: np.ndarray  # distinct times, sorted (epoch s)
    y: np.ndarray  # value per distinct time (mean of its rows; NaN = missing)
    row_step: np.ndarray  # per input row: index into t
    notes: list[str] = field(default_factory=list)
    duplicates: int = 0  # rows merged into an earlier row with the same timestamp
    unsorted: int = 0  # rows whose time is before the previous row's


def _line(i: int) -> int:
    return int(i) + 2


def parse_times(raw: pd.Series, where: str) -> tuple[np.ndarray, list[str]]:
    """Epoch seconds per row; SeriesError (with line) for anything that is not a usable time."""
    notes: list[str] = []
    text = raw.astype(str).str.strip()
    if _NUMBER.fullmatch(text.iloc[0]) or len(text) < 2:
        num = pd.to_numeric(text, errors="coerce")
    else:  # dates: only the rows that are not ISO dates are tried as numbers (parsing is the costly part)
        iso_first = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        num = pd.Series(np.nan, index=text.index)
        if iso_first.isna().any():
            num[iso_first.isna()] = pd.to_numeric(text[iso_first.isna()], errors="coerce")
    is_num = num.notna().to_numpy()
    out = np.full(len(text), np.nan)
    if is_num.any():
        v = num.to_numpy(dtype=float)[is_num]
        fin = np.isfinite(v)
        if fin.any() and np.all(np.abs(v[fin]) > MAX_ABS_TIME_S) and np.all(np.abs(v[fin]) <= MAX_ABS_TIME_S * 1000):
            v = v / 1000.0
            notes.append("numeric timestamps read as epoch milliseconds")
        out[is_num] = v
    rest = ~is_num
    if rest.any():
        sub = text[rest]
        iso = pd.to_datetime(sub, errors="coerce", utc=True, format="ISO8601")
        if iso.isna().any():  # other common layouts (e.g. 04/10/2014 00:02), parsed one by one
            miss = iso.isna()
            iso[miss] = pd.to_datetime(sub[miss], errors="coerce", utc=True, format="mixed")
        secs = (iso - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
        out[rest] = secs
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "is not a finite time" if is_num[i] else "is not a time (expected epoch seconds or ISO-8601)"
        raise SeriesError(f"{where}:{_line(i)}: timestamp {raw.iloc[i]!r} {kind}")
    far = np.abs(out) > MAX_ABS_TIME_S
    if far.any():
        i = int(np.flatnonzero(far)[0])
        raise SeriesError(f"{where}:{_line(i)}: timestamp {raw.iloc[i]!r} is out of range (|t| > 1e11 s)")
    return out, notes


def parse_values(raw: pd.Series, where: str, col: str) -> np.ndarray:
    text = raw.astype(str).str.strip()
    num = pd.to_numeric(text, errors="coerce")
    bad = num.isna() & ~text.str.lower().isin(MISSING_TEXT) & text.notna()  # NaN cells stay NA as str (pandas 3)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise SeriesError(f"{where}:{_line(i)}: column {col!r}: {raw.iloc[i]!r} is not a number")
    v = num.to_numpy(dtype=float)
    return np.where(np.isfinite(v), v, np.nan)


def read_series(path: str | Path, time_column: str = "timestamp", value_column: str = "value") -> Series:
    p = Path(path)
    if not p.is_file():
        raise SeriesError(f"{p}: no such file")
    try:
        head = pd.read_csv(p, nrows=0, skipinitialspace=True)
        cols = [str(c).strip() for c in head.columns]
        if time_column in cols and value_column in cols:
            # Fast path: the C parser reads the value column as numbers; any text falls back below.
            fast = pd.read_csv(p, usecols=lambda c: str(c).strip() in (time_column, value_column), dtype={time_column: str},
                               keep_default_na=False, na_values=_NA_CELLS, skipinitialspace=True)
            fast.columns = [str(c).strip() for c in fast.columns]
            if len(fast) and pd.api.types.is_float_dtype(fast[value_column]):
                v = fast[value_column].to_numpy(dtype=float)
                return _build(fast[time_column], pd.Series(v), str(p), value_column, fast[value_column].to_numpy())
        df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise SeriesError(f"{p}: empty file (expected a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SeriesError(f"{p}: not a readable CSV: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    for col in (time_column, value_column):
        if col not in df.columns:
            raise SeriesError(
                f"{p}:1: no column {col!r} (columns: {', '.join(df.columns)}); see --time-column/--value-column"
            )
    if len(df) == 0:
        raise SeriesError(f"{p}: no data rows")
    return from_columns(df[time_column], df[value_column], str(p), value_column)


def from_columns(raw_t: pd.Series, raw_v: pd.Series, where: str = "<input>", col: str = "value") -> Series:
    v = parse_values(raw_v.reset_index(drop=True), where, col)
    return _build(raw_t, pd.Series(v), where, col, raw_v.to_numpy())


def _build(raw_t: pd.Series, values: pd.Series, where: str, col: str, raw_v: np.ndarray) -> Series:
    t, notes = parse_times(raw_t.reset_index(drop=True), where)
    v = values.to_numpy(dtype=float)
    v = np.where(np.isfinite(v), v, np.nan)
    unsorted = int((np.diff(t) < 0).sum())
    if unsorted:
        notes.append(f"{unsorted} row(s) out of time order: sorted by time")
    uniq, inv = np.unique(t, return_inverse=True)
    dup = int(t.size - uniq.size)
    ok = np.isfinite(v)
    sums = np.bincount(inv, weights=np.where(ok, v, 0.0), minlength=uniq.size)
    cnts = np.bincount(inv, weights=ok.astype(float), minlength=uniq.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(cnts > 0, sums / cnts, np.nan)
    if dup:
        notes.append(f"{dup} row(s) repeat an earlier timestamp: averaged with it")
    return Series(raw_t.to_numpy(), raw_v, uniq, y, inv, notes, dup, unsorted)


def grid_step(t: np.ndarray) -> float:
    """The series' sampling interval: the median positive interval (1 s if it has a single time)."""
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def params_for(dt: float, horizon_rows: int = 30, baseline_rows: int = 300) -> CoreParams:
    """Core parameters for a series sampled every ``dt`` s (horizon and baseline given in rows)."""
    return CoreParams(dt=dt, horizon_s=horizon_rows * dt, min_base=max(2.0, baseline_rows / 2.0))


def score(series: Series, horizon: int = 30, baseline: int = 300) -> np.ndarray:
    """Risk per input row (original order): the risk of its distinct time, carried over missing values."""
    dt = grid_step(series.t)
    core = AnomalyCore(params_for(dt, horizon, baseline), 1)
    ok = np.isfinite(series.y)
    risk_t = np.zeros(series.t.size)
    if ok.any():
        r = core.update(series.y[ok, None], series.t[ok])[:, 0]
        full = np.full(series.t.size, np.nan)
        full[ok] = r
        risk_t = pd.Series(full).ffill().fillna(0.0).to_numpy()
    return np.clip(risk_t[series.row_step], 0.0, 1.0)


def score_series(values: np.ndarray, times: np.ndarray | None = None, horizon: int = 30, baseline: int = 300) -> np.ndarray:
    """Risk for an array of values (times default to 0, 1, 2, ... seconds); same method as ``score``."""
    v = np.asarray(values, dtype=float)
    t = np.arange(v.size, dtype=float) if times is None else np.asarray(times, dtype=float)
    s = from_columns(pd.Series(t.astype(str)) if times is None else pd.Series(t), pd.Series(v))
    return score(s, horizon, baseline)
