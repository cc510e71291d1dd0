"""``pfepo bench NAME``: benchmarks (each module in pfepo/bench registers one)."""

from __future__ import annotations

import importlib
import pkgutil

import pfepo.bench


def register(sub) -> None:
    p = sub.add_parser("bench", help="run a benchmark (numbers reported with the command that made them)")
    bsub = p.add_subparsers(dest="bench", metavar="NAME")
    for mod in sorted(pkgutil.iter_modules(pfepo.bench.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):  # helpers, not commands
            continue
        importlib.import_module(f"pfepo.bench.{mod.name}").register(bsub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
