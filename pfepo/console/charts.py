"""Inline SVG charts, rendered on the server: no chart library, nothing to download, no layout script.

Every chart carries its meaning in text as well as colour (region names and numbers next to the bar,
threshold labels, step markers that are links), and has a role="img" with an aria-label summary.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping, Sequence

from pfepo.console.html import Safe, h

PALETTE = ("#1f77b4", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#525252")
DASH = ("", "6 3", "2 2", "8 2 2 2", "1 3", "10 4", "4 4", "3 1")  # line style per series, not only colour


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def stacked_bar(shares: Mapping[str, float], regions: Sequence[str], label: str, width: int = 240,
                height: int = 16) -> Safe:
    """One horizontal bar of shares (summing to ~1) in region order, with the numbers as text."""
    x = 0.0
    rects = []
    words = []
    for i, r in enumerate(regions):
        s = max(0.0, float(shares.get(r, 0.0)))
        w = s * width
        if w > 0:
            rects.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{colour(i)}">'
                         f"<title>{h(r)} {100 * s:.0f}%</title></rect>")
        x += w
        words.append(f"{h(r)}&nbsp;{100 * s:.0f}")
    summary = ", ".join(f"{r} {100 * max(0.0, float(shares.get(r, 0.0))):.0f}%" for r in regions)
    svg = (f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{h(label)}: {h(summary)}"><rect width="{width}" height="{height}" fill="#eee"/>'
           f'{"".join(rects)}</svg>')
    return Safe(f'{svg} <span class="nums">{" &middot; ".join(words)}</span>')


def legend(regions: Sequence[str]) -> Safe:
    return Safe('<ul class="legend">' + "".join(
        f'<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="{colour(i)}"/></svg> '
        f"{h(r)}</li>" for i, r in enumerate(regions)) + "</ul>")


def _fmt_t(ts: float) -> str:
    return _time.strftime("%H:%M:%S", _time.gmtime(ts))


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, t0: float, t1: float,
               thresholds: Sequence[tuple[float, str]] = (), band: Sequence[tuple[float, float, float]] = (),
               markers: Sequence[tuple[float, str, str]] = (), step: bool = False, width: int = 720,
               height: int = 180, unit: str = "") -> Safe:
    """Lines (or steps) over [t0, t1]; dashed threshold lines with labels; a shaded band of
    (t, lo, hi); markers (t, label, href) as vertical links. Y from 0 to the largest value shown."""
    pad_l, pad_r, pad_t, pad_b = 48, 10, 10, 22
    iw, ih = width - pad_l - pad_r, height - pad_t - pad_b
    values = [v for pts in series.values() for _, v in pts]
    values += [t for t, _ in thresholds] + [v for _, lo, hi in band for v in (lo, hi)]
    vmax = max(values) if values else 1.0
    vmax = vmax * 1.1 if vmax > 0 else 1.0
    span = max(t1 - t0, 1e-9)

    def X(t: float) -> float:
        return pad_l + (min(max(t, t0), t1) - t0) / span * iw

    def Y(v: float) -> float:
        return pad_t + ih - max(0.0, min(v, vmax)) / vmax * ih

    parts = [f'<rect x="{pad_l}" y="{pad_t}" width="{iw}" height="{ih}" fill="#fafafa" stroke="#999"/>',
             f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{vmax:.3g}</text>',
             f'<text x="{pad_l - 4}" y="{pad_t + ih}" text-anchor="end">0</text>',
             f'<text x="{pad_l}" y="{height - 6}">{_fmt_t(t0)}</text>',
             f'<text x="{pad_l + iw}" y="{height - 6}" text-anchor="end">{_fmt_t(t1)} UTC</text>']
    if band:
        top = " ".join(f"{X(t):.1f},{Y(hi):.1f}" for t, _, hi in band)
        bottom = " ".join(f"{X(t):.1f},{Y(lo):.1f}" for t, lo, _ in reversed(band))
        parts.append(f'<polygon points="{top} {bottom}" fill="#9ecae1" fill-opacity="0.5" stroke="#3182bd" '
                     f'stroke-dasharray="3 2"><title>forecast band</title></polygon>')
    for v, lab in thresholds:
        y = Y(v)
        parts.append(f'<line x1="{pad_l}" x2="{pad_l + iw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#b00" '
                     f'stroke-dasharray="6 4"/><text x="{pad_l + iw - 2}" y="{y - 3:.1f}" text-anchor="end" '
                     f'class="thr">{h(lab)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        coords = []
        prev_y = None
        for t, v in pts:
            x, y = X(t), Y(v)
            if step and prev_y is not None:
                coords.append(f"{x:.1f},{prev_y:.1f}")
            coords.append(f"{x:.1f},{y:.1f}")
            prev_y = y
        dash = f' stroke-dasharray="{DASH[i % len(DASH)]}"' if DASH[i % len(DASH)] else ""
        parts.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{colour(i)}" stroke-width="2"'
                     f"{dash}><title>{h(name)}</title></polyline>")
        lx, ly = X(pts[-1][0]), Y(pts[-1][1])
        parts.append(f'<text x="{min(lx + 2, pad_l + iw - 30):.1f}" y="{ly - 3:.1f}">{h(name)}</text>')
    for t, lab, href in markers:
        x = X(t)
        parts.append(f'<a href="{h(href)}" aria-label="{h(lab)}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{pad_t}" '
                     f'y2="{pad_t + ih}" stroke="#333" stroke-width="1.5"/><circle cx="{x:.1f}" cy="{pad_t + 5}" '
                     f'r="5" fill="#333"><title>{h(lab)}</title></circle></a>')
    names = ", ".join(series)
    return Safe(f'<figure><svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                f'role="img" aria-label="{h(title)}: {h(names)}{h(unit)}">{"".join(parts)}</svg>'
                f"<figcaption>{h(title)}</figcaption></figure>")
