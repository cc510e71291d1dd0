"""Secrets out of every API answer: URL credentials (``http://user:pass@host``) and secret-named keys."""

from __future__ import annotations

import re
from typing import Any

_URL_CREDS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_SECRET_KEY = re.compile(r"(?i)(token|password|passwd|secret|authorization|api[_-]?key|cookie|credential)")
MASK = "***"


def redact_url(s: str) -> str:
    """``https://admin:secret@h/x`` -> ``https://***@h/x``; other text unchanged."""
    return _URL_CREDS.sub(lambda m: m.group(1) + MASK + "@", s) if "@" in s else s


def redact(obj: Any, _depth: int = 0) -> Any:
    """A copy of ``obj`` with credentials masked (dicts, lists and strings; other values as they are)."""
    if _depth > 64:
        return obj
    if isinstance(obj, str):
        return redact_url(obj)
    if isinstance(obj, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) and isinstance(v, str) and v
                    else redact(v, _depth + 1)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v, _depth + 1) for v in obj]
    return obj
