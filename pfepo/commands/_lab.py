"""The lab commands (``bench``, ``impair``, ``demo``) run code of the ``pfepo_lab`` package, which needs
Mininet and matplotlib: the optional ``lab`` extra. The controller itself never imports them, so
``pip install pfepo`` stays a controller; these commands then say what to install instead of a traceback.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable

LAB_HINT = "the lab commands need `pip install 'pfepo[lab]'`"
_LAB_MODULES = frozenset({"pfepo_lab", "mininet", "matplotlib"})


def is_lab_module(name: str | None) -> bool:
    """True when ``name`` (a ModuleNotFoundError's) is one the ``lab`` extra provides."""
    return (name or "").split(".")[0] in _LAB_MODULES


def missing_lab_module() -> str | None:
    """The first module of the ``lab`` extra that cannot be imported, or None when all can."""
    for name in sorted(_LAB_MODULES):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def lab_command(command: str) -> Callable:
    """Wrap a command's ``func``: checked up front (before a lab is half built) and on any late import,
    a lab module missing -> one line on stderr and exit status 2."""

    def wrap(func: Callable) -> Callable:
        @functools.wraps(func)
        def run(args) -> int:
            missing = missing_lab_module()
            try:
                if missing is None:
                    return func(args)
            except ModuleNotFoundError as exc:
                if not is_lab_module(exc.name):
                    raise
                missing = exc.name
            print(f"pfepo {command}: {LAB_HINT} (no module named {missing!r})", file=sys.stderr)
            return 2

        return run

    return wrap
