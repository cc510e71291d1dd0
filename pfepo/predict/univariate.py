"""One series in, event-like risk out (``pfepo predict``): real exports read as they come.

Reading (``read_series``) accepts what real telemetry exports look like and repairs it with a report
instead of refusing it:

- timestamps: epoch seconds, epoch milli-, micro- or nanoseconds (all values > 1e11, by size) or ISO-8601 / other common date
  formats (naive times are taken as UTC, so a daylight-saving change shows up as repeated or missing
  local hours);
- repeated timestamps (e.g. the repeated hour of a DST change): averaged into one step, counted;
- rows out of time order: sorted (stable), counted and warned about;
- empty, ``nan``/``null`` values, non-finite values: missing (risk carries the previous value);
- gaps and constant stretches need nothing special.

- a few broken rows (a timestamp that is not a time, out of range (|t| > 1e11 s, about year 5100) or
  infinite; a value that is text): at most ``MAX_BAD_SHARE`` of the rows are skipped (time) or read as
  missing (value), counted and located in a warning; their output rows carry the previous row's risk;
- a header in other letter case (``Timestamp``) and ``;``, tab, ``|`` or spaces as the delimiter;
- fourteenth session: comment lines (``#``, ``//``) before the header, no header row at all (a two-column
  file whose first line is a time and a number), one unit after every value (``51.7%``, ``12 ms``),
  epoch micro- and nanoseconds; a JSON file is an error that says so.

Unusable input is a ``SeriesError`` naming ``FILE:LINE`` (header = line 1): a missing column, or more broken
timestamps or text values than a few (the wrong column, not a damaged export).

Scoring (``score``) runs pfepo.predict.core.AnomalyCore over the whole series at once, with the grid
step ``dt`` = the median interval between distinct timestamps. ``score_series`` is the array-only form.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from pfepo.predict.core import AnomalyCore, CoreParams
from pfepo.tabular import MAX_ABS_TIME_S, MISSING_TEXT, epoch_seconds
from pfepo.tabular import data_line as _line

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)
_NA_CELLS = sorted({c for m in MISSING_TEXT for c in (m, m.upper(), m.capitalize())} | {"NaN"})
MAX_HORIZON_ROWS = 1_000_000
MAX_BAD_SHARE = 0.01  # broken cells tolerated per column (skipped/missing with a warning); more is an error


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


def parse_times(raw: pd.Series, where: str, first: int = 2) -> tuple[np.ndarray, list[str]]:
    """Epoch seconds per row; SeriesError (with line) for anything that is not a usable time. Numeric
    times all beyond 1e11 s (about year 5100) are epoch milli-, micro- or nanoseconds, by their size."""
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
        v, unit = epoch_seconds(num.to_numpy(dtype=float)[is_num])
        if unit:
            notes.append(f"numeric timestamps read as epoch {unit}")
        out[is_num] = v
    rest = ~is_num
    if rest.any():
        sub = text[rest]
        iso = pd.to_datetime(sub, errors="coerce", utc=True, format="ISO8601")
        if iso.isna().any():  # other common layouts (e.g. 04/10/2014 00:02): the first one's layout for all
            miss = iso.isna()  # (faster than guessing row by row, and consistent), then row by row
            fmt = _layout(str(sub[miss].iloc[0]))
            if fmt is not None:
                iso[miss] = pd.to_datetime(sub[miss], errors="coerce", utc=True, format=fmt)
                miss = iso.isna()
            if miss.any():
                iso[miss] = pd.to_datetime(sub[miss], errors="coerce", utc=True, format="mixed")
        secs = (iso - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
        out[rest] = secs
    bad = ~np.isfinite(out)
    far = np.zeros(out.size, dtype=bool)
    far[~bad] = np.abs(out[~bad]) > MAX_ABS_TIME_S
    broken = bad | far
    if broken.any():
        i = int(np.flatnonzero(broken)[0])
        if far[i]:
            what = f"timestamp {raw.iloc[i]!r} is out of range (|t| > 1e11 s)"
        else:
            kind = "is not a finite time" if is_num[i] else "is not a time (expected epoch seconds or ISO-8601)"
            empty = pd.isna(raw.iloc[i]) or str(text.iloc[i]).lower() in MISSING_TEXT
            what = "timestamp is empty" if empty else f"timestamp {raw.iloc[i]!r} {kind}"
        n = int(broken.sum())
        if n > MAX_BAD_SHARE * len(out) or n == len(out):
            more = f" (and {n - 1} more row(s) like it)" if n > 1 else ""
            raise SeriesError(f"{where}:{_line(i, first)}: {what}{more}")
        notes.append(f"{n} row(s) without a usable timestamp skipped (first {where}:{_line(i, first)}: {what}); "
                     "they carry the previous row's risk")
        out[broken] = np.nan
    return out, notes


_GROUPED = r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?"  # 1,234 or 4,962.4: digit grouping by commas
_DECIMAL_COMMA = r"[+-]?\d{1,3}(\.\d{3})+(,\d*)?|[+-]?\d*,\d+"  # 4.962,4 or 49,62: a decimal comma


def _locale_numbers(text: pd.Series, decimal_comma: bool) -> tuple[pd.Series, str | None]:
    """Spreadsheet exports write numbers with digit grouping (``4,962.4``) or, in many locales, with a
    decimal comma (``4962,4``, ``4.962,4``). The column's style is the one its unambiguous cells show
    (``4,962.4`` is only grouping, ``4962,4`` only a decimal comma); cells such as ``1,234`` fit both and
    follow the majority, else the delimiter: a decimal comma where the file is not comma-separated (a
    decimal comma is why such exports use ``;``). Returns the cells as plain numbers (NaN where neither
    style fits) and the style's name."""
    en, eu = text.str.fullmatch(_GROUPED), text.str.fullmatch(_DECIMAL_COMMA)
    only_en, only_eu = int((en & ~eu).sum()), int((eu & ~en).sum())
    if not (en | eu).any():
        return pd.Series(np.nan, index=text.index), None
    use_eu = only_eu > only_en or (only_eu == only_en and decimal_comma)
    if use_eu:
        plain = text.where(eu).str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        return pd.to_numeric(plain, errors="coerce"), "a decimal comma"
    return pd.to_numeric(text.where(en).str.replace(",", "", regex=False), errors="coerce"), "digit grouping"


AMPM_LAYOUTS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%Y-%m-%d %I:%M:%S %p")


def _layout(first: str) -> str | None:
    """The date layout of ``first``: pandas' guess, else one of a few common layouts its guesser does not
    know (12-hour clocks with AM/PM). A first row that shows day-first dates (``13/03/2014``) makes the
    whole column day-first, where row-by-row parsing read ``01/04/2014`` as January 4th."""
    with warnings.catch_warnings():  # pandas warns that a day-first guess ignores dayfirst=False: intended
        warnings.simplefilter("ignore")
        fmt = guess_datetime_format(first)
    if fmt is not None:
        return fmt
    for f in AMPM_LAYOUTS:
        if not pd.isna(pd.to_datetime(first, format=f, errors="coerce")):
            return f
    return None


_WITH_UNIT = r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\d\s.,+-][^\d\s]{0,7})\s*"


def _unit_numbers(text: pd.Series) -> tuple[pd.Series, str | None]:
    """Exports that write a unit after every number (``51.7%``, ``12 ms``, ``3.2GB``): where the cells that
    carry one all carry the same unit, the numbers; a mix of units is left alone (``800MB`` and ``1.2GB``
    are not on one scale, and guessing the factor would be worse than the located error)."""
    parts = text.str.extract(_WITH_UNIT)
    units = parts[1].dropna().unique()
    if len(units) != 1:
        return pd.Series(np.nan, index=text.index), None
    return pd.to_numeric(parts[0], errors="coerce"), str(units[0])


def parse_values(raw: pd.Series, where: str, col: str, notes: list[str] | None = None,
                 decimal_comma: bool = False, first: int = 2) -> np.ndarray:
    """Numbers per row (NaN = missing); a few text cells become missing when ``notes`` collects the warning.
    Numbers written with digit grouping or a decimal comma are read as numbers (``_locale_numbers``), and
    numbers followed by one unit throughout (``_unit_numbers``); ``decimal_comma``: the file is not
    comma-separated (the tie-breaker between the two styles)."""
    text = raw.astype(str).str.strip()
    num = pd.to_numeric(text, errors="coerce")
    blank = text.str.lower().isin(MISSING_TEXT) | text.isna()  # NaN cells stay NA as str (pandas 3)
    bad = num.isna() & ~blank
    if bad.any():
        loc, style = _locale_numbers(text[bad], decimal_comma)
        if style is not None and loc.notna().any():
            num[loc.index[loc.notna()]] = loc[loc.notna()]
            i = int(np.flatnonzero(loc.notna().to_numpy())[0])
            first_cell = text[bad].iloc[i]
            if notes is not None:
                notes.append(f"{int(loc.notna().sum())} value(s) written with {style} read as numbers (first "
                             f"{where}:{_line(loc.index[i], first)}: {first_cell!r} -> {loc.iloc[i]:g})")
            bad = num.isna() & ~blank
    if bad.any() and notes is not None:
        nums, unit = _unit_numbers(text[bad])
        if unit is not None and nums.notna().any():
            got = nums.index[nums.notna()]
            num[got] = nums[got]
            notes.append(f"{len(got)} value(s) carry the unit {unit!r}: read as the numbers before it "
                         f"(first {where}:{_line(got[0], first)}: {text[got[0]]!r})")
            bad = num.isna() & ~blank
    v = num.to_numpy(dtype=float)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        n = int(bad.sum())
        if notes is None or n > MAX_BAD_SHARE * len(v) or n == len(v):
            more = f" (and {n - 1} more like it)" if n > 1 else ""
            raise SeriesError(f"{where}:{_line(i, first)}: column {col!r}: {raw.iloc[i]!r} is not a number{more}")
        notes.append(f"{n} value(s) that are not numbers read as missing (first {where}:{_line(i, first)}: {raw.iloc[i]!r})")
    return np.where(np.isfinite(v), v, np.nan)


def read_series(path: str | Path, time_column: str = "timestamp", value_column: str = "value") -> Series:
    p = Path(path)
    if not p.is_file():
        raise SeriesError(f"{p}: no such file")
    notes: list[str] = []
    try:
        sep, skip, first_line = _sniff(p, notes)
        opts = {"skipinitialspace": True, "sep": sep, "skiprows": skip}
        if not _is_utf8(p):
            opts["encoding"] = "latin-1"
            notes.append("not UTF-8 text: read as Latin-1 (ISO-8859-1), one character per byte")
        head = pd.read_csv(p, nrows=0, **opts)
        cols = [str(c).strip() for c in head.columns]
        tcol, vcol = _column(cols, time_column, notes), _column(cols, value_column, notes)
        tcol, vcol = _guess_columns(cols, tcol, vcol, time_column, value_column, notes)
        if tcol is None and time_column == "timestamp" and len(cols) == 2 and not _headerless(cols):
            tcol, vcol = _time_by_content(p, opts, cols, vcol, value_column, notes)
        first = skip + 2
        if (tcol is None or vcol is None) and _headerless(cols):
            notes.append(f"no header row (line {first_line} is data): columns read as {time_column!r}, {value_column!r}")
            opts.update(header=None, names=[time_column, value_column])
            tcol, vcol, first = time_column, value_column, skip + 1
        elif tcol is not None and vcol is not None and tcol != vcol:
            # Fast path: the C parser reads the value column as numbers; any text falls back below.
            fast = pd.read_csv(p, usecols=lambda c: str(c).strip() in (tcol, vcol), dtype={tcol: str},
                               keep_default_na=False, na_values=_NA_CELLS, **opts)
            fast.columns = [str(c).strip() for c in fast.columns]
            if len(fast) and pd.api.types.is_float_dtype(fast[vcol]):
                v = fast[vcol].to_numpy(dtype=float)
                return _build(fast[tcol], pd.Series(v), str(p), vcol, fast[vcol].to_numpy(), notes, first)
        df = pd.read_csv(p, dtype=str, keep_default_na=False, **opts)
    except pd.errors.EmptyDataError:
        raise SeriesError(f"{p}: empty file (expected a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SeriesError(f"{p}: not a readable CSV: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    for col, got in ((time_column, tcol), (value_column, vcol)):
        if got is None:
            raise SeriesError(
                f"{p}:{first_line}: no column {col!r} (columns: {', '.join(df.columns)}); see --time-column/--value-column"
            )
    if len(df) == 0:
        raise SeriesError(f"{p}: no data rows")
    return from_columns(df[tcol], df[vcol], str(p), vcol, notes, decimal_comma=sep != ",", first=first)


def _sniff(p: Path, notes: list[str]) -> tuple[str, int, int]:
    """The delimiter, the number of comment lines before the header (``#`` or ``//``, as many exporters
    write a preamble) and the header's line number. The delimiter is ``,`` unless the header line has
    none and has ``;``, a tab or ``|`` (spreadsheet exports in many locales), or else spaces. A file that
    is JSON is an error that says so (not a CSV parser's complaint about field counts)."""
    if p.suffix.lower() != ".zip":
        with open(p, "rb") as fb:
            magic = fb.read(8)
        if magic.startswith(b"PK\x03\x04") or magic == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
            raise SeriesError(f"{p}: this looks like a spreadsheet workbook (.xlsx, .ods or .xls), not text; "
                              "save the sheet as CSV (a time and a value column, one row per sample)")
    skip = 0
    with _open_text(p) as f:
        for line in f:
            text = line.strip()
            if not (text.startswith("#") or text.startswith("//")):
                break
            skip += 1
        else:
            text = ""
    if text[:1] in ("[", "{"):
        raise SeriesError(f"{p}:{skip + 1}: this looks like JSON; pfepo predict reads CSV (a time and a value "
                          "column, one row per sample)")
    if skip:
        notes.append(f"{skip} comment line(s) before the header skipped")
    if "," in text:
        return ",", skip, skip + 1
    counts = {d: text.count(d) for d in (";", "\t", "|")}
    best = max(counts, key=counts.get)
    if counts[best]:
        notes.append(f"delimiter {best!r} (no comma in the header)")
        return best, skip, skip + 1
    if len(text.split()) > 1:  # columns lined up with spaces (a fixed-width or shell export)
        notes.append("columns separated by spaces (no comma in the header)")
        return r"\s+", skip, skip + 1
    return ",", skip, skip + 1


def _open_text(p: Path, errors: str = "replace"):
    """The file as text, decompressed as pandas will read it (by suffix: .gz, .bz2, .xz, .zip of one file)."""
    suffix = p.suffix.lower()
    if suffix in (".gz", ".bz2", ".xz"):
        opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[suffix]
        return opener(p, "rt", encoding="utf-8-sig", errors=errors)
    if suffix == ".zip":
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            data = z.read(names[0]) if len(names) == 1 else b""  # pandas refuses a zip of several files
        return io.StringIO(data.decode("utf-8-sig", errors=errors))
    return open(p, encoding="utf-8-sig", errors=errors)


def _is_utf8(p: Path) -> bool:
    """Whether the whole file decodes as UTF-8. Spreadsheets on Windows export in their code page (``°C``,
    ``µs`` as single bytes); such a file is read as Latin-1, where every byte is a character."""
    try:
        with _open_text(p, errors="strict") as f:
            while f.read(1 << 20):
                pass
    except UnicodeDecodeError:
        return False
    return True


def _headerless(cols: list[str]) -> bool:
    """A two-column file whose first line is already a sample (a time, then a number): exports without a
    header row. A header names its columns, so neither of its cells reads as a number."""
    return len(cols) == 2 and bool(_NUMBER.fullmatch(cols[1].strip())) and _reads_as_time(cols[0])


def _reads_as_time(cell: str) -> bool:
    """A cell that reads as a time: a number (epoch) or a date pandas can parse."""
    t = cell.strip()
    if _NUMBER.fullmatch(t):
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return not pd.isna(pd.to_datetime(t, errors="coerce", utc=True, format="mixed"))


def _time_by_content(p: Path, opts: dict, cols: list[str], vcol: str | None, value_column: str,
                     notes: list[str]) -> tuple[str | None, str | None]:
    """A two-column file whose header names its time in a way we do not know (``Zeit;Wert``, ``when,load``):
    the time is the column that is not the value (the first, where neither is named), if its first cell reads
    as a time; the other one is then the value (when the user named none). Otherwise nothing is guessed."""
    if vcol is not None:
        cand = next(c for c in cols if c != vcol)
    elif value_column == "value":
        cand = cols[0]
    else:
        return None, vcol
    row = pd.read_csv(p, nrows=1, dtype=str, keep_default_na=False, **opts)
    row.columns = [str(c).strip() for c in row.columns]
    if len(row) == 0 or not _reads_as_time(str(row[cand].iloc[0])):
        return None, vcol
    notes.append(f"no column 'timestamp': column {cand!r} read as the time (its cells are times)")
    if vcol is None:
        vcol = next(c for c in cols if c != cand)
        notes.append(f"no column 'value': column {vcol!r} read as the value")
    return cand, vcol


def _column(cols: list[str], name: str, notes: list[str]) -> str | None:
    """The header's spelling of ``name``: exact, else the one column equal to it ignoring letter case."""
    if name in cols:
        return name
    same = [c for c in cols if c.lower() == name.lower()]
    if len(same) == 1:
        notes.append(f"column {same[0]!r} read as {name!r}")
        return same[0]
    return None


TIME_NAMES = ("time", "ts", "date", "datetime", "date_time", "_time", "@timestamp", "timestamp_utc", "time_utc",
              "period", "epoch")


def _guess_columns(cols: list[str], tcol: str | None, vcol: str | None, time_column: str, value_column: str,
                   notes: list[str]) -> tuple[str | None, str | None]:
    """Exports name their columns in many ways (``time,cpu_utilization``). Where a default name
    (``timestamp``, ``value``) is not in the header, the column it must be is taken when only one fits, with
    a warning: for the time, the one column named like a time (``TIME_NAMES``, or a name containing "time"
    or "date"); for the value, the one column left in a two-column file. A name the user gave is never
    guessed, and an ambiguous header stays an error that lists the columns."""
    if tcol is None and time_column == "timestamp":
        named = [c for c in cols if c.lower() in TIME_NAMES] or [c for c in cols if "time" in c.lower() or "date" in c.lower()]
        if len(named) == 1:
            tcol = named[0]
            notes.append(f"no column 'timestamp': column {tcol!r} read as the time")
    if vcol is None and value_column == "value" and tcol is not None and len(cols) == 2:
        vcol = next(c for c in cols if c != tcol)
        notes.append(f"no column 'value': column {vcol!r} read as the value")
    return tcol, vcol


def from_columns(raw_t: pd.Series, raw_v: pd.Series, where: str = "<input>", col: str = "value",
                 notes: list[str] | None = None, decimal_comma: bool = False, first: int = 2) -> Series:
    """A series from its time and value columns as text; ``notes``: repairs already made (reading the file);
    ``decimal_comma``: the file is not comma-separated (``parse_values``); ``first``: the line of row 0."""
    notes = list(notes or [])
    v = parse_values(raw_v.reset_index(drop=True), where, col, notes, decimal_comma, first)
    return _build(raw_t, pd.Series(v), where, col, raw_v.to_numpy(), notes, first)


def _build(raw_t: pd.Series, values: pd.Series, where: str, col: str, raw_v: np.ndarray,
           value_notes: list[str] | None = None, first: int = 2) -> Series:
    t_all, notes = parse_times(raw_t.reset_index(drop=True), where, first)
    notes += value_notes or []
    v_all = values.to_numpy(dtype=float)
    timed = np.isfinite(t_all)  # rows without a usable time (a few, else parse_times refused) are skipped
    t, v = t_all[timed], np.where(np.isfinite(v_all), v_all, np.nan)[timed]
    unsorted = int((np.diff(t) < 0).sum())
    if unsorted:
        notes.append(f"{unsorted} row(s) out of time order: sorted by time")
    uniq, inv = np.unique(t, return_inverse=True)
    row_step = inv
    if not timed.all():  # a skipped row maps to the step of the row before it in the file (the first: the next)
        at = np.maximum.accumulate(np.where(timed, np.cumsum(timed) - 1, -1))
        row_step = inv[np.where(at >= 0, at, 0)]
    dup = int(t.size - uniq.size)
    ok = np.isfinite(v)
    sums = np.bincount(inv, weights=np.where(ok, v, 0.0), minlength=uniq.size)
    cnts = np.bincount(inv, weights=ok.astype(float), minlength=uniq.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(cnts > 0, sums / cnts, np.nan)
    if dup:
        notes.append(f"{dup} row(s) repeat an earlier timestamp: averaged with it")
    return Series(raw_t.to_numpy(), raw_v, uniq, y, row_step, notes, dup, unsorted)


def grid_step(t: np.ndarray) -> float:
    """The series' sampling interval: the median positive interval (1 s if it has a single time)."""
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def params_for(dt: float, horizon_rows: int = 30, baseline_rows: int = 300) -> CoreParams:
    """Core parameters for a series sampled every ``dt`` s (horizon and baseline given in rows)."""
    return CoreParams(dt=dt, horizon_s=horizon_rows * dt, min_base=max(2.0, baseline_rows / 2.0))


MULT_SLOPE = 0.5  # log-log slope of the moves on the level: the midpoint of additive (0) and multiplicative (1)
COUNT_SLOPE = 0.25  # ... for counts (``_counts``): the midpoint of additive (0) and Poisson (0.5)
MULT_RANGE = 1.5  # ... measured only where the level's upper quartile is >= this x its lower one


def _level_slope(y: np.ndarray, stat: Callable[[np.ndarray], float] = np.median) -> float | None:
    """The log-log slope of ``stat`` of |first difference| on the local level (a 5-row rolling median) over
    the level's four quartiles; None where the level barely varies (upper quartile < ``MULT_RANGE`` x the
    lower one: the additive model's one noise scale is then nearly right anyway) or it cannot be measured
    (a quartile with < 10 rows, no movement in one, a level <= 0)."""
    lvl = pd.Series(y).rolling(5, center=True, min_periods=1).median().to_numpy()[1:]
    d = np.abs(np.diff(y))
    q = np.quantile(lvl, [0.25, 0.5, 0.75])
    if not q[0] > 0 or q[2] < MULT_RANGE * q[0]:
        return None
    g = np.searchsorted(q, lvl, side="right")
    if any((g == k).sum() < 10 for k in range(4)):
        return None
    md = np.array([stat(d[g == k]) for k in range(4)])
    lv = np.array([np.median(lvl[g == k]) for k in range(4)])
    if not ((md > 0).all() and (lv > 0).all()):
        return None
    return float(np.polyfit(np.log(lv), np.log(md), 1)[0])


def _multiplicative(y: np.ndarray, dt: float) -> float | None:
    """week10: for a positive series whose moves grow with its level (lognormal volume and latency: the
    noise sd a share of the level), the floor of its log transform; None for any other series.

    Judged on ``y``, the first day (>= 600 rows): all values > 0, and the median |first difference| over the
    four quartiles of the local level grows with the level with a log-log slope >= ``MULT_SLOPE``
    (``_level_slope``)."""
    if y.size < 100 or not (y > 0).all():
        return None
    slope = _level_slope(y)
    return float(y.min() / 2) if slope is not None and slope >= MULT_SLOPE else None


def _counts(y: np.ndarray) -> bool:
    """Eighteenth session: event counts (Poisson-like), scored on their square root (Anscombe's transform).

    Judged on the first day like ``_multiplicative`` (which takes precedence: it needs every value > 0, and
    counts have zeros): non-negative integers, not constant, whose mean |first difference| grows with the
    local level with a log-log slope >= ``COUNT_SLOPE`` (Poisson: 0.5; additive noise: 0; the mean, not
    the median: integer moves make a median of 0 or 1) or, where the level barely varies, whose first
    differences have the variance of Poisson counts' (2 x the mean) within a factor of 3. Square roots of
    counts have one noise scale and little skew: at a usual count of 1, a count of 5 is routine for events
    (1 in 270 rows) where an additive Gaussian scale calls it 4 sds."""
    if y.size < 100 or (y < 0).any() or (y != np.round(y)).any() or np.ptp(y) == 0:
        return False
    slope = _level_slope(y, np.mean)
    if slope is not None:
        return slope >= COUNT_SLOPE
    return 1.0 / 3.0 <= float(np.var(np.diff(y))) / (2.0 * float(np.mean(y))) <= 3.0


def _first_day(dt: float) -> int:
    """Rows on which the scale is chosen (and which keep the plain core's risk): a day, >= 600 rows."""
    return int(max(600, 86_400 / dt))


def _scale(y: np.ndarray, dt: float) -> tuple[str, Callable[[np.ndarray], np.ndarray] | None]:
    """The scale a series is scored on, chosen on its first day ``y``: its logarithm (``_multiplicative``),
    else its square root (``_counts``), else its values (no transform)."""
    floor = _multiplicative(y, dt)
    if floor is not None:
        return "logarithm", lambda v: np.log(np.maximum(v, floor))  # a value <= 0 later: a big drop in log space
    if _counts(y):
        return "square root", lambda v: 2.0 * np.sqrt(np.maximum(v, 0.0) + 0.375)  # Anscombe's; < 0 later: as 0
    return "values", None


def _score_rows(core: AnomalyCore, y: np.ndarray, t: np.ndarray, dt: float) -> np.ndarray:
    """Risk of the observed rows: the core on the values, or on their logarithm where the first day shows a
    multiplicative series (``_multiplicative``), or on their square root where it shows event counts
    (``_counts``). Causal: both run over the first day and its rows keep the plain core's risk; from the
    next row on, the chosen one continues (its state saw every row)."""
    w = _first_day(dt)
    if y.size <= w:
        return core.update(y[:, None], t)[:, 0]
    head = core.update(y[:w, None], t[:w])[:, 0]
    f = _scale(y[:w], dt)[1]
    if f is None:
        return np.concatenate([head, core.update(y[w:, None], t[w:])[:, 0]])
    ty = f(y)
    tcore = AnomalyCore(core.p, 1)  # on the transformed values, from the first row (its state saw every row)
    tcore.update(ty[:w, None], t[:w])
    return np.concatenate([head, tcore.update(ty[w:, None], t[w:])[:, 0]])


def scoring_scale(series: Series) -> str:
    """What ``score`` scores ``series`` on after its first day: "values", "logarithm" or "square root"."""
    dt = grid_step(series.t)
    y, w = series.y[np.isfinite(series.y)], _first_day(dt)
    return "values" if y.size <= w else _scale(y[:w], dt)[0]


def score(series: Series, horizon: int = 30, baseline: int = 300) -> np.ndarray:
    """Risk per input row (original order): the risk of its distinct time, carried over missing values."""
    dt = grid_step(series.t)
    core = AnomalyCore(params_for(dt, horizon, baseline), 1)
    ok = np.isfinite(series.y)
    risk_t = np.zeros(series.t.size)
    if ok.any():
        r = _score_rows(core, series.y[ok], series.t[ok], dt)
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


def alarm_onsets(risk: np.ndarray, alarm: float = 0.5) -> np.ndarray:
    """Rows where ``risk`` crosses ``alarm`` upwards: the alarms a streaming reader of it raises (risk is
    event-like, so one episode is one onset)."""
    hot = np.asarray(risk) >= alarm
    return np.flatnonzero(hot & ~np.r_[False, hot[:-1]])
