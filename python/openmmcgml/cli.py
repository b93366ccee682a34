"""The ``cgml`` command line.

Each subcommand lives in a module of :mod:`openmmcgml.commands` that defines
``register(subparsers)``; the module adds its parser and sets ``func`` to a function taking the
parsed arguments and returning an exit code.
"""

import argparse
import importlib
import pkgutil
import sys

from . import commands


def build_parser():
    parser = argparse.ArgumentParser(prog="cgml", description="Learned coarse-grained potentials as native OpenMM forces.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
