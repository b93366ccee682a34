"""Building a coarse-grained OpenMM System with many replicas, and its starting structures."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import openmm
import openmm.app as app

__all__ = [
    "REFERENCE_PLATFORM_LIMIT",
    "add_model_forces",
    "arrange_replicas",
    "bead_masses",
    "build_system",
    "cg_topology",
    "default_platform",
    "initial_structures",
]

#: Below this many particles the Reference platform steps a CG System without a learned force
#: faster than CPU (priors alone, 40 alanine-dipeptide replicas: 21,700 vs 7,500 steps/s, 1 thread).
REFERENCE_PLATFORM_LIMIT = 1000


def _has_learned_force(system) -> bool:
    from ..forces import CGSchNetForce
    return any(CGSchNetForce.isinstance(system.getForce(i)) for i in range(system.getNumForces()))


def default_platform(system, learned: Optional[bool] = None) -> str:
    """The platform that steps a CG System fastest on a CPU-only machine.

    With a learned force (a ``CGSchNetForce``) the CPU platform and its dedicated kernel (float,
    threads, SIMD: 5x the Reference platform for 40 alanine-dipeptide replicas of the demo's
    model); without one, Reference below :data:`REFERENCE_PLATFORM_LIMIT` particles and CPU from
    there on.  A GPU platform is never chosen implicitly: name it.

    Parameters
    ----------
    system : openmm.System or int
        The System, or its particle count.
    learned : bool, optional
        Whether it has a learned force; default: looked up in ``system`` (False for a count).

    Examples
    --------
    >>> default_platform(50), default_platform(5000), default_platform(50, learned=True)
    ('Reference', 'CPU', 'CPU')
    """
    if isinstance(system, openmm.System):
        n_particles = system.getNumParticles()
        if learned is None:
            learned = _has_learned_force(system)
    else:
        n_particles = int(system)
    if learned:
        return "CPU"
    return "Reference" if n_particles < REFERENCE_PLATFORM_LIMIT else "CPU"


def _n_beads(model) -> int:
    return len(model.masses)


def build_system(model, n_replicas: int = 1) -> openmm.System:
    """An OpenMM System of ``n_replicas`` independent copies of a CG model.

    Particle ``r * n_beads + i`` is bead ``i`` of replica ``r``.  The System holds the bead masses,
    the model's prior forces (in the force groups they come with, 0 by default) and its learned
    force (group 1, as ``CGModel.create_system`` does); each copy is one molecule of the learned
    force and the priors never couple copies, so the copies are statistically independent
    simulations that share one Context.

    Parameters
    ----------
    model
        A CG model with the interface of :class:`openmmcgml.cgmodel.CGModel`: ``masses`` (amu, one
        per bead), ``prior_forces(n_replicas)`` (a list of ``openmm.Force``) and
        ``learned_force(n_replicas)`` (a ``CGSchNetForce``, or None for a prior-only model).
    n_replicas : int
        Number of copies.

    Returns
    -------
    openmm.System

    Examples
    --------
    >>> import openmm
    >>> class Dimer:  # the smallest stand-in: two beads and a bond
    ...     masses = [12.0, 14.0]
    ...     def prior_forces(self, n_replicas=1):
    ...         bonds = openmm.HarmonicBondForce()
    ...         for r in range(n_replicas):
    ...             bonds.addBond(2 * r, 2 * r + 1, 0.15, 1000.0)
    ...         return [bonds]
    ...     def learned_force(self, n_replicas=1):
    ...         return None
    >>> system = build_system(Dimer(), n_replicas=3)
    >>> system.getNumParticles(), system.getNumForces()
    (6, 1)
    """
    masses = bead_masses(model, n_replicas)
    system = openmm.System()
    for mass in masses:
        system.addParticle(float(mass))
    add_model_forces(system, model, n_replicas)
    return system


def bead_masses(model, n_replicas: int = 1) -> np.ndarray:
    """The mass of every particle of ``n_replicas`` copies of a CG model (amu), replica after replica.

    Raises
    ------
    ValueError
        If ``n_replicas`` is below 1, or the model's masses are not a non-empty list of positive,
        finite numbers (a massless particle would never move).
    """
    n_replicas = int(n_replicas)
    if n_replicas < 1:
        raise ValueError(f"n_replicas must be at least 1 (got {n_replicas})")
    masses = np.asarray(model.masses, dtype=float)
    if masses.ndim != 1 or len(masses) == 0:
        raise ValueError(f"the model's masses must be a non-empty list, one per bead (got shape {masses.shape})")
    if not np.all(np.isfinite(masses)) or (masses <= 0).any():
        raise ValueError("every bead mass must be positive and finite (a massless bead would not move)")
    return np.tile(masses, n_replicas)


def add_model_forces(system, model, n_replicas: int = 1, force_group: Optional[int] = None) -> None:
    """Add a CG model's prior forces and learned force for ``n_replicas`` copies to a System.

    Particle ``r * n_beads + i`` of ``system`` must be bead ``i`` of replica ``r``.

    Parameters
    ----------
    system : openmm.System
        Holds exactly ``n_replicas * n_beads`` particles.
    model
        As for :func:`build_system`.
    n_replicas : int
    force_group : int, optional
        Force group of every added force; default: the priors keep theirs (0 unless set), the
        learned force is in group 1 and a bias (``model.bias_force``, a teacher's) in group 2.
    """
    n_particles = len(bead_masses(model, n_replicas))
    if system.getNumParticles() != n_particles:
        raise ValueError(f"the System has {system.getNumParticles()} particles but {n_replicas} replicas of "
                         f"{len(model.masses)} beads make {n_particles}")
    for force in model.prior_forces(n_replicas):
        if force_group is not None:
            force.setForceGroup(force_group)
        system.addForce(force)
    learned = model.learned_force(n_replicas)
    if learned is not None:
        n_acting = len(learned.getParticles()) or len(learned.getBeadTypes())
        if n_acting != n_particles:
            raise ValueError(f"the learned force acts on {n_acting} beads but {n_replicas} replicas of "
                             f"{len(model.masses)} beads make {n_particles}")
        learned.setForceGroup(1 if force_group is None else force_group)
        system.addForce(learned)
    bias = model.bias_force(n_replicas) if hasattr(model, "bias_force") else None
    if bias is not None:
        bias.setForceGroup(2 if force_group is None else force_group)
        system.addForce(bias)


def cg_topology(bead_names: Sequence[str], n_replicas: int = 1, residue_names: Optional[Sequence[str]] = None,
                residue_ids: Optional[Sequence[int]] = None, elements: Optional[Sequence[str]] = None) -> app.Topology:
    """An OpenMM Topology of ``n_replicas`` CG chains, one chain per replica.

    Parameters
    ----------
    bead_names : sequence of str
        Atom name of each bead (e.g. ``["C", "N", "CA", "C", "N"]``).
    n_replicas : int
    residue_names, residue_ids : sequence, optional
        Residue name and number of each bead; consecutive beads with the same id share a residue.
        Default: every bead is its own residue named ``"CG"``.
    elements : sequence of str, optional
        Element symbol of each bead (e.g. of the atom it sits on); default none (mdtraj then
        reads the beads as virtual sites).

    Returns
    -------
    openmm.app.Topology
        Bonds join consecutive beads.

    Examples
    --------
    >>> top = cg_topology(["CA"] * 10, n_replicas=2)
    >>> top.getNumChains(), top.getNumAtoms(), top.getNumBonds()
    (2, 20, 18)
    """
    n = len(bead_names)
    if residue_ids is None:
        residue_ids = list(range(1, n + 1))
    if residue_names is None:
        residue_names = ["CG"] * n
    if len(residue_ids) != n or len(residue_names) != n:
        raise ValueError("residue_names and residue_ids need one entry per bead")
    symbols = list(elements) if elements is not None else [None] * n
    if len(symbols) != n:
        raise ValueError("elements need one entry per bead")
    element_of = []
    for symbol in symbols:
        try:
            element_of.append(app.Element.getBySymbol(symbol) if symbol else None)
        except KeyError:
            element_of.append(None)
    topology = app.Topology()
    for _ in range(int(n_replicas)):
        chain = topology.addChain()
        residue, current, previous = None, None, None
        for name, res_name, res_id, element in zip(bead_names, residue_names, residue_ids, element_of):
            if residue is None or res_id != current:
                residue = topology.addResidue(str(res_name), chain, id=str(res_id))
                current = res_id
            atom = topology.addAtom(str(name), element, residue)
            if previous is not None:
                topology.addBond(previous, atom)
            previous = atom
    return topology


def initial_structures(source, n_replicas: int, n_beads: Optional[int] = None, seed=None) -> np.ndarray:
    """Starting structures for ``n_replicas`` replicas, shape (n_replicas, n_beads, 3), nm.

    Parameters
    ----------
    source : array_like or str or path
        One structure (n_beads, 3), used for every replica; a set of frames (n_frames, n_beads, 3),
        from which each replica gets a random frame (without replacement while there are enough);
        or the path of a trajectory file in the docs/data-format.md layout (its ``coordinates``).
    n_replicas : int
    n_beads : int, optional
        Checked against the source when given.
    seed : int or numpy.random.Generator, optional

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.arange(4 * 2 * 3, dtype=float).reshape(4, 2, 3)
    >>> initial_structures(frames, 3, seed=0).shape
    (3, 2, 3)
    """
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        from ..data.trajectory import TrajectoryFile

        with TrajectoryFile(source) as handle:
            frames = handle.dataset("coordinates")
            n_frames = frames.shape[0]
            rng = np.random.default_rng(seed)
            pick = rng.choice(n_frames, size=n_replicas, replace=n_frames < n_replicas)
            order = np.argsort(pick)
            chosen = np.empty((n_replicas,) + frames.shape[1:], dtype=float)
            # h5py wants increasing indices; repeated indices are read one by one
            for k in order:
                chosen[k] = frames[int(pick[k])]
        structures = chosen
    else:
        array = np.asarray(source, dtype=float)
        if array.ndim == 2:
            structures = np.broadcast_to(array, (n_replicas,) + array.shape).copy()
        elif array.ndim == 3:
            rng = np.random.default_rng(seed)
            pick = rng.choice(len(array), size=n_replicas, replace=len(array) < n_replicas)
            structures = array[pick].copy()
        else:
            raise ValueError(f"initial structures must have shape (n_beads, 3) or (n_frames, n_beads, 3) "
                             f"(got {array.shape})")
    if structures.shape[-1] != 3:
        raise ValueError(f"initial structures must have 3 coordinates per bead (got shape {structures.shape})")
    if n_beads is not None and structures.shape[1] != n_beads:
        raise ValueError(f"initial structures have {structures.shape[1]} beads but the model has {n_beads}")
    if not np.all(np.isfinite(structures)):
        raise ValueError("initial structures contain non-finite coordinates")
    return structures


def arrange_replicas(structures, spacing: Optional[float] = None) -> np.ndarray:
    """Place replica structures apart on a cubic grid, for viewing; returns (n_replicas * n_beads, 3).

    Each structure is centred on its own grid point.  The copies never interact (each is its own
    molecule), so the spacing changes nothing but the picture.

    Parameters
    ----------
    structures : array_like, shape (n_replicas, n_beads, 3)
    spacing : float, optional
        Grid spacing in nm; default the largest structure diameter plus 1 nm.
    """
    structures = np.asarray(structures, dtype=float)
    n_replicas = structures.shape[0]
    centred = structures - structures.mean(axis=1, keepdims=True)
    if spacing is None:
        radius = float(np.linalg.norm(centred, axis=-1).max()) if centred.size else 0.0
        spacing = 2.0 * radius + 1.0
    side = max(1, math.ceil(round(n_replicas ** (1.0 / 3.0), 9)))
    index = np.arange(n_replicas)
    grid = np.stack([index % side, (index // side) % side, index // (side * side)], axis=1) * float(spacing)
    return (centred + grid[:, None, :]).reshape(-1, 3)
