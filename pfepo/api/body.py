"""Strict JSON for request bodies: what Python's json module accepts but an API must not.

Refused, each with a reason for a 400: duplicate keys (which one wins differs between parsers),
NaN/Infinity, numbers that overflow a float (1e400) or integers of more than ``MAX_INT_DIGITS``
digits (10^400 would cost quadratic time and cannot be a weight), nesting deeper than ``max_depth``
(5000-deep arrays overflow the recursion limit) and more than ``max_keys`` keys in total.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_INT_DIGITS = 30


class BodyError(ValueError):
    """The body is not acceptable JSON; the message says why (never echoes the body)."""


def parse_json(raw: bytes, *, max_depth: int = 32, max_keys: int = 100_000) -> Any:
    keys = 0

    def pairs(items: list[tuple[str, Any]]) -> dict:
        nonlocal keys
        keys += len(items)
        if keys > max_keys:
            raise BodyError(f"more than {max_keys} keys")
        out: dict = {}
        for k, v in items:
            if k in out:
                raise BodyError(f"duplicate key {_short(k)}")
            out[k] = v
        return out

    def constant(name: str) -> Any:
        raise BodyError(f"{name} is not valid JSON")

    def integer(s: str) -> int:
        if len(s.lstrip("-")) > MAX_INT_DIGITS:
            raise BodyError(f"integer with more than {MAX_INT_DIGITS} digits")
        return int(s)

    def real(s: str) -> float:
        if len(s) > 64:
            raise BodyError("number literal too long")
        v = float(s)
        if not math.isfinite(v):
            raise BodyError(f"number out of range: {_short(s)}")
        return v

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_int=integer,
                          parse_float=real)
    except RecursionError:
        raise BodyError(f"nesting deeper than {max_depth}") from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # BodyError from a hook, or int() refusing a huge literal
        raise BodyError(str(exc) if isinstance(exc, BodyError) else "number out of range") from None
    _walk(data, max_depth)
    return data


def _walk(data: Any, max_depth: int) -> None:
    """Depth and string checks without recursion: JSON escapes can encode lone surrogates (\\ud800),
    which are not Unicode text and would fail later wherever the string is encoded."""
    stack = [(data, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict | list):
            if d > max_depth:
                raise BodyError(f"nesting deeper than {max_depth}")
            if isinstance(node, dict):
                for k, v in node.items():
                    _text(k)
                    stack.append((v, d + 1))
            else:
                stack.extend((v, d + 1) for v in node)
        elif isinstance(node, str):
            _text(node)


def _text(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyError("string with a lone surrogate (not Unicode text)") from None


def _short(s: str, n: int = 40) -> str:
    return repr(s if len(s) <= n else s[:n] + "...")
