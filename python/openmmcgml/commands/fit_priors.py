"""``cgml fit-priors``: fit prior terms to a CG-mapped dataset by Boltzmann inversion
(settings and run: :mod:`openmmcgml.configs.fit_priors`)."""


def register(subparsers):
    from .._config import add_config_arguments, config_command

    parser = subparsers.add_parser(
        "fit-priors",
        help="fit bond/angle/dihedral/repulsion priors to a CG dataset by Boltzmann inversion",
        description="Read a coarse-grained HDF5 dataset, fit the prior terms of the config by Boltzmann "
        "inversion (Jacobians divided out) and write them as JSON for `cgml train` (the effective settings: "
        "OUTPUT.config.yaml).",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=config_command("fit-priors", "openmmcgml.configs.fit_priors", "FitPriorsConfig"))
