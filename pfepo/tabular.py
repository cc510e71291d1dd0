"""What both CSV readers share (``pfepo predict``'s one series, ``pfepo evaluate``'s traces): the file line
of a data row for located errors, the cells read as missing, and numeric times in epoch units told by size."""

from __future__ import annotations

import numpy as np

MAX_ABS_TIME_S = 1e11  # about year 5100: a larger epoch "second" is a milli-, micro- or nanosecond
EPOCH_UNITS = ((1e3, "milliseconds"), (1e6, "microseconds"), (1e9, "nanoseconds"))
MISSING_TEXT = ("", "nan", "na", "n/a", "null", "none", "-")  # cells (any letter case) that mean "no value"


def data_line(i: int, first: int = 2) -> int:
    """The file line of data row ``i`` (``first``: the line of row 0; 2 below a header on line 1)."""
    return int(i) + first


def epoch_seconds(v: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Numeric times in seconds: where every finite one is beyond 1e11 s (about year 5100) they are epoch
    milli-, micro- or nanoseconds, told by their size; returns the seconds and the unit read (None: s)."""
    fin = np.isfinite(v)
    if fin.any() and np.all(np.abs(v[fin]) > MAX_ABS_TIME_S):
        for div, unit in EPOCH_UNITS:
            if np.all(np.abs(v[fin]) <= MAX_ABS_TIME_S * div):
                return v / div, unit
    return v, None
