"""``pfepo bench NAME``: benchmarks (each module in pfepo_lab/bench registers one).

The benchmarks live in the optional lab package, so this parser only collects the arguments and the
benchmark parser is built, from ``pfepo_lab.bench``, when the command runs.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from pfepo.commands._lab import lab_command


def register(sub) -> None:
    p = sub.add_parser("bench", add_help=False,
                       help="run a benchmark (numbers reported with the command that made them)")
    p.add_argument("-h", "--help", action="store_true", dest="bench_help", help=argparse.SUPPRESS)
    p.add_argument("bench_argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=_run)


def lab_parser() -> argparse.ArgumentParser:
    """``pfepo bench`` with one subcommand per module of ``pfepo_lab.bench`` (imports the lab package)."""
    import pfepo_lab.bench

    p = argparse.ArgumentParser(prog="pfepo bench",
                                description="run a benchmark (numbers reported with the command that made them)")
    bsub = p.add_subparsers(dest="bench", metavar="NAME")
    for mod in sorted(pkgutil.iter_modules(pfepo_lab.bench.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):  # helpers, not commands
            continue
        importlib.import_module(f"pfepo_lab.bench.{mod.name}").register(bsub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


@lab_command("bench")
def _run(args) -> int:
    parser = lab_parser()
    inner = parser.parse_args(["--help"] if args.bench_help else args.bench_argv)
    return int(inner.func(inner) or 0)
