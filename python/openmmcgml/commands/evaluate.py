"""``cgml evaluate``: compare CG samples with the mapped all-atom reference; metrics and plots
(settings and run: :mod:`openmmcgml.configs.evaluate`)."""


def register(subparsers):
    from .._config import add_config_arguments, config_command

    parser = subparsers.add_parser(
        "evaluate",
        help="score CG samples against the mapped all-atom reference (TICA W1, JS distances, plots)",
        description="TICA on all pairwise CG distances fitted on the reference, W1 in the TIC0/TIC1 plane "
        "(seed-paper recipe), JS distances of bond, angle, dihedral and TIC histograms, radius of gyration, "
        "alanine phi/psi free energies or Q and RMSD of CA chains; writes metrics.json, PNG plots and the "
        "effective settings (config.yaml) to the output folder.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=config_command("evaluate", "openmmcgml.configs.evaluate", "EvaluateConfig"))
