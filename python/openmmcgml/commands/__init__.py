"""Subcommands of ``cgml``: one module each, with ``register(subparsers)``."""
