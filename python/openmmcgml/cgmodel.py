"""A trained coarse-grained model in one file: network, priors, beads and mapping.

:class:`CGModel` bundles everything a CG simulation needs: the learned :class:`CGSchNet`, the
:class:`~openmmcgml.priors.PriorSet` it was trained on top of, the bead types, names and masses
of one molecule, the pairs excluded from the learned force, the temperature of the training data
and the AA -> CG mapping.  It builds the OpenMM forces for any number of replicas of the molecule.

File format
-----------
:meth:`CGModel.save` writes one ``torch.save`` archive (a zip file; ``.pt`` by convention) holding
a dictionary::

    format          "openmm-cgml-model"
    format_version  2
    model_config    CGSchNet.config (architecture); None for a priors-only model
    state_dict      the network's weights (in the dtype they were trained in); {} without a network
    priors          PriorSet.to_dict()
    bead_types, bead_names, masses, exclusions, temperature
    mapping, metadata   JSON strings
    bias            Discriminator.to_dict() of the teacher's bias, or None (new in version 2)

Version-1 files (no ``bias``) still load.

It is read back with ``torch.load(..., weights_only=True)``: loading a model file never runs code.

Examples
--------
>>> import tempfile, os
>>> from openmmcgml.models import CGSchNet
>>> from openmmcgml.priors import PriorSet, HarmonicBonds
>>> priors = PriorSet(3, terms=[HarmonicBonds([[0, 1], [1, 2]], k=[2e3, 2e3], r0=[0.38, 0.38])])
>>> cg = CGModel(CGSchNet(2, 8, 8, 4, 1, cutoff=1.0), priors, bead_types=[0, 1, 0],
...              bead_names=["A", "B", "A"], masses=[110.0] * 3, temperature=300.0)
>>> cg.exclusions
[(0, 1), (1, 2)]
>>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
>>> cg.save(path)
>>> CGModel.load(path).bead_names
['A', 'B', 'A']
>>> [f.getName() for f in cg.prior_forces(n_replicas=2)]
['CGPrior:bonds']

The priors alone, as a baseline that a trained model should beat (no learned force):

>>> baseline = cg.priors_only()
>>> baseline.model is None, baseline.learned_force(2) is None, baseline.create_system(2).getNumForces()
(True, True, 1)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._atomic import atomic_write
from .data.trajectory import TrajectoryInfo
from .priors import PriorSet

__all__ = ["CGModel", "CGModelFileError", "BeadSetMismatchError"]

_FORMAT = "openmm-cgml-model"
_FORMAT_VERSION = 2


class CGModelFileError(ValueError):
    """A model file is not a readable openmm-cgml model file."""


class BeadSetMismatchError(ValueError):
    """A model is used with data (or a system) made of a different set of beads."""


def _json_roundtrip(value, what):
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON-serialisable ({error})") from error


@dataclass
class CGModel:
    """A trained CG model of one molecule: learned network + priors + bead description.

    Parameters
    ----------
    model : CGSchNet or None
        The learned network (its energy is added to the priors'); None for a priors-only model
        (see :meth:`priors_only`), the baseline a trained network is compared with.
    priors : PriorSet
        Prior terms of the molecule; ``priors.n_beads`` is the number of beads.
    bead_types : list of int
        Type of each bead, in ``[0, model.n_types)``.
    bead_names : list of str, optional
        A name per bead (e.g. ``"CA:TYR1"``); default ``"B<i>"``.
    masses : list of float, optional
        Bead masses in amu; default 100 amu each.  Masses do not change the equilibrium
        distribution, only the dynamics.
    exclusions : list of (int, int), optional
        Bead pairs the learned force leaves out.  Default (None): the bonded pairs of
        ``priors.bonds``, which the bond prior describes; ``[]`` for none.
    temperature : float
        Kelvin; the temperature of the training data (the model is a free energy at it).
    mapping : dict
        The AA -> CG map as written by :mod:`openmmcgml.mapping` (kept as opaque JSON).
    metadata : dict
        Anything JSON-serialisable: data provenance, training settings, losses.
    bias : Discriminator, optional
        A teacher's bias (:class:`~openmmcgml.models.Discriminator`, features on this molecule's
        beads): its energy ``-kT logit`` is added to the model's, and
        :meth:`create_system` adds it as a ``DiscriminatorBiasForce`` (force group 2).

    Raises
    ------
    ValueError
        If the bead lists disagree in length with ``priors.n_beads``, a type is out of range,
        a mass is not positive, or an exclusion is invalid.
    """

    model: "object"
    priors: PriorSet
    bead_types: list
    bead_names: Optional[list] = None
    masses: Optional[list] = None
    exclusions: Optional[list] = None
    temperature: float = 300.0
    mapping: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    bias: "object" = None

    def __post_init__(self):
        from .models import CGSchNet, Discriminator

        if self.bias is not None and not isinstance(self.bias, Discriminator):
            raise TypeError(f"bias must be a Discriminator or None (got {type(self.bias).__name__})")

        if self.model is not None and not isinstance(self.model, CGSchNet):
            raise TypeError(f"model must be a CGSchNet or None (got {type(self.model).__name__})")
        if not isinstance(self.priors, PriorSet):
            raise TypeError(f"priors must be a PriorSet (got {type(self.priors).__name__})")
        n = self.priors.n_beads
        types = np.asarray(self.bead_types)
        if types.ndim != 1 or (types.size and types.dtype.kind not in "iu"):
            raise ValueError(f"bead_types must be a list of integers (got {self.bead_types!r})")
        if len(types) != n:
            raise ValueError(f"bead_types lists {len(types)} beads but the priors have {n}")
        n_types = self.model.n_types if self.model is not None else int(types.max(initial=-1)) + 1
        bad = np.flatnonzero((types < 0) | (types >= n_types))
        if len(bad):
            raise ValueError(f"bead type {types[bad[0]]} of bead {bad[0]} is out of range [0, {n_types}) "
                             "of the model")
        self.bead_types = [int(t) for t in types]
        names = [f"B{i}" for i in range(n)] if self.bead_names is None else [str(b) for b in self.bead_names]
        if len(names) != n:
            raise ValueError(f"bead_names lists {len(names)} beads but the priors have {n}")
        self.bead_names = names
        if self.masses is None:
            masses = [100.0] * n
        elif np.ndim(self.masses) == 0:
            masses = [float(self.masses)] * n
        else:
            masses = [float(m) for m in self.masses]
        if len(masses) != n:
            raise ValueError(f"masses lists {len(masses)} beads but the priors have {n}")
        if not all(math.isfinite(m) and m > 0 for m in masses):
            raise ValueError(f"masses must be positive and finite (got {masses})")
        self.masses = masses
        if self.exclusions is None:
            exclusions = [tuple(sorted(map(int, b))) for b in self.priors.bonds.tolist()]
        else:
            exclusions = [tuple(sorted(map(int, pair))) for pair in self.exclusions]
        from .models import CGTopology

        CGTopology(self.bead_types, exclusions=exclusions or None)  # validates range and duplicates
        self.exclusions = exclusions
        if not (self.temperature > 0):
            raise ValueError(f"temperature must be positive (got {self.temperature})")
        self.temperature = float(self.temperature)
        self.mapping = _json_roundtrip(self.mapping or {}, "mapping")
        self.metadata = _json_roundtrip(self.metadata or {}, "metadata")
        if self.bias is not None and self.bias.features.n_beads > n:
            raise ValueError(f"the bias's features refer to bead {self.bias.features.n_beads - 1} but the model has "
                             f"{n} beads")

    # ------------------------------------------------------------------------- beads

    @property
    def n_beads(self) -> int:
        """The number of beads of one molecule."""
        return self.priors.n_beads

    @property
    def has_network(self) -> bool:
        """False for a priors-only model."""
        return self.model is not None

    def priors_only(self, **changes) -> "CGModel":
        """The same beads, priors, masses and mapping without the network (and without a bias).

        Simulating it shows what the priors alone give, the baseline against which a trained
        network's gain is measured. ``changes`` replace fields (e.g. ``metadata=``).
        """
        import copy

        values = {"model": None, "priors": self.priors, "bead_types": list(self.bead_types),
                  "bead_names": list(self.bead_names), "masses": list(self.masses),
                  "exclusions": list(self.exclusions), "temperature": self.temperature,
                  "mapping": copy.deepcopy(self.mapping),
                  "metadata": {"priors_only": True, **copy.deepcopy(self.metadata)}}
        values.update(changes)
        return CGModel(**values)

    def check_beads(self, bead_names=None, bead_types=None, n_beads=None, source="the data") -> None:
        """Raise :class:`BeadSetMismatchError` if ``source`` has a different bead set.

        Compares whichever of ``n_beads``, ``bead_names`` and ``bead_types`` are given, and names
        the first difference.

        Examples
        --------
        >>> cg.check_beads(bead_names=["A", "B"])  # doctest: +SKIP
        BeadSetMismatchError: the model has 3 beads but the data have 2 ...
        """
        for what, theirs in (("bead names", bead_names), ("bead types", bead_types)):
            if theirs is not None and n_beads is None:
                n_beads = len(theirs)
        if n_beads is not None and int(n_beads) != self.n_beads:
            raise BeadSetMismatchError(f"the model has {self.n_beads} beads but {source} have {n_beads}: "
                                       "the model was trained for a different bead set")
        for what, mine, theirs in (("name", self.bead_names, bead_names), ("type", self.bead_types, bead_types)):
            if theirs is None:
                continue
            theirs = [str(t) if what == "name" else int(t) for t in theirs]
            for i, (a, b) in enumerate(zip(mine, theirs)):
                if a != b:
                    raise BeadSetMismatchError(f"bead {i} has {what} {a!r} in the model but {b!r} in {source}: "
                                               "the model was trained for a different bead set")

    def check_dataset(self, path) -> None:
        """Check the bead set of a CG HDF5 dataset (``docs/data-format.md``) against the model.

        Reads the file's header only (:class:`~openmmcgml.data.TrajectoryInfo`).
        """
        header = TrajectoryInfo.of(path, resolution="coarse-grained")
        self.check_beads(bead_names=header.metadata.bead_names, bead_types=header.metadata.bead_types,
                         n_beads=header.n_particles, source=f"dataset {path}")

    # ------------------------------------------------------------------------ forces

    def _replica_topology(self, n_replicas: int):
        if isinstance(n_replicas, bool) or int(n_replicas) != n_replicas or n_replicas < 1:
            raise ValueError(f"n_replicas must be a positive integer (got {n_replicas!r})")
        n = self.n_beads
        types = self.bead_types * int(n_replicas)
        molecules = [k for k in range(int(n_replicas)) for _ in range(n)]
        exclusions = [(k * n + i, k * n + j) for k in range(int(n_replicas)) for i, j in self.exclusions]
        return types, molecules, exclusions

    def learned_force(self, n_replicas: int = 1, particles=None, **kwargs):
        """The learned network as a ``CGSchNetForce`` on ``n_replicas`` copies of the molecule.

        Copy ``k`` is molecule ``k`` of the force (copies never interact) and holds beads
        ``[k n_beads, (k + 1) n_beads)`` of the force's particle list.

        Parameters
        ----------
        n_replicas : int
        particles : sequence of int, optional
            The System particle of each bead (length ``n_replicas * n_beads``); default: the
            System's particles in order.
        **kwargs
            Passed to :meth:`CGSchNet.to_force` (``periodic``, ``scale_parameter``, ``scale``).

        Returns
        -------
        openmmcgml.forces.CGSchNetForce or None
            None for a priors-only model.
        """
        types, molecules, exclusions = self._replica_topology(n_replicas)
        if self.model is None:
            return None
        return self.model.to_force(types, molecules, exclusions or None, particles=particles, **kwargs)

    def bias_force(self, n_replicas: int = 1, particles=None, **kwargs):
        """The bias as a ``DiscriminatorBiasForce`` on ``n_replicas`` copies (copy ``k`` is beads
        ``[k n_beads, (k + 1) n_beads)`` of ``particles``, default the System's particles in
        order), or None without a bias.  Keyword arguments go to :meth:`Discriminator.to_force`."""
        if self.bias is None:
            return None
        n = self.n_beads
        particles = list(range(int(n_replicas) * n)) if particles is None else [int(p) for p in particles]
        if len(particles) != int(n_replicas) * n:
            raise ValueError(f"{len(particles)} particles given for {n_replicas} replicas of {n} beads")
        molecules = [particles[k * n:(k + 1) * n] for k in range(int(n_replicas))]
        return self.bias.to_force(molecules=molecules, **kwargs)

    def prior_forces(self, n_replicas: int = 1) -> list:
        """The prior terms as standard OpenMM forces (see :meth:`PriorSet.to_openmm_forces`)."""
        return self.priors.to_openmm_forces(n_replicas)

    def create_system(self, n_replicas: int = 1, **kwargs):
        """An ``openmm.System`` of ``n_replicas`` copies: masses, prior forces, the learned force
        and the bias.

        Keyword arguments go to :meth:`learned_force`.  Force groups: priors 0, learned force 1
        (absent from a priors-only model), bias 2 (only with a bias).
        """
        import openmm

        system = openmm.System()
        for _ in range(int(n_replicas)):
            for mass in self.masses:
                system.addParticle(mass)
        for force in self.prior_forces(n_replicas):
            force.setForceGroup(0)
            system.addForce(force)
        learned = self.learned_force(n_replicas, **kwargs)
        if learned is not None:
            learned.setForceGroup(1)
            system.addForce(learned)
        bias = self.bias_force(n_replicas, periodic=bool(kwargs.get("periodic", False)))
        if bias is not None:
            bias.setForceGroup(2)
            system.addForce(bias)
        return system

    def _frames(self, positions):
        """Positions as float64 torch frames (n_frames, n_beads, 3), checked against the beads."""
        import torch

        x = torch.as_tensor(positions).to(torch.float64)
        if x.dim() == 2:
            x = x.unsqueeze(0)
        self.check_beads(n_beads=x.shape[1], source="the positions")
        return x

    def _network_topology(self):
        from .models import CGTopology

        return CGTopology(self.bead_types, exclusions=self.exclusions or None)

    def energy(self, positions):
        """Total energy (priors + network) of frames of one molecule, float64 torch, differentiable.

        Parameters
        ----------
        positions : Tensor or array_like, shape (n_frames, n_beads, 3) or (n_beads, 3)

        Returns
        -------
        Tensor, shape (n_frames,)
        """
        import torch

        x = self._frames(positions)
        energy = self.priors.energy(x)
        if self.bias is not None:
            energy = energy + self.bias.energy(x, molecules=False).to(torch.float64)
        if self.model is None:
            return energy
        return energy + self.model(x, self._network_topology()).to(torch.float64)

    def energy_and_forces(self, positions):
        """Total energy and forces (priors + network) of frames of one molecule, in float64 torch.

        Parameters
        ----------
        positions : Tensor or array_like, shape (n_frames, n_beads, 3)

        Returns
        -------
        energy : Tensor, shape (n_frames,)
        forces : Tensor, shape (n_frames, n_beads, 3)
        """
        import torch

        x = self._frames(positions)
        prior_energy, prior_forces = self.priors.energy_and_forces(x)
        if self.bias is not None:
            with torch.enable_grad():
                positions_ = x.detach().requires_grad_(True)
                bias_energy = self.bias.energy(positions_, molecules=False).to(torch.float64)
                (gradient,) = torch.autograd.grad(bias_energy.sum(), positions_)
            prior_energy, prior_forces = prior_energy + bias_energy.detach(), prior_forces - gradient
        if self.model is None:
            return prior_energy, prior_forces
        energy, forces = self.model.energy_and_forces(x, self._network_topology())
        return prior_energy + energy.to(torch.float64), prior_forces + forces.to(torch.float64)

    # ------------------------------------------------------------------------- files

    def save(self, path) -> None:
        """Write the model to one file (see the module's "File format").  Read it with :meth:`load`."""
        import torch

        payload = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "model_config": (None if self.model is None else
                             {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model.config.items()}),
            "state_dict": ({} if self.model is None else
                           {k: v.detach().cpu() for k, v in self.model.state_dict().items()}),
            "priors": json.dumps(self.priors.to_dict()),
            "bead_types": list(self.bead_types),
            "bead_names": list(self.bead_names),
            "masses": list(self.masses),
            "exclusions": [list(p) for p in self.exclusions],
            "temperature": self.temperature,
            "mapping": json.dumps(self.mapping),
            "metadata": json.dumps(self.metadata),
            "bias": None if self.bias is None else self.bias.to_dict(),
        }
        with atomic_write(path) as handle:
            torch.save(payload, handle)

    @classmethod
    def load(cls, path, map_location="cpu") -> "CGModel":
        """Read a model written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        CGModelFileError
            If the file is not a (complete) openmm-cgml model file, or is of a newer format.
        """
        import torch

        from .models import CGSchNet, Discriminator

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"model file {path} does not exist")
        if os.path.isdir(path):
            raise CGModelFileError(f"model file {path} is a directory")
        import pickle
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's notes on pickle protocols of foreign files
                payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as error:  # torch raises several kinds for damaged archives
            # torch.save writes a zip archive; anything else (JSON, HDF5, a plain pickle) is not a model file
            with open(path, "rb") as handle:
                zipped = handle.read(4) == b"PK\x03\x04"
            if not zipped:
                raise CGModelFileError(f"model file {path} is corrupt or not an openmm-cgml model file (not the "
                                       "zip archive that CGModel.save writes)") from error
            if isinstance(error, pickle.UnpicklingError):
                # instead of torch's long weights_only notice: a model file holds no Python objects
                raise CGModelFileError(f"model file {path} is not an openmm-cgml model file (it holds Python "
                                       "objects other than tensors and plain data, e.g. a whole pickled "
                                       "module)") from error
            detail = str(error).splitlines()[0] if str(error) else ""
            raise CGModelFileError(f"model file {path} is corrupt or not an openmm-cgml model file "
                                   f"({type(error).__name__}: {detail})") from error
        if isinstance(payload, dict) and "format" not in payload and {"config", "state_dict"} <= set(payload):
            raise CGModelFileError(f"{path} is not an openmm-cgml model file but a bare CGSchNet network (as "
                                   "CGSchNet.save writes it, without priors or beads); load it with "
                                   "openmmcgml.models.CGSchNet.load(path)")
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise CGModelFileError(f"{path} is not an openmm-cgml model file (it holds no {_FORMAT!r} marker)")
        if payload.get("format_version", 0) > _FORMAT_VERSION:
            raise CGModelFileError(f"model file {path} has format version {payload['format_version']}, newer than "
                                   f"this openmm-cgml understands ({_FORMAT_VERSION})")
        missing = [key for key in ("model_config", "state_dict", "priors", "bead_types") if key not in payload]
        if missing:
            raise CGModelFileError(f"model file {path} lacks {', '.join(missing)}")
        try:
            model = None
            if payload["model_config"] is not None:
                config = dict(payload["model_config"])
                config["output_hidden"] = tuple(config.get("output_hidden", ()))
                model = CGSchNet.from_config(config)
                state = payload["state_dict"]
                model.to(state["embedding.weight"].dtype)
                model.load_state_dict(state)
            priors = PriorSet.from_dict(json.loads(payload["priors"]))
            return cls(model=model, priors=priors, bead_types=payload["bead_types"],
                       bead_names=payload.get("bead_names"), masses=payload.get("masses"),
                       exclusions=[tuple(p) for p in payload.get("exclusions", [])],
                       temperature=payload.get("temperature", 300.0),
                       mapping=json.loads(payload.get("mapping", "{}")),
                       metadata=json.loads(payload.get("metadata", "{}")),
                       bias=None if payload.get("bias") is None else Discriminator.from_dict(payload["bias"]))
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CGModelFileError(f"model file {path} is inconsistent: {error}") from error
