"""Settings and run of ``cgml train``: force matching of a CGSchNet on a CG-mapped dataset,
written as a CGModel file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .._config import (Rule, Settings, boolean, config_path, integer, number, number_list, one_of, save_config,
                       section, text, torch_device)

__all__ = ["DEFAULTS", "MODEL_DEFAULTS", "ModelSettings", "RULES", "TRAINING_DEFAULTS", "TrainConfig",
           "TrainingSettings", "run_config"]


@dataclass
class ModelSettings(Settings):
    """The ``model`` section: arguments of :class:`~openmmcgml.models.CGSchNet` (``n_types`` None:
    from the dataset's bead types)."""

    WHAT = "model"
    RULES = {
        "n_types": integer(1, optional=True), "n_features": integer(1), "n_filters": integer(1), "n_rbf": integer(1),
        "n_interactions": integer(1), "cutoff": number(above=0), "activation": one_of("ssp", "tanh", "silu"),
        "rbf": one_of("gaussian", "expnormal"), "rbf_lower_cutoff": number(0),
        "output_hidden": number_list(1, integers=True), "trainable_rbf": boolean(),
    }

    n_types: Optional[int] = None
    n_features: int = 64
    n_filters: int = 64
    n_rbf: int = 32
    n_interactions: int = 2
    cutoff: float = 1.0
    activation: str = "ssp"
    rbf: str = "gaussian"
    rbf_lower_cutoff: float = 0.0
    output_hidden: list = field(default_factory=lambda: [64])
    trainable_rbf: bool = False


@dataclass
class TrainingSettings(Settings):
    """The ``training`` section: settings of :class:`~openmmcgml.training.ForceMatching`
    (``dihedral_map`` N > 0: a 2-D Fourier map of order N over dihedral pairs, learned with the
    network; ``loss`` "internal": the squared errors of generalized forces along the chain's
    internal coordinates, each in units of its spread, instead of the Cartesian force MSE)."""

    WHAT = "training"
    RULES = {
        "lr": number(above=0), "batch_size": integer(1), "max_epochs": integer(1),
        "patience": integer(1, optional=True), "min_delta": number(0),
        "lr_schedule": one_of("plateau", "exponential", "cosine", "constant"),
        "lr_factor": number(above=0, below=1), "lr_patience": integer(0), "min_lr": number(0),
        "weight_decay": number(0), "max_grad_norm": number(above=0, optional=True),
        "validation_fraction": number(above=0, below=1),
        "validation_trajectories": number_list(0, integers=True, optional=True),
        "dtype": one_of("float32", "float64"), "device": torch_device(), "seed": integer(),
        "num_threads": integer(1, optional=True), "eval_batch_size": integer(1), "dihedral_map": integer(0),
        "loss": one_of("cartesian", "internal"), "frame_weighting": one_of("none", "dihedral_density"),
    }

    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 100
    patience: Optional[int] = 10
    min_delta: float = 0.0
    lr_schedule: str = "plateau"
    lr_factor: float = 0.5
    lr_patience: int = 3
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    max_grad_norm: Optional[float] = None
    validation_fraction: float = 0.2
    validation_trajectories: Optional[list] = None
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0
    num_threads: Optional[int] = None
    eval_batch_size: int = 256
    dihedral_map: int = 0
    loss: str = "cartesian"
    frame_weighting: str = "none"


def _exclusions(value):
    """A named set of :data:`~openmmcgml.training.EXCLUSIONS`, ``"none"`` or a list of bead pairs."""
    from ..training import EXCLUSIONS

    if value in EXCLUSIONS or value == "none":
        return value
    if isinstance(value, str) or not all(isinstance(pair, (list, tuple)) and len(pair) == 2 and
                                         all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in pair)
                                         for pair in value):
        raise ValueError("not bonds, bonds+map, none or pairs")
    return value


@dataclass
class TrainConfig(Settings):
    """Settings of ``cgml train`` (examples/configs/train-alanine.yaml).

    Attributes
    ----------
    data : str
        CG HDF5 dataset (docs/data-format.md).
    priors : str, optional
        PriorSet JSON from ``cgml fit-priors``; None: those of ``init_model``.
    output : str
        The trained CGModel.
    priors_only_output : str, optional
        Also write the priors-only baseline: the fitted priors (no network, no learned dihedral
        map) with the same beads and masses, the model a trained one is compared with.
    checkpoint_dir : str, optional
        checkpoint.pt, loss.csv, loss.png; None: ``<output without .pt>-training``.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` if there is one.
    init_model : str, optional
        Start from the network of a saved CGModel (same bead set required).
    stride : int
        Use every stride-th frame.
    exclusions : str or list
        Pairs the network leaves out: ``bonds`` (the priors' bonds), ``bonds+map`` (those and the
        1-4 and 1-5 pairs of the dihedral map's tuples: the map alone carries the (phi, psi) free
        energy), ``none``, or a list of pairs.
    masses : float or list, optional
        amu; None: the dataset's.
    model : ModelSettings
    training : TrainingSettings
    progress : bool
        A progress bar (also off with ``--quiet``).
    force_noise : bool
        After training, split the best validation force MSE into the noise of the mapped forces
        (estimated from the dataset's frames by :func:`openmmcgml.analysis.force_noise.estimate_force_noise`)
        and the model error; printed and kept in the model's metadata (``force_noise``).
    """

    WHAT = "train"
    RULES = {
        "data": text(), "priors": text(), "output": text(optional=False), "priors_only_output": text(),
        "checkpoint_dir": text(),
        "resume": boolean(), "init_model": text(), "stride": integer(1),
        "exclusions": Rule("bonds, bonds+map, none or a list of bead pairs [i, j]", _exclusions, optional=True),
        "masses": number_list(above=0, scalar=True, optional=True), "progress": boolean(),
        "force_noise": boolean(),
    }

    data: Optional[str] = None
    priors: Optional[str] = None
    output: str = "model.pt"
    priors_only_output: Optional[str] = None
    checkpoint_dir: Optional[str] = None
    resume: bool = True
    init_model: Optional[str] = None
    stride: int = 1
    exclusions: Union[str, list, None] = "bonds"
    masses: Union[float, list, None] = None
    model: ModelSettings = section(ModelSettings)
    training: TrainingSettings = section(TrainingSettings)
    progress: bool = True
    force_noise: bool = True


#: Every setting with its default (the sections as dicts).
DEFAULTS = TrainConfig.defaults()
#: The ``model`` and ``training`` sections' defaults.
MODEL_DEFAULTS = ModelSettings.defaults()
TRAINING_DEFAULTS = TrainingSettings.defaults()

#: The type and range of each setting, nested ones by dotted name (see openmmcgml._config).
RULES = TrainConfig.rules()


def run_config(config, *, quiet: bool = False, print_fn=print):
    """Train as ``config`` (a dict or :class:`TrainConfig`) describes; returns the saved CGModel.

    ``quiet``: no progress bar (as ``progress: false``).  The settings go to ``<output>.config.yaml``.
    """
    import dataclasses
    import os
    import warnings

    import torch

    from ..cgmodel import CGModel
    from ..data.trajectory import read_trajectory
    from ..estimator import LOSS_PNG_NAME, ProgressBar, TrainingCheckpoint, write_loss_plot
    from ..models import CGSchNet
    from ..priors import PriorSet
    from ..training import EXCLUSIONS, ForceMatching

    config = TrainConfig.from_dict(config)
    if not config.data:
        raise ValueError("the config needs 'data': the path of a coarse-grained HDF5 dataset")
    data = read_trajectory(config.data, frames=slice(None, None, config.stride), resolution="coarse-grained")
    n_beads, described = data.n_particles, data.metadata

    initial = None
    if config.init_model:
        initial = CGModel.load(config.init_model)
        initial.check_beads(bead_names=described.bead_names, bead_types=described.bead_types, n_beads=n_beads,
                            source=f"dataset {config.data}")
    if config.priors:
        priors = PriorSet.load(config.priors)
    elif initial is not None:
        priors = initial.priors
    else:
        raise ValueError("the config needs 'priors' (a JSON file from `cgml fit-priors`) or 'init_model'")
    if priors.n_beads != n_beads:
        raise ValueError(f"the priors {config.priors} are for {priors.n_beads} beads but the dataset "
                         f"{config.data} has {n_beads}: they describe different bead sets")

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
        n_types = config.model.n_types
        if n_types is None:
            n_types = len(described.type_names) if described.type_names else max(bead_types) + 1
        arguments = dict(dataclasses.asdict(config.model), n_types=int(n_types),
                         output_hidden=tuple(config.model.output_hidden))
        torch.manual_seed(int(config.training.seed))
        model = CGSchNet(**arguments)

    exclusions = config.exclusions
    if exclusions in (None, "none"):
        exclusions = None
    elif exclusions not in EXCLUSIONS:
        exclusions = [tuple(pair) for pair in exclusions]

    output = config.output
    checkpoint_dir = config.checkpoint_dir
    if checkpoint_dir is None:
        checkpoint_dir = (output[:-3] if output.endswith(".pt") else output) + "-training"
    trainer = ForceMatching(model, priors, bead_types, exclusions, **dataclasses.asdict(config.training))
    callbacks = [TrainingCheckpoint(checkpoint_dir, resume=config.resume)]
    if config.progress and not quiet:
        callbacks.append(ProgressBar())
    print_fn(f"force matching on {data.n_frames} frames of {n_beads} beads from {config.data}; "
             f"checkpoints in {checkpoint_dir}")
    trainer.fit(data, callbacks=callbacks)

    if config.masses is None and data.masses is None:
        warnings.warn("neither the config nor the dataset gives bead masses: 100 amu each")
    noise = _force_noise_summary(data, trainer.best_val_force_mse_) if config.force_noise else None
    cg = trainer.fetch_model(masses=config.masses, metadata=None if noise is None else {"force_noise": noise})
    cg.save(output)
    save_config(config, config_path(output), "train")
    if config.priors_only_output:
        cg.priors_only(priors=priors).save(config.priors_only_output)
        print_fn(f"priors-only model (the fitted priors, no learned terms) -> {config.priors_only_output}")
    objective = ("" if trainer.loss == "cartesian" else
                 f" (weighted generalized-force loss {trainer.best_val_loss_:.4g})")
    print_fn(f"best validation force MSE {trainer.best_val_force_mse_:.4g} (kJ/mol/nm)^2{objective} at epoch {trainer.best_epoch_} "
             f"of {len(trainer.history_)}; model -> {output}; loss curve -> "
             f"{os.path.join(checkpoint_dir, 'loss.png')}")
    if noise is not None:
        print_fn(noise["summary"])
        if "noise" in noise and trainer.loss == "cartesian":
            # The loss curve again, with the noise floor that the validation loss cannot go below.
            write_loss_plot(trainer.history_, os.path.join(checkpoint_dir, LOSS_PNG_NAME), noise_level=noise["noise"])
    return cg


def _force_noise_summary(data, validation_mse: float) -> dict:
    """The validation MSE split into the noise of the mapped forces (estimated from all frames of
    ``data``) and the model error, as kept in the model's metadata; a dataset too small for the
    estimate gives ``{"summary": <why>}``."""
    from ..analysis.force_noise import estimate_force_noise, format_force_split

    try:
        ids = data.trajectory if getattr(data.trajectory, "ndim", 0) == 1 else None
        estimate = estimate_force_noise(data.coordinates, data.forces, ids, n_bootstrap=100)
    except ValueError as error:
        return {"summary": f"force noise not estimated: {error}"}
    split = estimate.split(validation_mse)
    return {**split, "estimate": estimate.to_dict(),
            "summary": "validation " + format_force_split(split) + f"; noise from {estimate.n_pairs} "
                       f"neighbour pairs of {estimate.n_frames} frames"}
