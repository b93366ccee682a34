"""``cgml simulate``: run a trained CG model, many replicas in one OpenMM Context (settings and
run: :mod:`openmmcgml.configs.simulate`)."""


def register(subparsers):
    from .._config import add_config_arguments, config_command

    parser = subparsers.add_parser(
        "simulate",
        help="run Langevin dynamics of a trained CG model (replicas in one Context)",
        description="Build the CG System (bead masses, priors, learned CGSchNetForce) for N replicas, start them "
        "from reference frames or a given structure, and run Langevin dynamics, writing an HDF5 trajectory "
        "(docs/data-format.md), checkpoints and the effective settings (OUTPUT.config.yaml); rerunning the same "
        "command resumes from the checkpoint.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=config_command("simulate", "openmmcgml.configs.simulate", "SimulateConfig"))
