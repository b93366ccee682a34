"""``cgml demo``."""


def register(subparsers):
    demo = subparsers.add_parser(
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
    demo.set_defaults(func=run)


def run(args):
    from ..demo import run_platform_demo

    run_platform_demo(n_beads=args.beads, n_replicas=args.replicas, n_steps=args.steps, platforms=args.platforms, seed=args.seed)
    return 0
