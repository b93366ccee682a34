"""``cgml train``: force matching of a CGSchNet on a CG-mapped dataset, written as a CGModel file."""

#: Architecture defaults (``CGSchNet`` arguments); ``n_types`` None: from the dataset's bead types.
MODEL_DEFAULTS = {
    "n_types": None,
    "n_features": 64,
    "n_filters": 64,
    "n_rbf": 32,
    "n_interactions": 2,
    "cutoff": 1.0,
    "activation": "ssp",
    "rbf": "gaussian",
    "rbf_lower_cutoff": 0.0,
    "output_hidden": [64],
    "trainable_rbf": False,
}

#: ``ForceMatching`` settings.
TRAINING_DEFAULTS = {
    "lr": 1e-3,
    "batch_size": 32,
    "max_epochs": 100,
    "patience": 10,
    "min_delta": 0.0,
    "lr_schedule": "plateau",
    "lr_factor": 0.5,
    "lr_patience": 3,
    "min_lr": 1e-6,
    "weight_decay": 0.0,
    "max_grad_norm": None,
    "validation_fraction": 0.2,
    "validation_trajectories": None,
    "dtype": "float32",
    "device": "cpu",
    "seed": 0,
    "num_threads": None,
    "eval_batch_size": 256,
    "dihedral_map": 0,         # N > 0: learn a 2-D Fourier map of order N over dihedral pairs with the network
}

#: Every setting of a train config, with its default (examples/configs/train-alanine.yaml).
DEFAULTS = {
    "data": None,              # CG HDF5 dataset (docs/data-format.md)
    "priors": None,            # PriorSet JSON from `cgml fit-priors`; None: those of init_model
    "output": "model.pt",      # the trained CGModel
    "checkpoint_dir": None,    # checkpoint.pt, loss.csv, loss.png; None: <output without .pt>-training
    "resume": True,            # continue from checkpoint_dir's checkpoint if there is one
    "init_model": None,        # start from the network of a saved CGModel (same bead set required)
    "stride": 1,               # use every stride-th frame
    "exclusions": "bonds",     # pairs the network leaves out: "bonds" (the priors' bonds), "none", or a list
    "masses": None,            # amu, one number or a list; None: the dataset's masses
    "model": MODEL_DEFAULTS,
    "training": TRAINING_DEFAULTS,
    "progress": True,
}


def _exclusions(value):
    """``"bonds"``, ``"none"`` or a list of bead pairs."""
    if value in ("bonds", "none"):
        return value
    if isinstance(value, str) or not all(isinstance(pair, (list, tuple)) and len(pair) == 2 and
                                         all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in pair)
                                         for pair in value):
        raise ValueError("not bonds, none or pairs")
    return value


def _rules():
    from .._config import Rule, boolean, integer, mapping, number, number_list, one_of, text, torch_device

    return {
        "exclusions": Rule("bonds, none or a list of bead pairs [i, j]", _exclusions, optional=True),
        "data": text(), "priors": text(), "output": text(optional=False), "checkpoint_dir": text(),
        "resume": boolean(), "init_model": text(), "stride": integer(1),
        "masses": number_list(above=0, scalar=True, optional=True), "model": mapping(), "training": mapping(),
        "progress": boolean(),
        "model.n_types": integer(1, optional=True), "model.n_features": integer(1), "model.n_filters": integer(1),
        "model.n_rbf": integer(1), "model.n_interactions": integer(1), "model.cutoff": number(above=0),
        "model.activation": one_of("ssp", "tanh", "silu"), "model.rbf": one_of("gaussian", "expnormal"),
        "model.rbf_lower_cutoff": number(0), "model.output_hidden": number_list(1, integers=True),
        "model.trainable_rbf": boolean(),
        "training.lr": number(above=0), "training.batch_size": integer(1), "training.max_epochs": integer(1),
        "training.patience": integer(1, optional=True), "training.min_delta": number(0),
        "training.lr_schedule": one_of("plateau", "exponential", "cosine", "constant"),
        "training.lr_factor": number(above=0, below=1), "training.lr_patience": integer(0),
        "training.min_lr": number(0), "training.weight_decay": number(0),
        "training.max_grad_norm": number(above=0, optional=True),
        "training.validation_fraction": number(above=0, below=1),
        "training.validation_trajectories": number_list(0, integers=True, optional=True),
        "training.dtype": one_of("float32", "float64"), "training.device": torch_device(),
        "training.seed": integer(), "training.num_threads": integer(1, optional=True),
        "training.eval_batch_size": integer(1), "training.dihedral_map": integer(0),
    }


#: The type and range of every setting, nested ones by dotted name (checked by load_config,
#: merge_section and run_config; see openmmcgml._config).
RULES = _rules()


def register(subparsers):
    from .._config import add_config_arguments

    parser = subparsers.add_parser(
        "train",
        help="train a CGSchNet by force matching on a CG dataset and write a CGModel file",
        description="Subtract the prior forces from the mapped forces of a coarse-grained HDF5 dataset, fit a "
        "CGSchNet to the rest (MSE), splitting training and validation frames by trajectory, with checkpoints "
        "every epoch (rerunning the command resumes), and write the trained model with its priors, beads and "
        "mapping to one file.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run_config(config: dict, print_fn=print):
    """Train as a config dict (the keys of :data:`DEFAULTS`) describes; returns the saved CGModel."""
    import os
    import warnings

    import torch

    from ..cgmodel import CGModel
    from ..data.trajectory import read_trajectory
    from ..estimator import ProgressBar, TrainingCheckpoint
    from ..models import CGSchNet
    from ..priors import PriorSet
    from .._config import check_settings, merge_section
    from ..training import ForceMatching

    config = check_settings(config, RULES, "train")
    model_settings = merge_section(config, "model", MODEL_DEFAULTS, RULES, "train")
    settings = merge_section(config, "training", TRAINING_DEFAULTS, RULES, "train")
    if not config.get("data"):
        raise ValueError("the config needs 'data': the path of a coarse-grained HDF5 dataset")
    data = read_trajectory(config["data"], frames=slice(None, None, config["stride"]), resolution="coarse-grained")
    n_beads, described = data.n_particles, data.metadata

    initial = None
    if config["init_model"]:
        initial = CGModel.load(config["init_model"])
        initial.check_beads(bead_names=described.bead_names, bead_types=described.bead_types, n_beads=n_beads,
                            source=f"dataset {config['data']}")
    if config["priors"]:
        priors = PriorSet.load(config["priors"])
    elif initial is not None:
        priors = initial.priors
    else:
        raise ValueError("the config needs 'priors' (a JSON file from `cgml fit-priors`) or 'init_model'")
    if priors.n_beads != n_beads:
        raise ValueError(f"the priors {config['priors']} are for {priors.n_beads} beads but the dataset "
                         f"{config['data']} has {n_beads}: they describe different bead sets")

    bead_types = described.bead_types
    if bead_types is None:
        names = described.bead_names or [str(i) for i in range(n_beads)]
        distinct = sorted(set(names), key=names.index)
        bead_types = [distinct.index(name) for name in names]
        warnings.warn(f"the dataset has no bead types: one type per distinct bead name ({len(distinct)} types)")
    bead_types = [int(t) for t in bead_types]

    if initial is not None:
        model = initial.model
    else:
        n_types = model_settings["n_types"]
        if n_types is None:
            n_types = len(described.type_names) if described.type_names else max(bead_types) + 1
        arguments = dict(model_settings, n_types=int(n_types), output_hidden=tuple(model_settings["output_hidden"]))
        torch.manual_seed(int(settings["seed"]))
        model = CGSchNet(**arguments)

    exclusions = config["exclusions"]
    if exclusions in (None, "none"):
        exclusions = None
    elif exclusions != "bonds":
        exclusions = [tuple(pair) for pair in exclusions]

    output = config["output"]
    checkpoint_dir = config["checkpoint_dir"]
    if checkpoint_dir is None:
        checkpoint_dir = (output[:-3] if output.endswith(".pt") else output) + "-training"
    trainer = ForceMatching(model, priors, bead_types, exclusions, **settings)
    callbacks = [TrainingCheckpoint(checkpoint_dir, resume=bool(config["resume"]))]
    if config["progress"]:
        callbacks.append(ProgressBar())
    print_fn(f"force matching on {data.n_frames} frames of {n_beads} beads from {config['data']}; "
             f"checkpoints in {checkpoint_dir}")
    trainer.fit(data, callbacks=callbacks)

    if config["masses"] is None and data.masses is None:
        warnings.warn("neither the config nor the dataset gives bead masses: 100 amu each")
    cg = trainer.fetch_model(masses=config["masses"])
    cg.save(output)
    print_fn(f"best validation force MSE {trainer.best_val_loss_:.4g} (kJ/mol/nm)^2 at epoch {trainer.best_epoch_} "
             f"of {len(trainer.history_)}; model -> {output}; loss curve -> "
             f"{os.path.join(checkpoint_dir, 'loss.png')}")
    return cg


def run(args):
    from .._config import run_command

    return run_command("train", _run, args)


def _run(args):
    from .._config import format_config, load_config, merge_section

    config = load_config(args.config, args.overrides, DEFAULTS, what="train", rules=RULES)
    if args.print_config:
        config["model"] = merge_section(config, "model", MODEL_DEFAULTS, RULES, "train")
        config["training"] = merge_section(config, "training", TRAINING_DEFAULTS, RULES, "train")
        print(format_config(config))
        return 0
    if args.quiet:
        config["progress"] = False
    run_config(config)
    return 0
