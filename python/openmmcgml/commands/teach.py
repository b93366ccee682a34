"""``cgml teach``: discriminator-guided bias rounds on a trained CG model (settings and run:
:mod:`openmmcgml.configs.teach`)."""


def register(subparsers):
    from .._config import add_config_arguments, config_command

    parser = subparsers.add_parser(
        "teach",
        help="correct a CG model's equilibrium with rounds of discriminator-guided bias",
        description="Rounds of: simulate the model with its bias, train a discriminator between CG and reference "
        "frames, add its logit to the bias; until the held-out accuracy is within 2 standard errors of 0.5 or "
        "after the last round.  Writes the model with the bias (a CGModel that cgml simulate runs as it is), a "
        "biased model and a table per round; rerunning the command resumes after the last finished round.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=config_command("teach", "openmmcgml.configs.teach", "TeachConfig"))
