"""Read and validate telemetry trace CSVs (the format of docs/DESIGN: timestamp, endpoint, metrics, up).

Every problem names the file and the 1-based line of the offending row (the header is line 1), because
operators fix traces in an editor. Rules:

- required columns: ``timestamp``, ``endpoint`` and at least one metric column; ``up`` is optional
  (without it a trace has no failure events, so it can only show false alarms);
- ``timestamp`` is epoch seconds or ISO-8601 (naive ISO times are taken as UTC); numbers all beyond 1e11
  are epoch milli-, micro- or nanoseconds by their size (with a note), as ``pfepo predict`` reads them;
- rows out of time order (a file written endpoint by endpoint) are sorted by timestamp (stable), with a
  note; rows repeating an (endpoint, timestamp) are merged, with a note: metrics averaged, ``up`` down if
  any of them says down (fourteenth session: both were errors; real exports look like this);
- metric cells: numbers; empty, ``nan``, ``na``, ``n/a``, ``null``, ``none`` or ``-`` (any letter case,
  ``pfepo.tabular.MISSING_TEXT``, as ``pfepo predict`` reads them) are missing and ``inf`` is kept as
  non-finite (the engine rejects and counts them); any other text is an error; ``up`` must be 0 or 1
  (empty = unknown, carried forward);
- unknown extra columns are ignored; the format's column names in another letter case (``Timestamp``) are
  read as them, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pfepo.tabular import MISSING_TEXT, epoch_seconds
from pfepo.tabular import data_line as _line

METRICS: tuple[str, ...] = ("latency_ms", "loss_pct", "utilization_pct", "cpu_pct", "error_rate_pct")
COLUMNS: tuple[str, ...] = ("timestamp", "endpoint", *METRICS, "up")


class TraceError(ValueError):
    """A trace cannot be used; the message names the file and row."""


@dataclass
class Trace:
    """A validated trace: rows sorted by time, metrics as float (NaN = missing), ``up`` as float."""

    path: str
    frame: pd.DataFrame  # columns: ts (float epoch s), endpoint (str), metrics present..., up (float)
    metrics: list[str]
    has_up: bool
    notes: list[str] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return list(dict.fromkeys(self.frame["endpoint"]))

    def duration_s(self) -> float:
        ts = self.frame["ts"]
        return float(ts.iloc[-1] - ts.iloc[0]) if len(ts) else 0.0


def _parse_timestamps(raw: pd.Series, path: str, notes: list[str]) -> np.ndarray:
    num = pd.to_numeric(raw, errors="coerce")
    if num.notna().all():
        out, unit = epoch_seconds(num.to_numpy(dtype=float))
        if unit:
            notes.append(f"numeric timestamps read as epoch {unit}")
    else:
        iso = pd.to_datetime(raw.where(num.isna()), errors="coerce", utc=True, format="ISO8601")
        bad = num.isna() & iso.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise TraceError(
                f"{path}:{_line(i)}: unparsable timestamp {raw.iloc[i]!r} (expected epoch seconds or ISO-8601)"
            )
        secs = (iso - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        out = np.where(num.notna(), num, secs).astype(float)
    nonfinite = ~np.isfinite(out)
    if nonfinite.any():
        i = int(np.flatnonzero(nonfinite)[0])
        raise TraceError(f"{path}:{_line(i)}: timestamp {raw.iloc[i]!r} is not a finite time")
    return out


def _parse_numbers(raw: pd.Series, col: str, path: str) -> np.ndarray:
    text = raw.fillna("").astype(str).str.strip()
    num = pd.to_numeric(text.replace("", "nan"), errors="coerce")
    lowered = text.str.lower()
    allowed_nan = lowered.isin(MISSING_TEXT)
    bad = num.isna() & ~allowed_nan
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise TraceError(f"{path}:{_line(i)}: column {col!r}: {raw.iloc[i]!r} is not a number")
    return num.to_numpy(dtype=float)


def from_frame(df: pd.DataFrame, path: str = "<frame>") -> Trace:
    """Validate a frame with the CSV's columns (strings or numbers) and return a Trace."""
    cols = [str(c).strip() for c in df.columns]
    case_notes: list[str] = []
    for i, c in enumerate(cols):  # `Timestamp`, `UP`: the format's names in another letter case
        if c not in COLUMNS and c.lower() in COLUMNS and c.lower() not in cols:
            case_notes.append(f"column {c!r} read as {c.lower()!r}")
            cols[i] = c.lower()
    df = df.copy()
    df.columns = cols
    missing = [c for c in ("timestamp", "endpoint") if c not in cols]
    if missing:
        raise TraceError(f"{path}:1: missing required column(s): {', '.join(missing)} (header: {', '.join(cols)})")
    metrics = [m for m in METRICS if m in cols]
    if not metrics:
        raise TraceError(f"{path}:1: no metric column; expected at least one of {', '.join(METRICS)}")
    if len(df) == 0:
        raise TraceError(f"{path}: no data rows")
    notes = case_notes
    ts = _parse_timestamps(df["timestamp"].astype(str).str.strip(), path, notes)
    ep = df["endpoint"].fillna("").astype(str).str.strip()
    empty = (ep == "").to_numpy()
    if empty.any():
        raise TraceError(f"{path}:{_line(int(np.flatnonzero(empty)[0]))}: empty endpoint")
    out = pd.DataFrame({"ts": ts, "endpoint": ep.to_numpy()})
    for m in metrics:
        out[m] = _parse_numbers(df[m], m, path)
    has_up = "up" in cols
    if has_up:
        up = _parse_numbers(df["up"], "up", path)
        bad = ~np.isnan(up) & ~np.isin(up, (0.0, 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TraceError(f"{path}:{_line(i)}: column 'up' must be 0 or 1, got {df['up'].iloc[i]!r}")
        out["up"] = up
    else:
        out["up"] = 1.0
    out, repairs = _in_time_order(out, metrics, df["timestamp"], path)
    notes += repairs
    if has_up:  # unknown health carries the endpoint's last known state (documented repair), 1 at the start
        out["up"] = out.groupby("endpoint")["up"].ffill().fillna(1.0)
    return Trace(path=path, frame=out.reset_index(drop=True), metrics=metrics, has_up=has_up, notes=notes)


def _in_time_order(out: pd.DataFrame, metrics: list[str], raw_ts: pd.Series, path: str) -> tuple[pd.DataFrame, list[str]]:
    """Rows sorted by time (stable: an endpoint's rows keep their file order at one time) and one row per
    (timestamp, endpoint), each repair counted and located by the file line where it first applies."""
    notes: list[str] = []
    ts = out["ts"].to_numpy()
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        i = int(back[0]) + 1
        notes.append(f"{back.size} row(s) out of time order (first {path}:{_line(i)}: {raw_ts.iloc[i]} after "
                     f"{raw_ts.iloc[i - 1]}; a file written endpoint by endpoint?): sorted by timestamp")
        out = out.iloc[np.argsort(ts, kind="stable")]
    dup = out.duplicated(["ts", "endpoint"])
    if dup.any():
        i = int(out.index[dup.to_numpy()][0])
        notes.append(f"{int(dup.sum())} row(s) repeat an earlier timestamp of their endpoint (first {path}:{_line(i)}: "
                     f"{raw_ts.iloc[i]}, {out['endpoint'].loc[i]!r}): merged, metrics averaged, down if any row says down")
        agg = {m: "mean" for m in metrics} | {"up": "min"}
        out = out.groupby(["ts", "endpoint"], sort=False, as_index=False).agg(agg)
    return out, notes


def read_trace(path: str | Path) -> Trace:
    """Read and validate one trace CSV; raises TraceError (with file and line) on any problem."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{p}: no such file")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise TraceError(f"{p}: empty file (expected a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TraceError(f"{p}: not a readable CSV: {exc}") from None
    return from_frame(df, str(p))


def failure_starts(trace: Trace) -> dict[str, np.ndarray]:
    """Per endpoint, timestamps where ``up`` goes 1 -> 0 (a failure event starts)."""
    out: dict[str, np.ndarray] = {}
    f = trace.frame
    for ep, g in f.groupby("endpoint", sort=False):
        up = g["up"].to_numpy()
        idx = np.flatnonzero((up[:-1] == 1.0) & (up[1:] == 0.0)) + 1
        out[str(ep)] = g["ts"].to_numpy()[idx]
    return out
