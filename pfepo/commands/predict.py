"""``pfepo predict --input CSV --output CSV``: causal risk for any univariate series, no labels needed.

Writes ``timestamp,value,risk`` with risk in [0, 1]; the risk at row t uses rows <= t only. See
pfepo.predict.univariate for the method ("abnormal and getting worse" against a trailing robust
baseline and an ARIMA forecast).
"""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="score a univariate series causally: timestamp,value,risk",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--input", required=True, metavar="CSV", help="CSV with a header row")
    p.add_argument("--output", required=True, metavar="CSV", help="where to write timestamp,value,risk")
    p.add_argument("--time-column", default="timestamp", help="time column: epoch seconds or ISO-8601 (default timestamp)")
    p.add_argument("--value-column", default="value", help="value column (default value)")
    p.add_argument("--horizon", type=int, default=30, help="forecast horizon in rows (default 30)")
    p.add_argument("--baseline", type=int, default=300, help="rows in the trailing baseline (default 300)")
    p.set_defaults(func=run)


def _err(msg: str) -> int:
    print(f"pfepo predict: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from pfepo.predict.univariate import score_series

    if args.horizon < 1 or args.baseline < 10:
        return _err("--horizon must be >= 1 and --baseline >= 10")
    src = Path(args.input)
    if not src.is_file():
        return _err(f"{src}: no such file")
    try:
        df = pd.read_csv(src, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        return _err(f"{src}: empty file (expected a header row)")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        return _err(f"{src}: not a readable CSV: {exc}")
    df.columns = [str(c).strip() for c in df.columns]
    for col in (args.time_column, args.value_column):
        if col not in df.columns:
            return _err(f"{src}:1: no column {col!r} (columns: {', '.join(df.columns)}); see --time-column/--value-column")
    if len(df) == 0:
        return _err(f"{src}: no data rows")
    raw_t = df[args.time_column].str.strip()
    num = pd.to_numeric(raw_t, errors="coerce")
    if num.notna().all():
        t = num.to_numpy(float)
    else:
        iso = pd.to_datetime(raw_t.where(num.isna()), errors="coerce", utc=True, format="ISO8601")
        bad = num.isna() & iso.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            return _err(f"{src}:{i + 2}: unparsable timestamp {raw_t.iloc[i]!r} (expected epoch seconds or ISO-8601)")
        secs = (iso - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        t = np.where(num.notna(), num, secs).astype(float)
    d = np.diff(t)
    if (d < 0).any():
        i = int(np.flatnonzero(d < 0)[0]) + 1
        return _err(f"{src}:{i + 2}: rows are not sorted by time ({raw_t.iloc[i]} after {raw_t.iloc[i - 1]})")
    if (d == 0).any():
        i = int(np.flatnonzero(d == 0)[0]) + 1
        return _err(f"{src}:{i + 2}: duplicate timestamp {raw_t.iloc[i]}")
    raw_v = df[args.value_column].str.strip()
    vals = pd.to_numeric(raw_v.replace("", "nan"), errors="coerce")
    bad = vals.isna() & ~raw_v.str.lower().isin(["", "nan", "na", "null", "none"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        return _err(f"{src}:{i + 2}: value {raw_v.iloc[i]!r} is not a number")
    v = vals.to_numpy(float)
    nonfinite = int((~np.isfinite(v)).sum())
    risk = score_series(v, horizon=args.horizon, baseline=args.baseline)
    out = pd.DataFrame({"timestamp": df[args.time_column].to_numpy(), "value": df[args.value_column].to_numpy(), "risk": np.round(risk, 4)})
    try:
        out.to_csv(args.output, index=False)
    except OSError as exc:
        return _err(f"cannot write {args.output}: {exc}")
    note = f"; {nonfinite} missing/non-finite value(s) skipped (risk carried)" if nonfinite else ""
    print(f"scored {len(out)} rows -> {args.output} (max risk {risk.max():.3f}){note}")
    return 0
