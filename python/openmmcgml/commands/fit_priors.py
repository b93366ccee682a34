"""``cgml fit-priors``: fit prior terms to a CG-mapped dataset by Boltzmann inversion."""

#: Every setting of a fit-priors config, with its default (examples/configs/fit-priors-alanine.yaml).
DEFAULTS = {
    "data": None,                    # CG HDF5 dataset (docs/data-format.md)
    "output": "priors.json",         # PriorSet as JSON
    "plot": None,                    # optional PNG: Boltzmann-inverted data vs fitted terms
    "temperature": None,             # K; None: the dataset's
    "terms": ["bonds", "angles", "repulsion"],
    "bonds": None,                   # list of bead pairs; None: consecutive beads of a chain
    "stride": 1,                     # use every stride-th frame
    "n_bins": 100,
    "dihedral_order": 3,
    "repulsion_min_separation": 3,   # bonds between repulsion pairs (3: no 1-2 or 1-3 pairs)
    "repulsion_epsilon": None,       # kJ/mol; None: kT
    "repulsion_sigma_scale": 1.0,    # sigma = scale x smallest observed distance of the pair
    "pool_by_type": False,           # terms with the same bead types share one fit
}


def _rules():
    from .._config import Rule, boolean, integer, number, text

    def bead_pairs(value):
        if isinstance(value, str) or not all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in value):
            raise ValueError("not pairs")
        return value

    def term_names(value):
        if isinstance(value, str) or not all(isinstance(name, str) for name in value):
            raise ValueError("not a list of names")
        return value

    return {
        "data": text(), "output": text(optional=False), "plot": text(), "temperature": number(above=0, optional=True),
        "terms": Rule("a list of term names (bonds, angles, dihedrals, repulsion)", term_names),
        "bonds": Rule("a list of bead pairs [i, j]", bead_pairs, optional=True), "stride": integer(1),
        "n_bins": integer(5), "dihedral_order": integer(1), "repulsion_min_separation": integer(1),
        "repulsion_epsilon": number(above=0, optional=True), "repulsion_sigma_scale": number(above=0),
        "pool_by_type": boolean(),
    }


#: The type and range of every setting (checked by load_config and run_config; see openmmcgml._config).
RULES = _rules()


def register(subparsers):
    from .._config import add_config_arguments

    parser = subparsers.add_parser(
        "fit-priors",
        help="fit bond/angle/dihedral/repulsion priors to a CG dataset by Boltzmann inversion",
        description="Read a coarse-grained HDF5 dataset, fit the prior terms of the config by Boltzmann "
        "inversion (Jacobians divided out) and write them as JSON for `cgml train`.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run_config(config: dict, print_fn=print, listing: bool = True):
    """Fit priors as a config dict (the keys of :data:`DEFAULTS`) describes; returns the PriorSet.

    ``listing=False`` prints the one-line summary without the table of fitted parameters.
    """
    import os

    from ..priors import fit_priors
    from ..data.trajectory import read_trajectory

    from .._config import check_settings

    config = check_settings(config, RULES, "fit-priors")
    if not config.get("data"):
        raise ValueError("the config needs 'data': the path of a coarse-grained HDF5 dataset")
    data = read_trajectory(config["data"], frames=slice(None, None, config["stride"]), resolution="coarse-grained")
    stated = data.metadata.temperature  # NaN when the dataset states none
    temperature = config["temperature"] or (stated if stated == stated else None)
    if not temperature:
        raise ValueError(f"the dataset {config['data']} states no temperature; set 'temperature' in the config")
    bead_types = data.metadata.bead_types if config["pool_by_type"] else None
    if config["pool_by_type"] and bead_types is None:
        raise ValueError(f"pool_by_type needs bead types, and the dataset {config['data']} has none")
    priors = fit_priors(data.coordinates, config["bonds"], float(temperature), terms=tuple(config["terms"]),
                        n_bins=config["n_bins"], dihedral_order=config["dihedral_order"],
                        repulsion_min_separation=config["repulsion_min_separation"],
                        repulsion_epsilon=config["repulsion_epsilon"],
                        repulsion_sigma_scale=config["repulsion_sigma_scale"], bead_types=bead_types)
    output = config["output"]
    if os.path.dirname(os.path.abspath(output)):
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    priors.save(output)
    print_fn(f"fitted {priors} on {data.n_frames} frames at {temperature} K -> {output}")
    names = data.metadata.bead_names or [str(i) for i in range(priors.n_beads)]
    for name, term in (priors.terms.items() if listing else ()):
        for row, beads in enumerate(term.indices.tolist()):
            label = "-".join(names[b] for b in beads)
            values = ", ".join(f"{key}={_short(value[row])}" for key, value in term.parameters.items())
            print_fn(f"  {name:<9} {str(beads):<14} {label:<16} {values}")
    if config["plot"]:
        _plot(priors, data.coordinates, config["plot"])
        print_fn(f"plot -> {config['plot']}")
    return priors


def _short(value):
    import numpy as np

    value = np.asarray(value)
    if value.ndim == 0:
        return f"{float(value):.4g}"
    return "[" + ", ".join(f"{v:.4g}" for v in value.ravel()) + "]"


def _plot(priors, coordinates, path, max_columns=4):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..priors import plot_prior_fit

    rows = list(priors.terms)
    columns = max(1, min(max_columns, max(len(term) for term in priors.terms.values())))
    figure, axes = plt.subplots(len(rows), columns, figsize=(3.6 * columns, 2.8 * len(rows)), squeeze=False)
    for r, name in enumerate(rows):
        for c in range(columns):
            if c < len(priors.terms[name]):
                plot_prior_fit(priors, coordinates, name, index=c, ax=axes[r, c])
            else:
                axes[r, c].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(args):
    from .._config import run_command

    return run_command("fit-priors", _run, args)


def _run(args):
    from .._config import format_config, load_config

    config = load_config(args.config, args.overrides, DEFAULTS, what="fit-priors", rules=RULES)
    if args.print_config:
        print(format_config(config))
        return 0
    run_config(config, listing=not args.quiet)
    return 0
