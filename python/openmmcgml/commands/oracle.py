"""``cgml oracle``: all-atom OpenMM runs that save coordinates and forces (resumable)."""

_EPILOG = """\
examples:
  cgml oracle examples/configs/oracle-alanine.yaml
  cgml oracle examples/configs/oracle-chignolin.yaml --set n_steps=5000 --set output=cln.h5
  cgml oracle --set system=alanine-dipeptide --set output=aa.h5 --set n_steps=1000
  cgml oracle --resume-from aa.h5.chk --set platform=CPU

Running the same command again continues from the checkpoint (also on another machine: copy
the output files and the checkpoint).  Settings: see openmmcgml.data.OracleConfig.
"""


def _rules():
    from .._config import boolean, integer, number, openmm_platform, text

    # the settings are those of openmmcgml.data.OracleConfig (its defaults); it checks how they fit together
    return {
        "system": text(), "sequence": text(), "pdb": text(), "name": text(), "output": text(), "cg_output": text(),
        "temperature": number(above=0, optional=True), "timestep": number(above=0), "friction": number(above=0),
        "hydrogen_mass": number(above=0, optional=True), "ph": number(0, maximum=14), "add_missing_atoms": boolean(),
        "n_steps": integer(1), "save_every": integer(1), "equilibration_steps": integer(0), "n_runs": integer(1),
        "seed": integer(optional=True), "minimize": boolean(), "platform": openmm_platform(),
        "threads": integer(1, optional=True), "flush_every": integer(1), "checkpoint": text(),
        "coordinate_decimals": integer(0, optional=True), "force_decimals": integer(optional=True),
    }


#: The type and range of the oracle settings (checked when the config is read; see openmmcgml._config).
RULES = _rules()


def register(subparsers):
    import argparse

    from .._config import add_config_arguments

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
    parser.set_defaults(func=run)


def run(args):
    """Run the command; bad settings or files end with a one-line error and exit status 2."""
    from .._config import run_command

    return run_command("oracle", _run, args)


def _run(args):
    import logging

    from .._config import apply_overrides, check_settings, format_config, load_config
    from ..data.oracle import OracleConfig, resume_oracle, run_oracle

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    progress = not args.quiet
    if args.resume_from:
        if args.config:
            raise ValueError("give either a config or --resume-from, not both")
        if args.print_config:
            from ..data import read_checkpoint

            stored = apply_overrides(read_checkpoint(args.resume_from).info["config"], args.overrides)
            print(format_config(check_settings(stored, RULES, "oracle")))
            return 0
        changes = check_settings(apply_overrides({}, args.overrides), RULES, "oracle")
        result = resume_oracle(args.resume_from, progress=progress, **changes)
    else:
        config = OracleConfig.from_dict(load_config(args.config, args.overrides, what="oracle", rules=RULES))
        if args.print_config:
            print(format_config(config.resolved().to_dict()))
            return 0
        result = run_oracle(config, resume=not args.no_resume, overwrite=args.overwrite, progress=progress)
    print(result.summary())
    return 0
