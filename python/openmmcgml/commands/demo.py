"""``cgml demo``: the whole workflow on alanine dipeptide, from all-atom MD to a scored CG model."""

_EPILOG = """\
stages (each skipped when its output is complete; an interrupted demo continues where it stopped):
  oracle      two independent all-atom sets (training, reference) of alanine dipeptide at 300 K
  map         both to the 5 backbone beads C N CA C N
  fit-priors  bonds and angles only (no torsion prior: the phi/psi landscape is learned)
  train       force matching of a CGSchNet on the training set
  simulate    CG replicas of the trained model and of the priors alone
  evaluate    both against the reference set, and the noise floor (training set vs reference set)
  summary     the table of metrics (also in OUTPUT/summary.md and summary.json)

settings: the sections oracle, map, fit_priors, train, simulate, evaluate (each the settings of that
command less its file names) and force_test_frames; openmmcgml.workflow.DEFAULTS over the commands'
defaults (--print-config shows them all; the demo writes them to OUTPUT/config.yaml), from a YAML file
or --set, e.g.
  cgml demo --set oracle.n_steps=2000000 --set simulate.replicas=40 --output long-demo

examples:
  cgml demo                      # 5 minutes on 2 cores (README), into ./cgml-demo
  cgml demo --quick -o /tmp/d    # tiny settings: the whole chain in well under a minute
  cgml demo --fresh train        # redo the training and everything after it
"""


def register(subparsers):
    import argparse

    from .._config import add_config_arguments, config_command

    parser = subparsers.add_parser(
        "demo",
        help="the whole workflow on alanine dipeptide: AA oracle -> CG map -> priors -> training -> CG simulation "
        "-> evaluation against the AA reference (5 minutes on 2 CPU cores)",
        description="Run every stage of the workflow on alanine dipeptide with small built-in settings and print a "
        "table of metrics (phi/psi JS distances, TICA W1, ...) for the trained model, for the priors alone, and "
        "for two independent all-atom sets (the noise floor). Resumable; see openmmcgml.workflow.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument("-o", "--output", default="cgml-demo", help="output folder (default ./cgml-demo)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds per stage; for tests)")
    parser.add_argument("--fresh", nargs="?", const="all", default=None, metavar="STAGE",
                        help="start over: delete the demo's files in the output folder (or, with a stage name, "
                        "redo that stage and the ones after it)")
    parser.set_defaults(func=config_command("demo", "openmmcgml.workflow", load=_load, run=_run))


def _load(args, settings):
    """The demo's settings: a YAML file and --set over the defaults (--quick: the tiny ones)."""
    from .._config import load_config

    return settings.demo_config(load_config(args.config) if args.config else {}, quick=args.quick,
                                overrides=args.overrides)


def _run(config, args, settings):
    fresh = args.fresh
    if fresh is not None and fresh != "all" and fresh not in settings.STAGES:
        raise ValueError(f"--fresh takes no stage or one of {', '.join(settings.STAGES)} (got {fresh!r})")
    settings.run_alanine_demo(args.output, config, fresh=fresh or False, progress=not args.quiet)
    return 0
