"""The ``cgml`` command line.

Each subcommand lives in a module of :mod:`openmmcgml.commands` that defines
``register(subparsers)``; the module adds its parser and sets ``func`` to a function taking the
parsed arguments and returning an exit code (for the config-driven ones,
:func:`openmmcgml._config.config_command` over the settings in :mod:`openmmcgml.configs`).  The
library never imports this module or the commands.  Errors print as one line (``cgml --debug`` or
``CGML_DEBUG=1``: with the traceback); see :func:`openmmcgml._config.run_command`.
"""

import argparse
import importlib
import pkgutil
import sys

from . import commands


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cgml", description="Learned coarse-grained potentials as native OpenMM forces.",
        epilog="A bad setting or file ends with one line on stderr and a non-zero exit status (2: bad input, 1: "
        "anything else); cgml --debug COMMAND ... or CGML_DEBUG=1 shows the full traceback instead.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full Python traceback of an error (also: environment variable CGML_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv=None):
    from ._config import run_command

    args = build_parser().parse_args(argv)
    # every command's errors as one line (the traceback with --debug)
    return run_command(args.command, args.func, args)


if __name__ == "__main__":
    sys.exit(main())
