"""Force matching: training a CGSchNet on mapped all-atom forces.

The mapped forces ``F`` of CG frames ``x`` are noisy samples of the mean force, ``-grad`` of the
CG free energy.  Force matching fits the network energy ``U_net`` so that
``F_prior(x) + F_net(x)`` matches them in mean squared error::

    loss = mean over frames, beads and components of (F_net(x) - (F - F_prior(x)))^2

where ``F_prior`` are the forces of a fixed :class:`~openmmcgml.priors.PriorSet`.  The minimum of
the loss is the variance of the mapped forces around the mean force (the "noise"), so the
validation loss does not go to zero; it levels off at that noise.

:class:`ForceMatching` is an estimator in the manner of deeptime (:mod:`openmmcgml.estimator`):
the constructor takes the network, the priors and hyperparameters; :meth:`ForceMatching.fit`
trains on a CG dataset (a :class:`~openmmcgml.data.Trajectory`, the path of a CG HDF5 file as
``docs/data-format.md`` describes, or arrays) and returns the estimator;
:meth:`ForceMatching.fetch_model` returns the trained :class:`~openmmcgml.cgmodel.CGModel`, with
the dataset's beads, masses, temperature and mapping and a summary of the training in its
metadata.  Frames are split into training and validation sets by trajectory
(:func:`~openmmcgml.data.split_by_trajectory`), so that correlated frames of one run never sit on
both sides; ``validation_frames_`` reports the frames held out.  Checkpoints and progress bars are
callbacks: with :class:`~openmmcgml.estimator.TrainingCheckpoint` the state is saved after every
epoch and a new ``fit`` with the same data resumes where the last one stopped.

Examples
--------
>>> import numpy as np, torch
>>> from openmmcgml.data import Trajectory, TrajectoryMetadata
>>> from openmmcgml.models import CGSchNet
>>> from openmmcgml.priors import PriorSet, HarmonicBonds
>>> rng = np.random.default_rng(0)
>>> frames = Trajectory(np.cumsum(rng.normal(0.2, 0.05, size=(40, 4, 3)), axis=1), rng.normal(size=(40, 4, 3)),
...                     trajectory=np.repeat([0, 1, 2, 3], 10), masses=[12.0, 14.0, 14.0, 12.0],
...                     metadata=TrajectoryMetadata("coarse-grained", temperature=300.0,
...                                                 bead_names=["A", "B", "B", "A"], bead_types=[0, 1, 1, 0]))
>>> priors = PriorSet(4, terms=[HarmonicBonds([[0, 1], [1, 2], [2, 3]], k=[100.0] * 3, r0=[0.35] * 3)])
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> fm = ForceMatching(CGSchNet(2, 8, 8, 8, 1, cutoff=1.0), priors, bead_types=[0, 1, 1, 0],
...                    max_epochs=2, batch_size=8, num_threads=1)
>>> fm = fm.fit(frames, callbacks=[lambda record: print("epoch", record["epoch"])])
epoch 1
epoch 2
>>> sorted(fm.history_[0])
['epoch', 'lr', 'skipped_batches', 'time', 'train_loss', 'val_force_mse', 'val_loss']
>>> fm.validation_trajectories_, fm.validation_frames_.tolist() == list(range(30, 40))
([3], True)
>>> model = fm.fetch_model()
>>> model.bead_names, model.masses, model.temperature
(['A', 'B', 'B', 'A'], [12.0, 14.0, 14.0, 12.0], 300.0)
>>> model.metadata["force_matching"]["validation_frames"]
[[30, 40]]
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from .data.split import index_ranges, split_by_trajectory
from .data.trajectory import Trajectory, read_trajectory
from .estimator import Estimator, FitRun, ProgressBar, TrainingCheckpoint, plot_loss_curve, write_loss_csv
from .geometry import compute_dihedrals, generalized_force_operator
from .priors import DihedralMap, PriorSet, chain_internal_coordinates, dihedral_map_modes, dihedral_pairs

__all__ = ["ForceMatching", "ProgressBar", "TrainingCheckpoint", "check_force_data", "plot_loss_curve",
           "write_loss_csv"]

#: The dihedral-map coefficients are trained in units of this many kJ/mol: Adam moves a parameter
#: by about ``lr`` per step, so in these units a few hundred steps cover terms of a few kJ/mol.
MAP_UNIT = 10.0

#: The objectives of :class:`ForceMatching` (its ``loss``).
LOSSES = ("cartesian", "internal")

#: How :class:`ForceMatching` weights frames (its ``frame_weighting``).
FRAME_WEIGHTINGS = ("none", "dihedral_density")

LR_SCHEDULES = ("plateau", "exponential", "cosine", "constant")

#: Named exclusion sets (the ``exclusions`` argument of :class:`ForceMatching`).
EXCLUSIONS = ("bonds", "bonds+map")
_CHECKPOINT_FORMAT = "openmm-cgml-force-matching-checkpoint"


def dihedral_density_weights(coordinates, dihedrals, n_neighbours: int = 32, max_weight: float = 10.0):
    """Frame weights inversely proportional to the density of frames in the space of a chain's
    dihedrals, so that rarely visited regions (the barriers between basins) count in the loss as
    much as the basins.

    The density comes from the distance ``r_k`` to the ``n_neighbours``-th nearest frame in the
    space of ``(cos, sin)`` of every dihedral (``scipy.spatial.cKDTree``); the weight is
    ``r_k ** D`` (``D`` = the number of dihedrals, the dimension of the torus the frames lie on),
    normalised to a median of 1 and capped at ``max_weight`` (a few isolated frames must not carry
    the fit), then to a mean of 1.  Any positive
    weights leave the minimiser of force matching at the mean force; they change how much each
    region's noise and each region's misfit count.

    Returns
    -------
    ndarray, shape (n_frames,)
    """
    from scipy.spatial import cKDTree

    angles = compute_dihedrals(np.asarray(coordinates, dtype=np.float64), dihedrals)
    features = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    k = int(min(n_neighbours, len(features) - 1))
    if k < 1:
        return np.ones(len(features))
    distances, _ = cKDTree(features).query(features, k=k + 1)
    radius = np.maximum(distances[:, -1], 1e-12)
    log_weight = angles.shape[1] * np.log(radius)  # frames lie on a torus of one dimension per dihedral
    weights = np.exp(log_weight - np.median(log_weight))
    weights = np.minimum(weights, max_weight)
    return weights / weights.mean()


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


def _fingerprint(coordinates, forces, trajectory_ids) -> str:
    digest = hashlib.sha1()
    for array in (np.ascontiguousarray(coordinates, dtype=np.float32), np.ascontiguousarray(forces, dtype=np.float32),
                  np.ascontiguousarray(trajectory_ids, dtype=np.int64)):
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class _Run(FitRun):
    """A force-matching fit in progress: the split, the tensors, the optimiser and the best state."""

    train_frames: Any = None
    val_frames: Any = None
    held_out: Any = None
    x_train: Any = None
    y_train: Any = None
    x_val: Any = None
    y_val: Any = None
    optimizer: Any = None
    scheduler: Any = None
    best_state: Any = None


class ForceMatching(Estimator):
    """Train a :class:`~openmmcgml.models.CGSchNet` by force matching on top of fixed priors.

    Parameters
    ----------
    model : CGSchNet
        The network to train (in place; it is converted to ``dtype`` and ``device``).
    priors : PriorSet
        Fixed prior terms of the molecule; their forces are subtracted from the data.
    bead_types : sequence of int
        Bead type of each of the ``priors.n_beads`` beads.
    exclusions : "bonds", "bonds+map", sequence of (int, int) or None
        Bead pairs the network leaves out: ``"bonds"`` (default) the pairs of ``priors.bonds``;
        ``"bonds+map"`` those and the 1-4 and 1-5 pairs of every tuple of the dihedral map, whose
        distances are functions of the mapped dihedrals, so that the (phi, psi) free energy is the
        map's alone (a few hundred coefficients instead of the whole network: far less variance;
        docs/training.md); None or ``[]`` none.
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
        Fraction of trajectories held out (see :func:`~openmmcgml.data.split_by_trajectory`).
    validation_trajectories : sequence of int, optional
        Held-out trajectory ids, instead of a random choice.
    dtype : {"float32", "float64"}
        Training precision; float32 is several times faster, float64 for checks.
    device : str
        A torch device, e.g. ``"cpu"`` or ``"cuda"``.
    seed : int
        Seeds the split and the order of frames of each epoch (a resumed run repeats the same
        batches as an uninterrupted one).
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
        learned from forces like the network, never fitted to a histogram; :meth:`fetch_model` puts
        it into the priors as their ``dihedral_map`` term (OpenMM ``CustomCompoundBondForce``).
    loss : {"cartesian", "internal"}
        The objective. ``"cartesian"``: the MSE per Cartesian force component. ``"internal"``: the
        forces are turned into generalized forces along the chain's ``3 n - 6`` internal
        coordinates (bond lengths, angles, dihedrals; :func:`~openmmcgml.geometry.generalized_force_operator`),
        and each coordinate's squared error is divided by the variance of its target over the
        training frames. Both are minimised by the mean force, so both are force matching; they
        differ in what the noise does. Mapped forces are noisiest along the stiff bonds (alanine
        dipeptide: generalized-force spread about 160 kJ/mol/nm on bonds against about 30
        kJ/mol/rad on phi and psi), and under the Cartesian MSE that noise swamps the torques that
        set the free energy of phi and psi: a torsion landscape entirely wrong costs under 1 % of
        the loss. Weighted per coordinate, each one counts in units of its own noise. Needs priors
        whose bonds join the beads into one unbranched chain (docs/training.md).

    Attributes
    ----------
    history_ : list of dict
        One record per epoch: ``epoch`` (1-based), ``train_loss`` (mean of the epoch's batch
        losses), ``val_loss`` (the objective on the validation frames after the epoch),
        ``val_force_mse`` (their MSE per force component, equal to ``val_loss`` for
        ``loss="cartesian"``), ``lr``, ``time`` (s), ``skipped_batches`` (steps left out because
        their loss or gradient was not finite).
    best_epoch_ : int
        Epoch of the lowest validation loss; the model holds its weights after ``fit``.
    best_val_loss_ : float
    best_val_force_mse_ : float
        The validation force MSE at ``best_epoch_`` (kJ/mol/nm)^2.
    internal_force_std_ : ndarray
        With ``loss="internal"``: the spread of each internal coordinate's target generalized force
        over the training frames (the inverse square roots of the weights).
    stopped_early_ : bool
    validation_trajectories_ : list of int
        The held-out trajectory ids (empty for a time split of a single run).
    validation_frames_ : ndarray of int64
        The validation frames, as indices into the frames given to :meth:`fit` (ascending).
    n_train_frames_, n_validation_frames_ : int

    Examples
    --------
    See the module docstring.
    """

    description = "force matching"

    def __init__(self, model, priors: PriorSet, bead_types, exclusions: Union[str, Sequence, None] = "bonds", *,
                 lr: float = 1e-3, batch_size: int = 32, max_epochs: int = 100, patience: Optional[int] = 10,
                 min_delta: float = 0.0, lr_schedule: str = "plateau", lr_factor: float = 0.5,
                 lr_patience: int = 3, min_lr: float = 1e-6, weight_decay: float = 0.0,
                 max_grad_norm: Optional[float] = None, validation_fraction: float = 0.2,
                 validation_trajectories: Optional[Sequence[int]] = None, dtype: str = "float32",
                 device: str = "cpu", seed: int = 0, eval_batch_size: int = 256,
                 num_threads: Optional[int] = None, dihedral_map: int = 0, loss: str = "cartesian",
                 frame_weighting: str = "none"):
        from .models import CGSchNet, CGTopology

        if not isinstance(model, CGSchNet):
            raise TypeError(f"model must be a CGSchNet (got {type(model).__name__})")
        if not isinstance(priors, PriorSet):
            raise TypeError(f"priors must be a PriorSet (got {type(priors).__name__})")
        self.model = model
        self.priors = priors
        if isinstance(dihedral_map, bool) or int(dihedral_map) != dihedral_map or dihedral_map < 0:
            raise ValueError(f"dihedral_map must be a non-negative integer (got {dihedral_map!r})")
        self.dihedral_map = int(dihedral_map)
        self.map_pairs = (dihedral_pairs(priors.n_beads, priors.bonds) if self.dihedral_map
                          else np.zeros((0, 5), dtype=np.int64))
        if self.dihedral_map and len(self.map_pairs) == 0:
            raise ValueError("dihedral_map needs two dihedrals that share three beads, and the priors' bond graph "
                             "has none")
        if isinstance(exclusions, str):
            exclusions = self._named_exclusions(exclusions)
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
        self.seed = int(seed)
        self.eval_batch_size = int(eval_batch_size)
        if num_threads is not None and (int(num_threads) != num_threads or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None (got {num_threads!r})")
        self.num_threads = None if num_threads is None else int(num_threads)
        self.map_modes = dihedral_map_modes(self.dihedral_map)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
        self.loss = loss
        if frame_weighting not in FRAME_WEIGHTINGS:
            raise ValueError(f"unknown frame_weighting {frame_weighting!r}; choose one of {FRAME_WEIGHTINGS}")
        self.frame_weighting = frame_weighting
        self.internal_coordinates = None
        if loss == "internal" or frame_weighting != "none":
            try:
                self.internal_coordinates = chain_internal_coordinates(priors.n_beads, priors.bonds)
            except ValueError as error:
                raise ValueError(f"loss='internal' and frame_weighting need priors whose bonds join the beads into one "
                                 f"unbranched chain ({error}); use loss='cartesian' and no frame weighting") from error
        self._map = None
        self._described = None

    # ---------------------------------------------------------------------- helpers

    def _named_exclusions(self, name: str) -> list:
        """The pairs of ``exclusions="bonds"`` or ``"bonds+map"``."""
        if name not in EXCLUSIONS:
            raise ValueError(f"exclusions must be one of {EXCLUSIONS}, a list of pairs or None (got {name!r})")
        pairs = [tuple(b) for b in self.priors.bonds.tolist()]
        if name == "bonds+map":
            if not self.dihedral_map:
                raise ValueError("exclusions='bonds+map' leaves the dihedral map's pairs to the map, and there is no "
                                 "map: set dihedral_map")
            seen = {tuple(sorted(p)) for p in pairs}
            for i, j, k, l, m in self.map_pairs.tolist():
                for pair in ((i, l), (j, m), (i, m)):
                    if tuple(sorted(pair)) not in seen:
                        seen.add(tuple(sorted(pair)))
                        pairs.append(pair)
        return pairs

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
                "exclusions": [list(p) for p in self.exclusions], "dihedral_map": self.dihedral_map,
                "loss": self.loss, "frame_weighting": self.frame_weighting}

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

        with torch.enable_grad():
            positions = x.detach().requires_grad_(True)
            pairs = torch.as_tensor(self.map_pairs, device=x.device)
            phi = compute_dihedrals(positions, pairs[:, :4])
            psi = compute_dihedrals(positions, pairs[:, 1:])
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

    # ------------------------------------------------------------------------- data

    def _load_data(self, data, forces, trajectory_ids):
        """Coordinates, forces, run ids and what the data say about the beads (None for arrays)."""
        if isinstance(data, (str, os.PathLike)):
            if forces is not None or trajectory_ids is not None:
                raise ValueError("fit takes a dataset path alone (its forces and trajectories come from the file)")
            data = read_trajectory(data, resolution="coarse-grained")
        if not isinstance(data, Trajectory):
            if forces is None:
                raise ValueError("fit needs forces with coordinates (or a Trajectory or a dataset path alone)")
            return data, forces, trajectory_ids, None
        if forces is not None or trajectory_ids is not None:
            raise ValueError("fit takes a Trajectory alone (its forces and trajectories come with it)")
        metadata = data.metadata
        source = data.source or {}
        name = f"dataset {source['path']}" if source.get("path") else "the trajectory"
        if metadata is not None and metadata.resolution != "coarse-grained":
            raise ValueError(f"{name} has resolution {metadata.resolution!r}; force matching needs a coarse-grained "
                             "one (map it with openmmcgml.mapping first)")
        if data.n_particles != self.priors.n_beads:
            raise ValueError(f"{name} has {data.n_particles} beads but the priors have {self.priors.n_beads}: they "
                             "describe different bead sets")
        if metadata is not None and metadata.bead_types is not None and list(metadata.bead_types) != self.bead_types:
            raise ValueError(f"{name} has bead types {metadata.bead_types} but the trainer was given {self.bead_types}")
        temperature = None if metadata is None else metadata.temperature
        described = {
            "bead_names": None if metadata is None else metadata.bead_names,
            "masses": None if data.masses is None else [float(m) for m in data.masses],
            "temperature": temperature if temperature is not None and math.isfinite(temperature) else None,
            "mapping": None if metadata is None else metadata.mapping,
            "provenance": {"dataset": source.get("path"), "system": (metadata.system or None) if metadata else None,
                           "sequence": (metadata.sequence or None) if metadata else None,
                           "stride": source.get("stride")},
        }
        return data.coordinates, data.forces, data.trajectory, described

    # -------------------------------------------------------------------------- fit

    def fit(self, data, forces=None, trajectory_ids=None, *, callbacks: Sequence = ()) -> "ForceMatching":
        """Fit the network (and the dihedral map) to mapped forces; returns the estimator.

        Parameters
        ----------
        data : Trajectory, str or path-like, or array_like
            Coarse-grained frames with forces: a :class:`~openmmcgml.data.Trajectory` (as
            :func:`~openmmcgml.data.read_trajectory` returns it), the path of a CG HDF5 dataset
            (``docs/data-format.md``; read whole), or coordinates in nm of shape
            ``(n_frames, n_beads, 3)`` with ``forces`` and ``trajectory_ids``.  A Trajectory or a
            file also give :meth:`fetch_model` the beads' names and masses, the temperature and
            the mapping.
        forces : array_like, shape (n_frames, n_beads, 3), optional
            Mapped forces in kJ/mol/nm, with coordinates only.
        trajectory_ids : array_like of int, shape (n_frames,), optional
            The run each frame comes from, with coordinates only (default: one run).
        callbacks : sequence of Callback or callable
            Called during the fit (:mod:`openmmcgml.estimator`): e.g.
            :class:`~openmmcgml.estimator.TrainingCheckpoint` (save every epoch, resume),
            :class:`~openmmcgml.estimator.ProgressBar`; a plain callable is called with each
            epoch's record (a dict with ``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``time``).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For data that do not fit the priors and bead types, or a checkpoint of other data or
            settings.
        FloatingPointError
            If every batch of an epoch, or the validation, gives a non-finite loss.
        """
        import torch

        if self.num_threads is None:
            return self._fit(data, forces, trajectory_ids, callbacks)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            return self._fit(data, forces, trajectory_ids, callbacks)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, data, forces, trajectory_ids, callbacks) -> "ForceMatching":
        coordinates, forces, trajectory_ids, described = self._load_data(data, forces, trajectory_ids)
        x, f, t = check_force_data(coordinates, forces, trajectory_ids)
        if x.shape[1] != self.priors.n_beads:
            raise ValueError(f"the data have {x.shape[1]} beads but the priors have {self.priors.n_beads}: they "
                             "describe different bead sets")
        callbacks = self._prepare_callbacks(callbacks)
        run = _Run(max_epochs=self.max_epochs, fingerprint=_fingerprint(x, f, t))
        self._start(run, x, f, t, self._restore(callbacks, run))
        self._described = described
        start_time = time.perf_counter()
        try:
            self._notify(callbacks, "on_fit_start", run)
            for epoch in range(run.epochs_done, self.max_epochs):
                if run.stopped_early:
                    break
                epoch_start = time.perf_counter()
                train_loss, skipped = self._epoch_step(run, epoch)
                val_loss = self._validation_step(run)
                record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                          "val_force_mse": run.val_force_mse,
                          "lr": run.optimizer.param_groups[0]["lr"], "time": time.perf_counter() - epoch_start,
                          "skipped_batches": skipped}
                if not math.isfinite(val_loss):
                    raise FloatingPointError(f"the validation loss became {val_loss} in epoch {epoch + 1}; lower lr "
                                             "or set max_grad_norm")
                run.history.append(record)
                self._end_epoch(run, val_loss)
                self._notify(callbacks, "on_epoch_end", run)
            if not math.isfinite(run.best_loss):
                raise FloatingPointError(f"no epoch gave a finite validation loss (best {run.best_loss}); the model is "
                                         "not trained")
            self._load_state(run.best_state)
            self.history_ = run.history
            self.best_epoch_, self.best_val_loss_ = run.best_epoch, run.best_loss
            best = [r for r in run.history if r["epoch"] == run.best_epoch]
            self.best_val_force_mse_ = float(best[0].get("val_force_mse", run.best_loss)) if best else run.best_loss
            self.stopped_early_ = run.stopped_early
            self.fit_time_ = time.perf_counter() - start_time
            run.completed = True
        finally:
            self._notify(callbacks, "on_fit_end", run)
        return self

    def _start(self, run: _Run, x, f, t, saved: Optional[dict]) -> None:
        """Split the frames (or take a checkpoint's split), build tensors, optimiser and schedule,
        and restore a checkpoint's state."""
        import torch

        if saved is None:
            run.train_frames, run.val_frames, run.held_out = split_by_trajectory(
                t, self.validation_fraction, self.seed, self.validation_trajectories)
        else:
            run.train_frames, run.val_frames = np.asarray(saved["train_frames"]), np.asarray(saved["val_frames"])
            run.held_out = list(saved["validation_trajectories"])
        if len(run.train_frames) == 0 or len(run.val_frames) == 0:
            raise ValueError(f"the split left {len(run.train_frames)} training and {len(run.val_frames)} validation "
                             "frames; both need at least one (check validation_fraction and validation_trajectories)")
        self.validation_trajectories_ = run.held_out
        self.validation_frames_ = np.asarray(run.val_frames, dtype=np.int64)
        self.n_train_frames_, self.n_validation_frames_ = len(run.train_frames), len(run.val_frames)

        # targets: what the network must add to the priors, computed once in float64
        _, prior_forces = self.priors.energy_and_forces(torch.as_tensor(x))
        target = f - prior_forces.numpy()
        dtype, device = self._torch_dtype, torch.device(self.device)
        self.model.to(dtype=dtype, device=device)
        run.x_train = torch.as_tensor(x[run.train_frames], dtype=dtype, device=device)
        run.y_train = torch.as_tensor(target[run.train_frames], dtype=dtype, device=device)
        run.x_val = torch.as_tensor(x[run.val_frames], dtype=dtype, device=device)
        run.y_val = torch.as_tensor(target[run.val_frames], dtype=dtype, device=device)
        if self.loss == "internal":
            self._prepare_internal_loss(run, x, target)
        run.w_train = run.w_val = None
        if self.frame_weighting != "none":
            weights = dihedral_density_weights(x, self.internal_coordinates[2])
            run.w_train = torch.as_tensor(weights[run.train_frames], dtype=dtype, device=device)
            run.w_val = torch.as_tensor(weights[run.val_frames], dtype=dtype, device=device)

        extra = self._init_map(dtype, device)
        run.optimizer = torch.optim.Adam(list(self.model.parameters()) + extra, lr=self.lr,
                                         weight_decay=self.weight_decay)
        run.scheduler = self._make_scheduler(run.optimizer)
        run.best_state = self._state()
        if saved is not None:
            self._load_state({"model": saved["model"], "map": saved.get("map")})
            run.optimizer.load_state_dict(saved["optimizer"])
            if run.scheduler is not None:
                run.scheduler.load_state_dict(saved["scheduler"])
            run.history = list(saved["history"])
            run.best_loss, run.best_epoch = saved["best_val_loss"], saved["best_epoch"]
            run.bad_epochs = saved["bad_epochs"]
            run.best_state = {"model": saved["best_model"], "map": saved.get("best_map")}
            run.stopped_early = saved["stopped_early"]

    def _prepare_internal_loss(self, run: _Run, x, target) -> None:
        """Generalized-force operators of the training and validation frames, and the weight of each
        internal coordinate: the inverse variance of its target generalized force over the training
        frames."""
        import torch

        dtype, device = self._torch_dtype, torch.device(self.device)
        operators = {}
        for name, frames in (("train", run.train_frames), ("val", run.val_frames)):
            operators[name] = generalized_force_operator(x[frames], *self.internal_coordinates)
        generalized = torch.einsum("fij,fj->fi", operators["train"],
                                   torch.as_tensor(target[run.train_frames]).reshape(len(run.train_frames), -1))
        variance = generalized.var(0) if len(run.train_frames) > 1 else generalized.pow(2).mean(0)
        if not bool(torch.isfinite(variance).all()) or bool((variance <= 0).any()):
            raise ValueError("an internal coordinate's generalized force does not vary over the training frames; "
                             "use loss='cartesian'")
        run.g_train = operators["train"].to(dtype=dtype, device=device)
        run.g_val = operators["val"].to(dtype=dtype, device=device)
        run.loss_weights = (1.0 / variance).to(dtype=dtype, device=device)
        self.internal_force_std_ = variance.sqrt().numpy()

    def _frame_losses(self, run: _Run, predicted, target, operators):
        """Each frame's term of the objective: its MSE per force component (``loss='cartesian'``), or
        the mean over internal coordinates of the weighted squared errors of its generalized forces
        (``loss='internal'``)."""
        import torch

        residual = (predicted - target).reshape(len(predicted), -1)
        if self.loss == "cartesian":
            return (residual ** 2).mean(1)
        generalized = torch.einsum("fij,fj->fi", operators, residual)
        return (generalized ** 2 * run.loss_weights).mean(1)

    def _loss(self, run: _Run, predicted, target, operators, frame_weights=None):
        """The objective of a batch: the mean of :meth:`_frame_losses`, weighted by ``frame_weights``
        where given."""
        losses = self._frame_losses(run, predicted, target, operators)
        if frame_weights is None:
            return losses.mean()
        return (losses * frame_weights).sum() / frame_weights.sum()

    def _epoch_step(self, run: _Run, epoch: int):
        """One pass over the training frames in batches; returns (mean training loss, skipped batches)."""
        import torch

        order = np.random.default_rng([self.seed, epoch]).permutation(len(run.train_frames))
        self.model.train()
        total, counted, skipped = 0.0, 0, 0
        parameters = [p for group in run.optimizer.param_groups for p in group["params"]]
        for start in range(0, len(order), self.batch_size):
            batch = torch.as_tensor(order[start:start + self.batch_size], device=run.x_train.device)
            predicted = self._forces(run.x_train[batch], create_graph=True)
            loss = self._loss(run, predicted, run.y_train[batch], run.g_train[batch] if self.loss == "internal" else None,
                              None if run.w_train is None else run.w_train[batch])
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # A step with a non-finite loss or gradient (an overflow in a second derivative)
            # would turn every weight into NaN: skip it, and count it.
            if not (torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in parameters
                                                 if p.grad is not None)):
                skipped += 1
                continue
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
            run.optimizer.step()
            total += float(loss.detach()) * len(batch)
            counted += len(batch)
        if skipped and not counted:
            raise FloatingPointError(f"every batch of epoch {epoch + 1} had a non-finite loss or gradient; "
                                     "lower lr, set max_grad_norm, or check the data and priors")
        if skipped:
            warnings.warn(f"epoch {epoch + 1}: skipped {skipped} batch(es) with a non-finite loss or gradient")
        return (total / counted if counted else math.nan), skipped

    def _validation_step(self, run: _Run) -> float:
        """The objective on the validation frames; also keeps their force MSE (``run.val_force_mse``),
        which is the objective itself for an unweighted Cartesian loss."""
        self.model.eval()
        plain_mse = self.loss == "cartesian" and run.w_val is None
        weighted, weight_total, squared = 0.0, 0.0, 0.0
        for start in range(0, len(run.x_val), self.eval_batch_size):
            stop = start + self.eval_batch_size
            forces = self._forces(run.x_val[start:stop]).detach()
            squared += float(((forces - run.y_val[start:stop]) ** 2).sum())
            if plain_mse:
                continue
            losses = self._frame_losses(run, forces, run.y_val[start:stop],
                                        run.g_val[start:stop] if self.loss == "internal" else None)
            weights = losses.new_ones(losses.shape) if run.w_val is None else run.w_val[start:stop]
            weighted += float((losses * weights).sum())
            weight_total += float(weights.sum())
        run.val_force_mse = squared / run.y_val.numel()
        return run.val_force_mse if plain_mse else weighted / weight_total

    def _end_epoch(self, run: _Run, val_loss: float) -> None:
        """Learning-rate schedule, best state and early stopping after an epoch."""
        if run.scheduler is not None:
            if self.lr_schedule == "plateau":
                run.scheduler.step(val_loss)
            else:
                run.scheduler.step()
        if val_loss < run.best_loss - self.min_delta:
            run.best_loss, run.best_epoch, run.bad_epochs = val_loss, run.epochs_done, 0
            run.best_state = self._state()
        else:
            run.bad_epochs += 1
            if self.patience is not None and run.bad_epochs >= self.patience:
                run.stopped_early = True

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_state(self, run: _Run) -> dict:
        """The training state :class:`~openmmcgml.estimator.TrainingCheckpoint` saves after an epoch."""
        import torch

        return {
            "format": _CHECKPOINT_FORMAT, "fingerprint": run.fingerprint, "model_config": self._model_config(),
            "settings": self._settings(), "model": self.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": None if run.scheduler is None else run.scheduler.state_dict(), "history": run.history,
            "best_val_loss": run.best_loss, "best_epoch": run.best_epoch, "bad_epochs": run.bad_epochs,
            "best_model": run.best_state["model"], "stopped_early": run.stopped_early,
            "map": None if self._map is None else self._map.detach().clone(),
            "best_map": run.best_state["map"],
            "train_frames": torch.as_tensor(run.train_frames), "val_frames": torch.as_tensor(run.val_frames),
            "validation_trajectories": run.held_out,
        }

    def check_checkpoint(self, state: dict, run: _Run, path: str) -> None:
        """Refuse a checkpoint of other data, another architecture or other settings (``max_epochs``
        may differ)."""
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a force-matching checkpoint")
        if state["fingerprint"] != run.fingerprint:
            raise ValueError(f"checkpoint {path} was written for different data; use another checkpoint_dir or "
                             "resume=False")
        if state["model_config"] != self._model_config():
            raise ValueError(f"checkpoint {path} holds a model of another architecture ({state['model_config']}); "
                             "use another checkpoint_dir or resume=False")
        settings = self._settings()
        stored = {"dihedral_map": 0, "loss": "cartesian", "frame_weighting": "none", **state["settings"]}  # checkpoints before these settings
        changed = sorted(k for k in settings if json.dumps(stored.get(k)) != json.dumps(settings[k]))
        if changed:
            raise ValueError(f"checkpoint {path} was written with different settings ({', '.join(changed)}); "
                             "use another checkpoint_dir or resume=False")

    # ------------------------------------------------------------------------ state

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


    def fetch_model(self, *, bead_names=None, masses=None, temperature: Optional[float] = None, mapping=None,
                    metadata=None):
        """The trained network and the priors as a :class:`~openmmcgml.cgmodel.CGModel`.

        The beads' names and masses, the temperature and the mapping come from the dataset that
        :meth:`fit` was given; arguments given here take their place (and stand in where the
        data had none; fitted on arrays, the defaults of CGModel).  The temperature falls back
        to the priors' and then to 300 K.  The network is copied, so a later ``fit`` leaves the
        returned model as it is.

        Parameters
        ----------
        bead_names : list of str, optional
        masses : float or list of float, optional
            amu.
        temperature : float, optional
            K.
        mapping : dict, optional
        metadata : dict, optional
            Added to the model's metadata, which holds ``force_matching`` (settings, best epoch
            and validation loss, epochs, held-out trajectories, ``validation_frames`` as
            half-open ranges ``[[start, stop], ...]`` of frame indices of the fitted data, the
            learned dihedral map), where the data came from (``dataset``, ``system``,
            ``sequence``, ``stride``; with a Trajectory or a file) and the network's
            architecture (``model``).

        Returns
        -------
        CGModel

        Raises
        ------
        RuntimeError
            Before :meth:`fit`.
        """
        from .cgmodel import CGModel

        if not hasattr(self, "history_"):
            raise RuntimeError("this ForceMatching has not been fitted: call fit(dataset) first")
        described = self._described or {}
        summary = {"force_matching": {"settings": self._settings(), "best_epoch": self.best_epoch_,
                                      "dihedral_map": {"pairs": self.map_pairs.tolist(), "modes": self.map_modes,
                                                       "cos": self.dihedral_map_coefficients_[0].tolist(),
                                                       "sin": self.dihedral_map_coefficients_[1].tolist()},
                                      "best_val_loss": self.best_val_loss_,
                                      "best_val_force_mse": getattr(self, "best_val_force_mse_", self.best_val_loss_),
                                      "epochs": len(self.history_),
                                      "validation_trajectories": self.validation_trajectories_,
                                      "validation_frames": index_ranges(self.validation_frames_)}}
        summary.update(described.get("provenance") or {})
        summary["model"] = self._model_config()
        temperature = temperature or described.get("temperature") or self.priors.temperature or 300.0
        return CGModel(model=copy.deepcopy(self.model), priors=self.trained_priors(), bead_types=self.bead_types,
                       bead_names=bead_names if bead_names is not None else described.get("bead_names"),
                       masses=masses if masses is not None else described.get("masses"),
                       exclusions=self.exclusions, temperature=temperature,
                       mapping=mapping if mapping is not None else (described.get("mapping") or {}),
                       metadata={**summary, **(metadata or {})})
