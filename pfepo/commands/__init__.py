"""Subcommands of ``pfepo``: one module each, with ``register(subparsers)`` setting ``func``."""
