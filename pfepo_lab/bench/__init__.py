"""Benchmarks behind ``pfepo bench NAME``: one module each with ``register(subparsers)``."""
