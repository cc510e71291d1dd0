"""Tiny HTML building: every dynamic value goes through ``h`` (escaped) unless it is ``Safe``.

Plain string templates instead of a template engine: the pages are a few hundred lines, FastAPI does not
bring Jinja2, and a missed escape is easy to spot because markup must be wrapped in ``Safe`` explicitly.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from pfepo import __version__


class Safe(str):
    """Markup that is already escaped (built by these helpers). Safe + Safe stays Safe; anything else added
    gives a plain str, which ``h`` escapes (a forgotten wrap shows as visible tags, never as live markup)."""

    def __add__(self, other: object):
        if isinstance(other, Safe):
            return Safe(str.__add__(self, other))
        return str.__add__(self, other)  # type: ignore[operator]

    def __radd__(self, other: object):
        return NotImplemented


def h(v: object) -> Safe:
    if isinstance(v, Safe):
        return v
    return Safe(html.escape("" if v is None else str(v), quote=True))


def join(parts: Iterable[object]) -> Safe:
    return Safe("".join(h(p) for p in parts))


def tag(name: str, body: object = "", **attrs: object) -> Safe:
    """``tag("a", "x", href="/y", class_="b")``; True -> bare attribute, None/False -> left out."""
    out = []
    for k, v in attrs.items():
        if v is None or v is False:
            continue
        k = k.rstrip("_").replace("_", "-")
        out.append(f" {k}" if v is True else f' {k}="{h(v)}"')
    return Safe(f"<{name}{''.join(out)}>{h(body)}</{name}>")


def pct(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


NAV = (("overview", "Overview"), ("timeline", "Timeline"), ("whatif", "What-if"), ("operations", "Operations"))


def page(title: str, active: str, body: Safe, *, who: str = "", role: str = "", csrf: str = "",
         live: str | None = None) -> str:
    """The full document: skip link, navigation with aria-current, main landmark, logout form."""
    nav = join(tag("li", tag("a", label, href=f"/ui/{key}",
                              aria_current="page" if key == active else None)) for key, label in NAV)
    logout = Safe("")
    if who:
        logout = Safe(f'<form method="post" action="/ui/logout" class="logout">'
                      f'<input type="hidden" name="csrf" value="{h(csrf)}">'
                      f'<span>{h(who)} ({h(role)})</span> <button type="submit">Log out</button></form>')
    live_attr = Safe(f' data-live="{h(live)}"') if live else Safe("")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="csrf-token" content="{h(csrf)}"><link rel="icon" href="data:,">'
            f"<title>{h(title)} - PF-EPO</title>"
            f'<link rel="stylesheet" href="/ui/static/console.css">'
            f'<script src="/ui/static/vendor/htmx.min.js" defer></script>'
            f'<script src="/ui/static/console.js" defer></script></head><body>'
            f'<a class="skip" href="#main">Skip to content</a>'
            f'<header><span class="brand">PF-EPO {h(__version__)}</span>'
            f'<nav aria-label="Console"><ul>{nav}</ul></nav>{logout}</header>'
            f'<main id="main" tabindex="-1"{live_attr}><h1>{h(title)}</h1>{body}</main>'
            f'<div id="flash" role="status" aria-live="polite"></div></body></html>')


def table(head: Iterable[object], rows: Iterable[Iterable[object]], caption: str | None = None,
          cls: str | None = None) -> Safe:
    th = join(tag("th", c, scope="col") for c in head)
    body = join(Safe("<tr>" + join(tag("td", c) for c in r) + "</tr>") for r in rows)
    cap = tag("caption", caption) if caption else Safe("")
    return Safe(f'<table{f" class={chr(34)}{h(cls)}{chr(34)}" if cls else ""}>{cap}'
                f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")


def status(ok: bool, yes: str = "up", no: str = "down") -> Safe:
    """State as a word and a symbol, colour only as a third cue."""
    return Safe(f'<span class="st {"ok" if ok else "bad"}">{"&#10003;" if ok else "&#10007;"} '
                f"{h(yes if ok else no)}</span>")
