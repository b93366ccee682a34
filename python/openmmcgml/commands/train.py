"""``cgml train``: force matching of a CGSchNet on a CG-mapped dataset, written as a CGModel file
(settings and run: :mod:`openmmcgml.configs.train`)."""


def register(subparsers):
    from .._config import add_config_arguments, config_command

    parser = subparsers.add_parser(
        "train",
        help="train a CGSchNet by force matching on a CG dataset and write a CGModel file",
        description="Subtract the prior forces from the mapped forces of a coarse-grained HDF5 dataset, fit a "
        "CGSchNet to the rest (MSE), splitting training and validation frames by trajectory, with checkpoints "
        "every epoch (rerunning the command resumes), and write the trained model with its priors, beads and "
        "mapping to one file (the effective settings: OUTPUT.config.yaml).",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=config_command("train", "openmmcgml.configs.train", "TrainConfig"))
