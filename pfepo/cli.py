"""The ``pfepo`` command. Each subcommand lives in ``pfepo/commands/<name>.py`` and exposes
``register(subparsers)``, so features add commands without editing this file."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import pfepo.commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pfepo",
        description="PF-EPO: Predictive Failover & Endpoint Policy Orchestrator (os-ken SDN controller).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(pfepo.commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):  # helpers, not commands
            continue
        importlib.import_module(f"pfepo.commands.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
