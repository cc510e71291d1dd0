"""``pfepo predict --input CSV --output CSV``: causal, event-like risk for any univariate series.

Writes ``timestamp,value,risk`` (one row per input row, input order) with risk in [0, 1]; the risk at a
row uses rows at or before its time only. Real exports are read as they come: repeated timestamps are
averaged, unsorted rows sorted, gaps and missing values tolerated, each repair reported. See
docs/prediction.md ("risk") and pfepo.predict.core for the method (the daemon runs the same core).
"""

from __future__ import annotations

import sys
import time


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="score a univariate series causally: timestamp,value,risk",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--input", required=True, metavar="CSV", help="CSV: a header row (or none: a two-column file of time,value), comment"
                   " lines (#) before it skipped; delimiter , ; tab | or spaces")
    p.add_argument("--output", required=True, metavar="CSV", help="where to write timestamp,value,risk")
    p.add_argument("--time-column", default="timestamp", help="time column: epoch s/ms/us/ns, ISO-8601 or another common"
                   " date layout (default timestamp; if absent, the one column named like a time, or in a two-column file the"
                   " column whose cells are times, with a warning)")
    p.add_argument("--value-column", default="value", help="value column (default value; if absent from a two-column"
                   " file, the other column, with a warning); digit grouping, decimal commas and one unit"
                   " after every value (51.7%%, 12 ms) are read")
    p.add_argument("--horizon", type=int, default=30, help="trend look-ahead in rows (default 30, at most 1000000)")
    p.add_argument("--baseline", type=int, default=300, help="rows behind the slow baseline (default 300)")
    p.set_defaults(func=run)


def _err(msg: str) -> int:
    print(f"pfepo predict: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from pfepo.predict.univariate import MAX_HORIZON_ROWS, SeriesError, read_series, score, scoring_scale

    if not (1 <= args.horizon <= MAX_HORIZON_ROWS):
        return _err(f"--horizon must be between 1 and {MAX_HORIZON_ROWS} rows, got {args.horizon}")
    if not (10 <= args.baseline <= MAX_HORIZON_ROWS):
        return _err(f"--baseline must be between 10 and {MAX_HORIZON_ROWS} rows, got {args.baseline}")
    t0 = time.perf_counter()
    try:
        s = read_series(args.input, args.time_column, args.value_column)
    except SeriesError as exc:
        return _err(str(exc))
    risk = score(s, horizon=args.horizon, baseline=args.baseline)
    out = pd.DataFrame({"timestamp": s.raw_time, "value": s.raw_value, "risk": np.round(risk, 4)})
    try:
        out.to_csv(args.output, index=False)
    except OSError as exc:
        return _err(f"cannot write {args.output}: {exc}")
    for note in s.notes:
        print(f"pfepo predict: warning: {args.input}: {note}", file=sys.stderr)
    missing = int((~np.isfinite(s.y)).sum())
    extra = f"; {missing} time(s) without a value (risk carried)" if missing else ""
    scale = scoring_scale(s)
    if scale != "values":  # chosen on the first day's rows (docs/prediction.md): say so, it changes the units
        extra += f"; scored on the {scale} after the first day ({_WHY[scale]})"
    el = time.perf_counter() - t0
    print(f"scored {len(out)} rows -> {args.output} (max risk {risk.max():.3f}; {len(out) / max(el, 1e-9):,.0f} rows/s){extra}")
    print(_alarm_summary(s, risk))
    return 0


_WHY = {"logarithm": "its moves grow with its level", "square root": "event counts"}


def _alarm_summary(s, risk) -> str:
    """One line an operator reads first: how many distinct times reached the core's alarm level, and the
    first and last of them as written in the input (risk is event-like: an episode is one or two rows)."""
    import numpy as np

    from pfepo.predict.core import CoreParams

    alarm = CoreParams(dt=1.0).alarm
    hot = np.zeros(s.t.size, dtype=bool)
    hot[s.row_step[risk >= alarm]] = True
    steps = np.flatnonzero(hot)
    if steps.size == 0:
        return f"alarms: none (risk < {alarm:g} throughout)"
    when = [str(s.raw_time[np.flatnonzero(s.row_step == k)[0]]).strip() for k in (steps[0], steps[-1])]
    return f"alarms: {steps.size} time(s) with risk >= {alarm:g}, first at {when[0]}, last at {when[1]}"
