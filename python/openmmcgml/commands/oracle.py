"""``cgml oracle``: all-atom OpenMM runs that save coordinates and forces (resumable; settings and
run: :mod:`openmmcgml.configs.oracle`)."""

_EPILOG = """\
examples:
  cgml oracle examples/configs/oracle-alanine.yaml
  cgml oracle examples/configs/oracle-chignolin.yaml --set n_steps=5000 --set output=cln.h5
  cgml oracle --set system=alanine-dipeptide --set output=aa.h5 --set n_steps=1000
  cgml oracle --resume-from aa.h5.chk --set platform=CPU

Running the same command again continues from the checkpoint (also on another machine: copy
the output files and the checkpoint).  Settings: see openmmcgml.data.OracleConfig; the effective
ones are written to OUTPUT.config.yaml.
"""


def register(subparsers):
    import argparse

    from .._config import add_config_arguments, config_command

    parser = subparsers.add_parser(
        "oracle",
        help="run all-atom OpenMM MD of a peptide, saving coordinates and forces to HDF5 (resumable)",
        description="Build or read a peptide, add hydrogens, minimise and run Langevin dynamics in implicit solvent, "
        "saving positions, forces and energies every save_every steps (and, with cg_output, the mapped CG frames). "
        "An interrupted run continues from its checkpoint when the command is repeated.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument("--resume-from", metavar="CHECKPOINT", help="continue the run of a checkpoint file with its stored settings")
    parser.add_argument("--no-resume", action="store_true", help="fail instead of continuing when a checkpoint exists")
    parser.add_argument("--overwrite", action="store_true", help="replace output files that exist without a checkpoint")
    parser.set_defaults(func=config_command("oracle", "openmmcgml.configs.oracle", "OracleConfig", load=_load, run=_run))


def _load(args, settings):
    """The settings of a config and --set, or those a checkpoint stores (--resume-from) with --set."""
    import logging

    from .._config import load_config

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.resume_from:
        if args.config:
            raise ValueError("give either a config or --resume-from, not both")
        return settings.from_checkpoint(args.resume_from, args.overrides)
    config = load_config(args.config, args.overrides, settings.OracleConfig, "oracle")
    return config.resolved() if args.print_config else config


def _run(config, args, settings):
    settings.run_config(config, quiet=args.quiet, resume=not args.no_resume, overwrite=args.overwrite)
    return 0
