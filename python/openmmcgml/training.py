"""Force matching: training a CGSchNet on mapped all-atom forces.

The mapped forces ``F`` of CG frames ``x`` are noisy samples of the mean force, ``-grad`` of the
CG free energy.  Force matching fits the network energy ``U_net`` so that
``F_prior(x) + F_net(x)`` matches them in mean squared error::

    loss = mean over frames, beads and components of (F_net(x) - (F - F_prior(x)))^2

where ``F_prior`` are the forces of a fixed :class:`~openmmcgml.priors.PriorSet`.  The minimum of
the loss is the variance of the mapped forces around the mean force (the "noise"), so the
validation loss does not go to zero; it levels off at that noise.

:class:`ForceMatching` is an estimator: configure it, call :meth:`ForceMatching.fit` on arrays or
on a CG HDF5 file (``docs/data-format.md``), read ``history_``.  Frames are split into training
and validation sets by trajectory (the ``trajectory`` dataset of the file), so that correlated
frames of one run never sit on both sides.  With a ``checkpoint_dir``, the state is saved
after every epoch and a new ``fit`` with the same data resumes where the last one stopped.

Examples
--------
>>> import numpy as np, torch
>>> from openmmcgml.models import CGSchNet
>>> from openmmcgml.priors import PriorSet, HarmonicBonds
>>> rng = np.random.default_rng(0)
>>> x = np.cumsum(rng.normal(0.2, 0.05, size=(40, 4, 3)), axis=1)
>>> f = rng.normal(size=(40, 4, 3))
>>> priors = PriorSet(4, terms=[HarmonicBonds([[0, 1], [1, 2], [2, 3]], k=[100.0] * 3, r0=[0.35] * 3)])
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> fm = ForceMatching(CGSchNet(2, 8, 8, 8, 1, cutoff=1.0), priors, bead_types=[0, 1, 1, 0],
...                    max_epochs=2, batch_size=8, progress=False, num_threads=1)
>>> fm = fm.fit(x, f, trajectory_ids=np.repeat([0, 1, 2, 3], 10))
>>> [sorted(r) for r in fm.history_][0]
['epoch', 'lr', 'skipped_batches', 'time', 'train_loss', 'val_loss']
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import time
import warnings
from typing import Callable, Optional, Sequence, Union

import numpy as np

from ._atomic import atomic_write
from .priors import DihedralMap, PriorSet, dihedral_map_modes, dihedral_pairs

__all__ = ["ForceMatching", "check_force_data", "plot_loss_curve", "read_cg_dataset", "split_by_trajectory",
           "write_loss_csv"]

CHECKPOINT_NAME = "checkpoint.pt"
#: The dihedral-map coefficients are trained in units of this many kJ/mol: Adam moves a parameter
#: by about ``lr`` per step, so in these units a few hundred steps cover terms of a few kJ/mol.
MAP_UNIT = 10.0
LOSS_CSV_NAME = "loss.csv"
LOSS_PNG_NAME = "loss.png"
LR_SCHEDULES = ("plateau", "exponential", "cosine", "constant")
_CHECKPOINT_FORMAT = "openmm-cgml-force-matching-checkpoint"


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

def _json_attr(attrs, key):
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"attribute {key!r} is not valid JSON ({error})") from error
    return value


def read_cg_dataset(path, arrays: bool = True, stride: int = 1) -> dict:
    """Read a coarse-grained HDF5 dataset (layout of ``docs/data-format.md``).

    Parameters
    ----------
    path : str or path-like
    arrays : bool
        Whether to read the frame datasets (False: attributes and sizes only).
    stride : int
        Keep every ``stride``-th frame.

    Returns
    -------
    dict
        ``coordinates`` and ``forces`` (float32, (n_frames, n_beads, 3)) and ``trajectory``
        (int64, (n_frames,)) when ``arrays``; always ``n_frames``, ``n_beads``,
        ``bead_names``, ``bead_types``, ``type_names`` and ``masses`` (lists or None; masses
        from the optional ``masses`` dataset), ``mapping`` (dict or None),
        ``temperature`` (K or None), ``system`` and ``attrs`` (all root attributes).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a readable HDF5 file, is an all-atom dataset, lacks a dataset, or its
        datasets disagree in shape.
    """
    import h5py

    from .data.trajectory import hdf5_errors

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"dataset {path} is a directory, not an HDF5 file")
    with hdf5_errors(f"dataset {path}"):
        return _read_cg_dataset(h5py.File(path, "r"), path, arrays, stride)


def _read_cg_dataset(handle, path, arrays, stride):
    with handle:
        attrs = {key: (value.decode() if isinstance(value, bytes) else value) for key, value in handle.attrs.items()}
        if attrs.get("format", "openmm-cgml-trajectory") != "openmm-cgml-trajectory":
            raise ValueError(f"dataset {path} has format {attrs['format']!r}, not 'openmm-cgml-trajectory'")
        if attrs.get("resolution", "coarse-grained") != "coarse-grained":
            raise ValueError(f"dataset {path} is a {attrs['resolution']!r} dataset; force matching needs a "
                             "coarse-grained one (map it with openmmcgml.mapping first)")
        missing = [name for name in ("coordinates", "forces") if name not in handle]
        if missing:
            raise ValueError(f"dataset {path} has no {' and no '.join(missing)} dataset")
        shape = handle["coordinates"].shape
        if handle["forces"].shape != shape:
            raise ValueError(f"dataset {path}: forces have shape {handle['forces'].shape} but coordinates have "
                             f"shape {shape}")
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"dataset {path}: coordinates must have shape (n_frames, n_beads, 3) (got {shape})")
        if "trajectory" in handle and handle["trajectory"].shape != shape[:1]:
            raise ValueError(f"dataset {path}: trajectory has shape {handle['trajectory'].shape} but there are "
                             f"{shape[0]} frames")
        stride = int(stride)
        if stride < 1:
            raise ValueError(f"stride must be a positive integer (got {stride})")
        out = {
            "n_frames": len(range(0, shape[0], stride)),
            "n_beads": shape[1],
            "bead_names": _json_attr(attrs, "bead_names"),
            "bead_types": _json_attr(attrs, "bead_types"),
            "type_names": _json_attr(attrs, "type_names"),
            "masses": (np.asarray(handle["masses"][()], dtype=np.float64).tolist() if "masses" in handle else None),
            "mapping": _json_attr(attrs, "mapping"),
            "temperature": float(attrs["temperature"]) if "temperature" in attrs else None,
            "system": attrs.get("system"),
            "attrs": attrs,
        }
        for key in ("bead_names", "bead_types", "masses"):
            if out[key] is not None and len(out[key]) != shape[1]:
                raise ValueError(f"dataset {path}: attribute {key} lists {len(out[key])} beads but the "
                                 f"coordinates have {shape[1]}")
        if arrays:
            out["coordinates"] = np.asarray(handle["coordinates"][::stride], dtype=np.float32)
            out["forces"] = np.asarray(handle["forces"][::stride], dtype=np.float32)
            if "trajectory" in handle:
                out["trajectory"] = np.asarray(handle["trajectory"][::stride], dtype=np.int64)
            else:
                warnings.warn(f"dataset {path} has no trajectory dataset; all frames count as one trajectory")
                out["trajectory"] = np.zeros(out["n_frames"], dtype=np.int64)
    return out


def check_force_data(coordinates, forces, trajectory_ids=None):
    """Validate force-matching data and return it as (float64, float64, int64) arrays.

    Raises
    ------
    ValueError
        Naming the problem: shapes that disagree, non-finite values, no frames.
    """
    x = np.asarray(coordinates)
    f = np.asarray(forces)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"coordinates must have shape (n_frames, n_beads, 3) (got {x.shape})")
    if f.shape != x.shape:
        raise ValueError(f"forces have shape {f.shape} but coordinates have shape {x.shape}; they must agree")
    if x.shape[0] == 0:
        raise ValueError("there are no frames")
    for name, a in (("coordinates", x), ("forces", f)):
        if a.dtype.kind != "f":
            raise ValueError(f"{name} must be floating point (got dtype {a.dtype})")
        if not np.isfinite(a).all():
            bad = int(np.flatnonzero(~np.isfinite(a).reshape(len(a), -1).all(axis=1))[0])
            raise ValueError(f"{name} of frame {bad} contain NaN or infinite values")
    if trajectory_ids is None:
        t = np.zeros(len(x), dtype=np.int64)
    else:
        t = np.asarray(trajectory_ids)
        if t.shape != (len(x),):
            raise ValueError(f"trajectory_ids has shape {t.shape} but there are {len(x)} frames")
        if t.dtype.kind not in "iu":
            raise ValueError(f"trajectory_ids must be integers (got dtype {t.dtype})")
        t = t.astype(np.int64)
    return x.astype(np.float64, copy=False), f.astype(np.float64, copy=False), t


def split_by_trajectory(trajectory_ids, validation_fraction: float = 0.2, seed: int = 0,
                        validation_trajectories: Optional[Sequence[int]] = None):
    """Split frames into training and validation sets by trajectory.

    A random ``validation_fraction`` of the trajectories (at least one, at most all but one) are
    validation trajectories, unless they are named in ``validation_trajectories``.  With a
    single trajectory, its last ``validation_fraction`` of frames are held out instead (a time
    split, with a warning).

    Returns
    -------
    train_frames, validation_frames : ndarray of int64
        Frame indices, ascending.
    validation_trajectories : list of int
        The held-out trajectory ids (empty for a time split).

    Examples
    --------
    >>> train, val, held_out = split_by_trajectory([0, 0, 1, 1, 2, 2], 0.34, seed=1)
    >>> len(held_out), len(val)
    (1, 2)
    """
    t = np.asarray(trajectory_ids, dtype=np.int64)
    ids = np.unique(t)
    if len(t) < 2:
        raise ValueError(f"training needs at least 2 frames, one to train on and one to validate (got {len(t)})")
    if validation_trajectories is not None:
        held_out = sorted(int(i) for i in validation_trajectories)
        unknown = sorted(set(held_out) - set(ids.tolist()))
        if unknown:
            raise ValueError(f"validation trajectories {unknown} are not in the data (trajectories {ids.tolist()})")
        if len(held_out) == len(ids):
            raise ValueError("every trajectory is a validation trajectory; none is left to train on")
    elif len(ids) == 1:
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1) (got {validation_fraction})")
        warnings.warn("the data hold a single trajectory: its last frames are the validation set (a time split)")
        frames = np.arange(len(t))
        cut = min(max(int(round(len(t) * (1 - validation_fraction))), 1), len(t) - 1)
        return frames[:cut], frames[cut:], []
    else:
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1) (got {validation_fraction})")
        count = min(max(int(round(validation_fraction * len(ids))), 1), len(ids) - 1)
        held_out = sorted(np.random.default_rng(seed).choice(ids, size=count, replace=False).tolist())
    validation = np.isin(t, held_out)
    return np.flatnonzero(~validation), np.flatnonzero(validation), [int(i) for i in held_out]


# --------------------------------------------------------------------------------------
# Loss curves
# --------------------------------------------------------------------------------------

def write_loss_csv(history: Sequence[dict], path) -> None:
    """Write the per-epoch records (epoch, train_loss, val_loss, lr, time) as CSV."""
    columns = ["epoch", "train_loss", "val_loss", "lr", "time"]
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        for record in history:
            writer.writerow(record)


def plot_loss_curve(history, ax=None, noise_level: Optional[float] = None):
    """Plot training and validation loss against epoch (log scale).

    Parameters
    ----------
    history : list of dict or str
        ``ForceMatching.history_``, or the path of a loss CSV written during training.
    ax : matplotlib Axes, optional
        Drawn into; default a new figure's axes.
    noise_level : float, optional
        Draw a horizontal line here, e.g. a known force-noise variance.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if isinstance(history, (str, os.PathLike)):
        with open(history) as handle:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], label="training")
    ax.plot(epochs, [r["val_loss"] for r in history], label="validation")
    if history:
        best = min(history, key=lambda r: r["val_loss"])
        ax.plot([best["epoch"]], [best["val_loss"]], "o", color="C1", label=f"best (epoch {int(best['epoch'])})")
    if noise_level is not None:
        ax.axhline(noise_level, color="gray", ls="--", label="noise level")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("force MSE ((kJ/mol/nm)$^2$)")
    ax.legend(fontsize="small")
    return ax


# --------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------

def _fingerprint(coordinates, forces, trajectory_ids) -> str:
    digest = hashlib.sha1()
    for array in (np.ascontiguousarray(coordinates, dtype=np.float32), np.ascontiguousarray(forces, dtype=np.float32),
                  np.ascontiguousarray(trajectory_ids, dtype=np.int64)):
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class ForceMatching:
    """Train a :class:`~openmmcgml.models.CGSchNet` by force matching on top of fixed priors.

    Parameters
    ----------
    model : CGSchNet
        The network to train (in place; it is converted to ``dtype`` and ``device``).
    priors : PriorSet
        Fixed prior terms of the molecule; their forces are subtracted from the data.
    bead_types : sequence of int
        Bead type of each of the ``priors.n_beads`` beads.
    exclusions : "bonds", sequence of (int, int) or None
        Bead pairs the network leaves out: ``"bonds"`` (default) the pairs of ``priors.bonds``;
        None or ``[]`` none.
    lr : float
        Initial learning rate of the Adam optimiser.
    batch_size : int
        Frames per optimisation step.
    max_epochs : int
        Upper limit on epochs (passes over the training frames).
    patience : int or None
        Early stopping: stop after this many epochs without a validation loss below the best
        one minus ``min_delta``; None: never stop early.
    min_delta : float
        Improvement needed to reset the early-stopping counter, in loss units.
    lr_schedule : {"plateau", "exponential", "cosine", "constant"}
        ``"plateau"``: multiply the rate by ``lr_factor`` after ``lr_patience`` epochs without
        validation improvement; ``"exponential"``: multiply by ``lr_factor`` every epoch;
        ``"cosine"``: anneal from ``lr`` to ``min_lr`` over ``max_epochs``; ``"constant"``.
        Rates never go below ``min_lr``.
    lr_factor, lr_patience, min_lr : float, int, float
        See ``lr_schedule``.
    weight_decay : float
        Adam's L2 penalty.
    max_grad_norm : float, optional
        Clip the gradient norm of each step to this value.
    validation_fraction : float
        Fraction of trajectories held out (see :func:`split_by_trajectory`).
    validation_trajectories : sequence of int, optional
        Held-out trajectory ids, instead of a random choice.
    dtype : {"float32", "float64"}
        Training precision; float32 is several times faster, float64 for checks.
    device : str
        A torch device, e.g. ``"cpu"`` or ``"cuda"``.
    checkpoint_dir : str or path-like, optional
        Folder for ``checkpoint.pt`` (written atomically after every epoch), ``loss.csv``
        (every epoch) and ``loss.png`` (at the end).
    resume : bool
        Continue from an existing checkpoint in ``checkpoint_dir`` (same data and architecture
        required); False starts over and overwrites it.
    seed : int
        Seeds the split and the order of frames of each epoch (a resumed run repeats the same
        batches as an uninterrupted one).
    progress : bool or callable
        True: a tqdm bar over epochs; a callable is called with each epoch's record (a dict
        with ``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``time``).
    eval_batch_size : int
        Frames per evaluation batch (validation, :meth:`predict`).
    num_threads : int, optional
        Torch CPU threads during :meth:`fit` (restored afterwards); default: torch's setting.
        Small CG models train fastest, and most steadily, with 1 thread: their operations are
        too small to share out, and on a machine whose cores are busy with other work torch's
        thread pool can slow a small model down many times (seen: 50x on 2 shared cores).
    dihedral_map : int
        N > 0 learns, together with the network and from the same forces, a smooth map over every
        pair of dihedrals that share three beads (:class:`~openmmcgml.priors.DihedralMap`: a 2-D
        Fourier series of order N in ``(phi, psi)``, 2 N (N + 1) modes, cosines and sines); 0 (the
        default) leaves it out. CGSchNet sees distances only: its energy cannot tell a configuration
        from its mirror image, and it resolves the dihedral dependence poorly where a distance barely
        changes with the dihedral (near 0 and 180 degrees). Alanine dipeptide's five backbone beads
        show both: alpha-R is the mirror image of alpha-L, and beta sits near psi = 180. The map is
        learned from forces like the network, never fitted to a histogram; :meth:`to_cgmodel` puts
        it into the priors as their ``dihedral_map`` term (OpenMM ``CustomCompoundBondForce``).

    Attributes
    ----------
    history_ : list of dict
        One record per epoch: ``epoch`` (1-based), ``train_loss`` (mean of the epoch's batch
        losses), ``val_loss`` (validation MSE after the epoch), ``lr``, ``time`` (s),
        ``skipped_batches`` (steps left out because their loss or gradient was not finite).
    best_epoch_ : int
        Epoch of the lowest validation loss; the model holds its weights after ``fit``.
    best_val_loss_ : float
    stopped_early_ : bool
    validation_trajectories_ : list of int
    n_train_frames_, n_validation_frames_ : int

    Examples
    --------
    See the module docstring.
    """

    def __init__(self, model, priors: PriorSet, bead_types, exclusions: Union[str, Sequence, None] = "bonds", *,
                 lr: float = 1e-3, batch_size: int = 32, max_epochs: int = 100, patience: Optional[int] = 10,
                 min_delta: float = 0.0, lr_schedule: str = "plateau", lr_factor: float = 0.5,
                 lr_patience: int = 3, min_lr: float = 1e-6, weight_decay: float = 0.0,
                 max_grad_norm: Optional[float] = None, validation_fraction: float = 0.2,
                 validation_trajectories: Optional[Sequence[int]] = None, dtype: str = "float32",
                 device: str = "cpu", checkpoint_dir=None, resume: bool = True, seed: int = 0,
                 progress: Union[bool, Callable] = True, eval_batch_size: int = 256,
                 num_threads: Optional[int] = None, dihedral_map: int = 0):
        from .models import CGSchNet, CGTopology

        if not isinstance(model, CGSchNet):
            raise TypeError(f"model must be a CGSchNet (got {type(model).__name__})")
        if not isinstance(priors, PriorSet):
            raise TypeError(f"priors must be a PriorSet (got {type(priors).__name__})")
        self.model = model
        self.priors = priors
        if isinstance(exclusions, str):
            if exclusions != "bonds":
                raise ValueError(f"exclusions must be 'bonds', a list of pairs or None (got {exclusions!r})")
            exclusions = [tuple(b) for b in priors.bonds.tolist()]
        exclusions = [tuple(int(i) for i in pair) for pair in (exclusions or [])]
        if len(bead_types) != priors.n_beads:
            raise ValueError(f"bead_types lists {len(bead_types)} beads but the priors have {priors.n_beads}")
        self.topology = CGTopology(list(bead_types), exclusions=exclusions or None)
        self.topology.check_types(model.n_types)
        self.bead_types = [int(t) for t in bead_types]
        self.exclusions = exclusions
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {lr_schedule!r}; choose one of {LR_SCHEDULES}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64' (got {dtype!r})")
        for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs),
                            ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer (got {value!r})")
        if patience is not None and (int(patience) != patience or patience < 1):
            raise ValueError(f"patience must be a positive integer or None (got {patience!r})")
        if not (lr > 0):
            raise ValueError(f"lr must be positive (got {lr})")
        self.lr, self.batch_size, self.max_epochs = float(lr), int(batch_size), int(max_epochs)
        self.patience, self.min_delta = (None if patience is None else int(patience)), float(min_delta)
        self.lr_schedule, self.lr_factor, self.lr_patience = lr_schedule, float(lr_factor), int(lr_patience)
        self.min_lr, self.weight_decay, self.max_grad_norm = float(min_lr), float(weight_decay), max_grad_norm
        self.validation_fraction = float(validation_fraction)
        self.validation_trajectories = None if validation_trajectories is None else list(validation_trajectories)
        self.dtype, self.device = dtype, device
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.resume, self.seed, self.progress = bool(resume), int(seed), progress
        self.eval_batch_size = int(eval_batch_size)
        if num_threads is not None and (int(num_threads) != num_threads or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None (got {num_threads!r})")
        self.num_threads = None if num_threads is None else int(num_threads)
        if isinstance(dihedral_map, bool) or int(dihedral_map) != dihedral_map or dihedral_map < 0:
            raise ValueError(f"dihedral_map must be a non-negative integer (got {dihedral_map!r})")
        self.dihedral_map = int(dihedral_map)
        self.map_pairs = (dihedral_pairs(priors.n_beads, priors.bonds) if self.dihedral_map
                          else np.zeros((0, 5), dtype=np.int64))
        if self.dihedral_map and len(self.map_pairs) == 0:
            raise ValueError("dihedral_map needs two dihedrals that share three beads, and the priors' bond graph "
                             "has none")
        self.map_modes = dihedral_map_modes(self.dihedral_map)
        self._map = None

    # ---------------------------------------------------------------------- helpers

    @property
    def _torch_dtype(self):
        import torch

        return torch.float32 if self.dtype == "float32" else torch.float64

    def _settings(self) -> dict:
        """Settings that must match for a checkpoint to be resumed (max_epochs may grow)."""
        return {"lr": self.lr, "batch_size": self.batch_size, "patience": self.patience, "min_delta": self.min_delta,
                "lr_schedule": self.lr_schedule, "lr_factor": self.lr_factor, "lr_patience": self.lr_patience,
                "min_lr": self.min_lr, "weight_decay": self.weight_decay, "max_grad_norm": self.max_grad_norm,
                "dtype": self.dtype, "seed": self.seed, "bead_types": self.bead_types,
                "exclusions": [list(p) for p in self.exclusions], "dihedral_map": self.dihedral_map}

    def _model_config(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model.config.items()}

    def _make_scheduler(self, optimizer):
        import torch

        if self.lr_schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=self.lr_factor,
                                                              patience=self.lr_patience, min_lr=self.min_lr)
        if self.lr_schedule == "exponential":
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda epoch: max(self.lr_factor ** epoch, self.min_lr / self.lr))
        if self.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.max_epochs, eta_min=self.min_lr)
        return None

    def _forces(self, x, create_graph=False):
        _, forces = self.model.energy_and_forces(x, self.topology, create_graph=create_graph)
        if self._map is not None:
            forces = forces + self._map_forces(x, create_graph)
        return forces

    def _map_forces(self, x, create_graph=False):
        """Forces of the learned dihedral map (see ``dihedral_map``)."""
        import torch

        from .geometry import compute_dihedrals as _t_dihedrals

        with torch.enable_grad():
            positions = x.detach().requires_grad_(True)
            pairs = torch.as_tensor(self.map_pairs, device=x.device)
            phi = _t_dihedrals(positions, pairs[:, :4])
            psi = _t_dihedrals(positions, pairs[:, 1:])
            modes = torch.as_tensor(self.map_modes, dtype=x.dtype, device=x.device)
            argument = phi.unsqueeze(-1) * modes[:, 0] + psi.unsqueeze(-1) * modes[:, 1]
            energy = MAP_UNIT * (self._map[:, 0] * torch.cos(argument) + self._map[:, 1] * torch.sin(argument)).sum()
            (gradient,) = torch.autograd.grad(energy, positions, create_graph=create_graph)
        return -gradient if create_graph else -gradient.detach()

    def _init_map(self, dtype, device):
        import torch

        if not self.dihedral_map:
            self._map = None
            return []
        self._map = torch.zeros(len(self.map_pairs), 2, len(self.map_modes), dtype=dtype, device=device,
                                requires_grad=True)
        return [self._map]

    @property
    def dihedral_map_coefficients_(self):
        """The learned map: ``(cos, sin)`` coefficients in kJ/mol, each of shape (n_pairs, n_modes),
        for the five-bead tuples ``map_pairs`` and the modes ``map_modes``."""
        if self._map is None:
            zeros = np.zeros((len(self.map_pairs), len(self.map_modes)))
            return zeros, zeros.copy()
        values = MAP_UNIT * self._map.detach().to("cpu").double().numpy()
        return values[:, 0].copy(), values[:, 1].copy()

    def trained_priors(self) -> PriorSet:
        """The priors plus the learned dihedral map as their ``dihedral_map`` term (the priors
        themselves when ``dihedral_map`` is 0). A map the priors hold already, on the same bead
        tuples and of the same order, is added to."""
        if not self.dihedral_map:
            return self.priors
        cos, sin = self.dihedral_map_coefficients_
        existing = self.priors.terms.get("dihedral_map")
        if existing is not None:
            if existing.indices.tolist() != self.map_pairs.tolist() or existing.order != self.dihedral_map:
                raise ValueError("the priors hold a dihedral map on other beads or of another order than the one "
                                 "learned")
            cos, sin = cos + existing.parameters["cos"], sin + existing.parameters["sin"]
        others = [term for name, term in self.priors.terms.items() if name != "dihedral_map"]
        term = DihedralMap(self.map_pairs, cos=cos, sin=sin)
        return PriorSet(self.priors.n_beads, self.priors.bonds, others + [term], self.priors.temperature)

    def _mse(self, x, y) -> float:
        total = 0.0
        for start in range(0, len(x), self.eval_batch_size):
            forces = self._forces(x[start:start + self.eval_batch_size]).detach()
            total += float(((forces - y[start:start + self.eval_batch_size]) ** 2).sum())
        return total / y.numel()

    def _checkpoint_path(self):
        return None if self.checkpoint_dir is None else os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)

    def _save_checkpoint(self, state: dict) -> None:
        import torch

        # A kill while saving leaves the previous checkpoint intact.
        with atomic_write(self._checkpoint_path()) as handle:
            torch.save(state, handle)

    def _load_checkpoint(self, fingerprint: str):
        import torch

        path = self._checkpoint_path()
        if path is None or not self.resume or not os.path.exists(path):
            return None
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as error:
            raise ValueError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); delete it or "
                             "pass resume=False to start over") from error
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a force-matching checkpoint")
        if state["fingerprint"] != fingerprint:
            raise ValueError(f"checkpoint {path} was written for different data; use another checkpoint_dir or "
                             "resume=False")
        if state["model_config"] != self._model_config():
            raise ValueError(f"checkpoint {path} holds a model of another architecture ({state['model_config']}); "
                             "use another checkpoint_dir or resume=False")
        settings = self._settings()
        stored = {"dihedral_map": 0, **state["settings"]}  # checkpoints from before the dihedral map
        changed = sorted(k for k in settings if json.dumps(stored.get(k)) != json.dumps(settings[k]))
        if changed:
            raise ValueError(f"checkpoint {path} was written with different settings ({', '.join(changed)}); "
                             "use another checkpoint_dir or resume=False")
        return state

    def _load_data(self, coordinates, forces, trajectory_ids):
        if forces is None and isinstance(coordinates, (str, os.PathLike)):
            data = read_cg_dataset(coordinates)
            if data["n_beads"] != self.priors.n_beads:
                raise ValueError(f"dataset {coordinates} has {data['n_beads']} beads but the priors have "
                                 f"{self.priors.n_beads}: they describe different bead sets")
            if data["bead_types"] is not None and list(data["bead_types"]) != self.bead_types:
                raise ValueError(f"dataset {coordinates} has bead types {data['bead_types']} but the trainer was "
                                 f"given {self.bead_types}")
            return data["coordinates"], data["forces"], data["trajectory"]
        if forces is None:
            raise ValueError("fit needs forces (or a dataset path as its only argument)")
        return coordinates, forces, trajectory_ids

    # -------------------------------------------------------------------------- fit

    def fit(self, coordinates, forces=None, trajectory_ids=None) -> "ForceMatching":
        """Fit the network to mapped forces.

        Parameters
        ----------
        coordinates : array_like, shape (n_frames, n_beads, 3), or str
            CG coordinates in nm, or the path of a CG HDF5 dataset (then leave ``forces`` and
            ``trajectory_ids`` out; they are read from the file).
        forces : array_like, shape (n_frames, n_beads, 3)
            Mapped forces in kJ/mol/nm.
        trajectory_ids : array_like of int, shape (n_frames,), optional
            The run each frame comes from (default: one run).

        Returns
        -------
        self
        """
        import torch

        if self.num_threads is None:
            return self._fit(coordinates, forces, trajectory_ids)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            return self._fit(coordinates, forces, trajectory_ids)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, coordinates, forces=None, trajectory_ids=None) -> "ForceMatching":
        import torch

        coordinates, forces, trajectory_ids = self._load_data(coordinates, forces, trajectory_ids)
        x, f, t = check_force_data(coordinates, forces, trajectory_ids)
        if x.shape[1] != self.priors.n_beads:
            raise ValueError(f"the data have {x.shape[1]} beads but the priors have {self.priors.n_beads}: they "
                             "describe different bead sets")
        fingerprint = _fingerprint(x, f, t)
        if self.checkpoint_dir is not None:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
        state = self._load_checkpoint(fingerprint)

        if state is None:
            train_frames, val_frames, held_out = split_by_trajectory(t, self.validation_fraction, self.seed,
                                                                     self.validation_trajectories)
        else:
            train_frames, val_frames = np.asarray(state["train_frames"]), np.asarray(state["val_frames"])
            held_out = list(state["validation_trajectories"])
        if len(train_frames) == 0 or len(val_frames) == 0:
            raise ValueError(f"the split left {len(train_frames)} training and {len(val_frames)} validation frames; "
                             "both need at least one (check validation_fraction and validation_trajectories)")
        self.validation_trajectories_ = held_out
        self.n_train_frames_, self.n_validation_frames_ = len(train_frames), len(val_frames)

        # targets: what the network must add to the priors, computed once in float64
        _, prior_forces = self.priors.energy_and_forces(torch.as_tensor(x))
        target = f - prior_forces.numpy()
        dtype, device = self._torch_dtype, torch.device(self.device)
        self.model.to(dtype=dtype, device=device)
        x_train = torch.as_tensor(x[train_frames], dtype=dtype, device=device)
        y_train = torch.as_tensor(target[train_frames], dtype=dtype, device=device)
        x_val = torch.as_tensor(x[val_frames], dtype=dtype, device=device)
        y_val = torch.as_tensor(target[val_frames], dtype=dtype, device=device)

        extra = self._init_map(dtype, device)
        optimizer = torch.optim.Adam(list(self.model.parameters()) + extra, lr=self.lr, weight_decay=self.weight_decay)
        scheduler = self._make_scheduler(optimizer)
        history, best_val, best_epoch, bad_epochs = [], math.inf, 0, 0
        best_state = self._state()
        stopped_early = False
        if state is not None:
            self._load_state({"model": state["model"], "map": state.get("map")})
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            history = list(state["history"])
            best_val, best_epoch, bad_epochs = state["best_val_loss"], state["best_epoch"], state["bad_epochs"]
            best_state = {"model": state["best_model"], "map": state.get("best_map")}
            stopped_early = state["stopped_early"]

        def checkpoint():
            if self.checkpoint_dir is None:
                return
            self._save_checkpoint({
                "format": _CHECKPOINT_FORMAT, "fingerprint": fingerprint, "model_config": self._model_config(),
                "settings": self._settings(), "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None else scheduler.state_dict(), "history": history,
                "best_val_loss": best_val, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "best_model": best_state["model"], "stopped_early": stopped_early,
                "map": None if self._map is None else self._map.detach().clone(),
                "best_map": best_state["map"],
                "train_frames": torch.as_tensor(train_frames), "val_frames": torch.as_tensor(val_frames),
                "validation_trajectories": held_out,
            })
            write_loss_csv(history, os.path.join(self.checkpoint_dir, LOSS_CSV_NAME))

        bar = None
        if self.progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.max_epochs, initial=len(history), desc="force matching", unit="epoch")
        start_time = time.perf_counter()
        try:
            for epoch in range(len(history), self.max_epochs):
                if stopped_early:
                    break
                epoch_start = time.perf_counter()
                order = np.random.default_rng([self.seed, epoch]).permutation(len(train_frames))
                self.model.train()
                total, counted, skipped = 0.0, 0, 0
                parameters = [p for group in optimizer.param_groups for p in group["params"]]
                for start in range(0, len(order), self.batch_size):
                    batch = torch.as_tensor(order[start:start + self.batch_size], device=device)
                    predicted = self._forces(x_train[batch], create_graph=True)
                    loss = ((predicted - y_train[batch]) ** 2).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    # A step with a non-finite loss or gradient (an overflow in a second derivative)
                    # would turn every weight into NaN: skip it, and count it.
                    if not (torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in parameters
                                                         if p.grad is not None)):
                        skipped += 1
                        continue
                    if self.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
                    optimizer.step()
                    total += float(loss.detach()) * len(batch)
                    counted += len(batch)
                if skipped and not counted:
                    raise FloatingPointError(f"every batch of epoch {epoch + 1} had a non-finite loss or gradient; "
                                             "lower lr, set max_grad_norm, or check the data and priors")
                if skipped:
                    warnings.warn(f"epoch {epoch + 1}: skipped {skipped} batch(es) with a non-finite loss or gradient")
                self.model.eval()
                val_loss = self._mse(x_val, y_val)
                record = {"epoch": epoch + 1, "train_loss": total / counted if counted else math.nan,
                          "val_loss": val_loss, "lr": optimizer.param_groups[0]["lr"],
                          "time": time.perf_counter() - epoch_start, "skipped_batches": skipped}
                if not math.isfinite(val_loss):
                    raise FloatingPointError(f"the validation loss became {val_loss} in epoch {epoch + 1}; lower lr "
                                             "or set max_grad_norm")
                history.append(record)
                if scheduler is not None:
                    if self.lr_schedule == "plateau":
                        scheduler.step(val_loss)
                    else:
                        scheduler.step()
                if val_loss < best_val - self.min_delta:
                    best_val, best_epoch, bad_epochs = val_loss, epoch + 1, 0
                    best_state = self._state()
                else:
                    bad_epochs += 1
                    if self.patience is not None and bad_epochs >= self.patience:
                        stopped_early = True
                checkpoint()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(train=f"{record['train_loss']:.4g}", val=f"{val_loss:.4g}",
                                    lr=f"{record['lr']:.2g}")
                elif callable(self.progress):
                    self.progress(dict(record))
        finally:
            if bar is not None:
                bar.close()

        if not math.isfinite(best_val):
            raise FloatingPointError(f"no epoch gave a finite validation loss (best {best_val}); the model is not "
                                     "trained")
        self._load_state(best_state)
        self.history_ = history
        self.best_epoch_, self.best_val_loss_ = best_epoch, best_val
        self.stopped_early_ = stopped_early
        self.fit_time_ = time.perf_counter() - start_time
        if self.checkpoint_dir is not None:
            write_loss_csv(history, os.path.join(self.checkpoint_dir, LOSS_CSV_NAME))
            self._write_loss_png(os.path.join(self.checkpoint_dir, LOSS_PNG_NAME))
        return self

    def _state(self) -> dict:
        """Copies of what training changes: the network's weights and the dihedral map."""
        return {"model": copy.deepcopy(self.model.state_dict()),
                "map": None if self._map is None else self._map.detach().clone()}

    def _load_state(self, state: dict) -> None:
        import torch

        self.model.load_state_dict(state["model"])
        if self._map is not None and state.get("map") is not None:
            with torch.no_grad():
                self._map.copy_(torch.as_tensor(state["map"]))

    def _write_loss_png(self, path) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - matplotlib is a dependency of training
            warnings.warn("matplotlib is not installed: no loss plot written")
            return
        figure, ax = plt.subplots(figsize=(5, 3.5))
        plot_loss_curve(self.history_, ax=ax)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)

    # -------------------------------------------------------------------- inference

    def predict(self, coordinates) -> np.ndarray:
        """Total forces (priors + network) in float64, shape of ``coordinates``."""
        import torch

        x = np.asarray(coordinates, dtype=np.float64)
        _, prior_forces = self.priors.energy_and_forces(torch.as_tensor(x))
        parameter = next(self.model.parameters())
        xt = torch.as_tensor(x, dtype=parameter.dtype, device=parameter.device)
        learned = [self._forces(xt[s:s + self.eval_batch_size]).detach().to("cpu", torch.float64)
                   for s in range(0, len(xt), self.eval_batch_size)]
        return prior_forces.numpy() + torch.cat(learned).numpy()

    def score(self, coordinates, forces) -> float:
        """Mean squared error (per force component) of :meth:`predict` against ``forces``."""
        x, f, _ = check_force_data(coordinates, forces)
        return float(np.mean((self.predict(x) - f) ** 2))

    def to_cgmodel(self, bead_names=None, masses=None, temperature: Optional[float] = None, mapping=None,
                   metadata=None):
        """Bundle the trained network and the priors into a :class:`~openmmcgml.cgmodel.CGModel`.

        ``metadata`` is extended with the training summary (best epoch and losses, settings).
        """
        from .cgmodel import CGModel

        summary = {"force_matching": {"settings": self._settings(), "best_epoch": getattr(self, "best_epoch_", None),
                                      "dihedral_map": {"pairs": self.map_pairs.tolist(), "modes": self.map_modes,
                                                       "cos": self.dihedral_map_coefficients_[0].tolist(),
                                                       "sin": self.dihedral_map_coefficients_[1].tolist()},
                                      "best_val_loss": getattr(self, "best_val_loss_", None),
                                      "epochs": len(getattr(self, "history_", [])),
                                      "validation_trajectories": getattr(self, "validation_trajectories_", None)}}
        temperature = temperature or self.priors.temperature or 300.0
        return CGModel(model=self.model, priors=self.trained_priors(), bead_types=self.bead_types, bead_names=bead_names,
                       masses=masses, exclusions=self.exclusions, temperature=temperature, mapping=mapping or {},
                       metadata={**summary, **(metadata or {})})
