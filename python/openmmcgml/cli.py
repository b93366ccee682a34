"""The ``cgml`` command line."""

import argparse
import json
import sys


def _demo(args):
    from .demo import run_platform_demo

    run_platform_demo(
        n_beads=args.beads,
        n_replicas=args.replicas,
        n_steps=args.steps,
        platforms=args.platforms,
        seed=args.seed,
    )
    return 0


def _status(args):
    from . import plugin_status

    print(json.dumps(plugin_status(), indent=2))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="cgml", description="Learned coarse-grained potentials as native OpenMM forces.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="run a CG chain with a CGSchNet force on every available platform",
        description="Build a coarse-grained chain (harmonic bonds + a randomly initialised CGSchNet), "
        "check that every platform gives the Reference energy, run Langevin dynamics and print steps/s.",
    )
    demo.add_argument("--beads", type=int, default=10, help="beads per chain (default 10)")
    demo.add_argument("--replicas", type=int, default=1, help="chains in one Context, as separate molecules (default 1)")
    demo.add_argument("--steps", type=int, default=1000, help="steps per platform (default 1000)")
    demo.add_argument("--platforms", nargs="*", default=None, help="platforms to run (default: every one with the plugin's kernels)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    status = commands.add_parser("status", help="print which platforms have the plugin's kernels and any load failures")
    status.set_defaults(func=_status)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
