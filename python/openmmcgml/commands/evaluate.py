"""``cgml evaluate``: compare CG samples with the mapped all-atom reference; metrics and plots."""

#: Every setting of an evaluate config, with its default (examples/configs/evaluate-alanine.yaml).
DEFAULTS = {
    "reference": None,           # CG-mapped reference trajectory file (docs/data-format.md)
    "samples": None,             # CG model trajectory file (cgml simulate's output)
    "output": "evaluation",      # folder for metrics.json, metrics.txt and the plots
    "kind": "auto",              # auto | alanine | ca | generic
    "native": None,              # native structure (PDB etc.) for Q and RMSD of CA chains
    "lagtime": 20,               # TICA lag in reference frames
    "discard": 0.1,              # burn-in fraction of each model run
    "reference_stride": 1,
    "stride": 1,
    "temperature": None,         # K; None: the reference file's
    "bins": 100,
    "n_tics": 5,
    "bounds": "reference",       # W1 grid extent: reference | union
    "max_kde_samples": 20000,
    "q_cutoff": 0.8,             # nm
    "folded_rmsd": 0.3,          # nm: CA RMSD to native below which a frame counts as folded
    "plots": True,               # write the PNG plots (else only metrics.json / metrics.txt)
}


def _rules():
    from .._config import boolean, integer, number, one_of, text

    return {
        "reference": text(), "samples": text(), "output": text(), "kind": one_of("auto", "alanine", "ca", "generic"),
        "native": text(), "lagtime": integer(1), "discard": number(0, below=1), "reference_stride": integer(1),
        "stride": integer(1), "temperature": number(above=0, optional=True), "bins": integer(2),
        "n_tics": integer(1), "bounds": one_of("reference", "union"), "max_kde_samples": integer(1, optional=True),
        "q_cutoff": number(above=0), "folded_rmsd": number(above=0), "plots": boolean(),
    }


#: The type and range of every setting (checked by load_config and run_config; see openmmcgml._config).
RULES = _rules()


def register(subparsers):
    from .._config import add_config_arguments

    parser = subparsers.add_parser(
        "evaluate",
        help="score CG samples against the mapped all-atom reference (TICA W1, JS distances, plots)",
        description="TICA on all pairwise CG distances fitted on the reference, W1 in the TIC0/TIC1 plane "
        "(seed-paper recipe), JS distances of bond, angle, dihedral and TIC histograms, radius of gyration, "
        "alanine phi/psi free energies or Q and RMSD of CA chains; writes metrics.json and PNG plots.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run_config(config: dict, print_fn=print, listing: bool = True) -> dict:
    """Evaluate as described by a config dict (the keys of :data:`DEFAULTS`); returns the metrics.

    ``listing=False`` leaves out the table of metrics (they are in ``metrics.json``).
    """
    from .._config import check_settings
    from ..analysis import format_metrics, report
    from ..data.trajectory import TrajectoryFile

    config = check_settings(config, RULES, "evaluate")
    for key in ("reference", "samples"):
        if not config.get(key):
            raise ValueError(f"the config needs '{key}'")
        with TrajectoryFile(config[key]) as handle:
            if handle.n_frames == 0:
                raise ValueError(f"{key} {config[key]} holds no frames")
    options = {k: config[k] for k in ("kind", "native", "lagtime", "discard", "reference_stride", "stride",
                                      "temperature", "bins", "n_tics", "bounds", "max_kde_samples", "q_cutoff", "folded_rmsd", "plots")}
    metrics = report(config["reference"], config["samples"], config["output"], **options)
    if listing:
        print_fn(format_metrics(metrics))
    if config["output"]:
        print_fn(f"plots and metrics.json in {config['output']}")
    return metrics


def run(args):
    from .._config import run_command

    return run_command("evaluate", _run, args)


def _run(args):
    from .._config import format_config, load_config

    config = load_config(args.config, args.overrides, DEFAULTS, what="evaluate", rules=RULES)
    if args.print_config:
        print(format_config(config))
        return 0
    run_config(config, listing=not args.quiet)
    return 0
