"""``cgml platforms``: check every platform with the plugin's kernels against the Reference platform."""


def _positive_int(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a whole number >= 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expects a whole number >= 1, not {value}")
    return value


def register(subparsers):
    parser = subparsers.add_parser(
        "platforms",
        help="run a CG chain with a random CGSchNet force on every available platform (agreement and steps/s)",
        description="Build a coarse-grained chain (harmonic bonds + a randomly initialised CGSchNet), "
        "check that every platform gives the Reference energy, run Langevin dynamics and print steps/s.",
    )
    parser.add_argument("--beads", type=_positive_int, default=10, help="beads per chain (default 10)")
    parser.add_argument("--replicas", type=_positive_int, default=1, help="chains in one Context, as separate molecules (default 1)")
    parser.add_argument("--steps", type=_positive_int, default=1000, help="steps per platform (default 1000)")
    parser.add_argument("--platforms", nargs="*", default=None, help="platforms to run (default: every one with the plugin's kernels; the others are listed with the reason)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args):
    import sys

    from ..platforms import PlatformUnavailableError, run_platform_check

    try:
        run_platform_check(n_beads=args.beads, n_replicas=args.replicas, n_steps=args.steps, platforms=args.platforms,
                           seed=args.seed)
    except PlatformUnavailableError as error:
        print(f"cgml platforms: {error}", file=sys.stderr)
        return 2
    return 0
