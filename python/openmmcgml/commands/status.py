"""``cgml status``."""

import json


def register(subparsers):
    status = subparsers.add_parser("status", help="print which platforms have the plugin's kernels and any load failures")
    status.set_defaults(func=run)


def run(args):
    from .. import plugin_status

    print(json.dumps(plugin_status(), indent=2))
    return 0
