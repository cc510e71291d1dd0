"""Line protocol: samples and events to the bytes InfluxDB-compatible servers ingest (pure, no I/O).

Schema (docs/history-store.md): measurement ``pfepo_metric``, tags ``subject`` + Sample.tags
(endpoint, region, service, switch, port), one float field named after the metric, ns timestamps;
events (decisions, weight changes) in ``pfepo_event`` with tag ``kind``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pfepo.telemetry.samples import Sample

MEASUREMENT = "pfepo_metric"
EVENTS = "pfepo_event"

# Backslashes in names become "/": influxd 1.6 stores an escaped one doubled and refuses a line whose tag
# ends in one (measured); line-protocol versions differ here. Names never need them (config names, s1:3).
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " ", "\r": " ", "\\": "/"})
_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": " ", "\r": " ", "\\": "/"})


def _key(s: str) -> str:
    return s.translate(_KEY_ESC)


def _str_field(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_ns(ts: float) -> int:
    """Seconds (float) to integer nanoseconds; a float second carries ~0.25 us around 2026."""
    return round(ts * 1e9)


class LineEncoder:
    """Samples to line protocol, one line per sample, with the tag part cached per series."""

    def __init__(self, measurement: str = MEASUREMENT, cache_max: int = 100_000):
        self.measurement = measurement.translate(_MEAS_ESC)
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._fields: dict[str, str] = {}
        self._cache_max = cache_max

    def series(self, subject: str, tags: tuple[tuple[str, str], ...]) -> str:
        key = (subject, tags)
        s = self._series.get(key)
        if s is None:
            pairs = {k: v for k, v in tags if k != "subject" and v != ""}
            pairs["subject"] = subject
            s = self.measurement + "".join(
                f",{_key(k)}={_key(str(v))}" for k, v in sorted(pairs.items()) if v
            )
            if len(self._series) >= self._cache_max:
                self._series.clear()
            self._series[key] = s
        return s

    def field(self, metric: str) -> str:
        f = self._fields.get(metric)
        if f is None:
            f = self._fields[metric] = _key(metric) + "="
        return f

    def encode(self, samples: Sequence[Sample]) -> tuple[bytes, int, int]:
        """(payload, lines, invalid): NaN/inf values have no line-protocol form and are skipped."""
        out = []
        invalid = 0
        for s in samples:
            v = float(s.value)
            if not math.isfinite(v):
                invalid += 1
                continue
            out.append(f"{self.series(s.subject, s.tags)} {self.field(s.metric)}{v!r} {round(s.ts * 1e9)}")
        return "\n".join(out).encode(), len(out), invalid


def encode_event(kind: str, ts: float, tags: Mapping[str, str], fields: Mapping[str, object]) -> str:
    """One ``pfepo_event`` line; numbers become floats so later events never conflict in type."""
    tagp = "".join(f",{_key(k)}={_key(str(v))}" for k, v in sorted({**tags, "kind": kind}.items()) if str(v))
    parts = []
    for k, v in sorted(fields.items()):
        if isinstance(v, bool):
            parts.append(f"{_key(k)}={'true' if v else 'false'}")
        elif isinstance(v, int | float):
            if math.isfinite(float(v)):
                parts.append(f"{_key(k)}={float(v)!r}")
        else:
            parts.append(f"{_key(k)}={_str_field(str(v))}")
    if not parts:
        parts.append("value=1.0")
    return f"{EVENTS}{tagp} {','.join(parts)} {to_ns(ts)}"
