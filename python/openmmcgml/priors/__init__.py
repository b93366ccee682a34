"""Prior potentials of a coarse-grained molecule, fitted by Boltzmann inversion.

A learned CG potential is trained on top of simple physical priors: bonds, angles, dihedrals and
a short-range repulsion between non-bonded beads.  The priors keep a simulation in the region the
training data cover (no chain crossing through itself, no stretched bonds) and leave the network
only the many-body remainder to learn.

A :class:`PriorSet` holds the fitted terms of ONE molecule of ``n_beads`` beads.  It gives

- standard OpenMM forces for ``n_replicas`` consecutive copies of the molecule
  (:meth:`PriorSet.to_openmm_forces`); copies are never coupled, so replicas may overlap in space;
- the same function in float64 torch (:meth:`PriorSet.energy_and_forces`), used to subtract the
  prior forces from the mapped forces before force matching;
- a JSON-serialisable dictionary (:meth:`PriorSet.to_dict`, :meth:`PriorSet.from_dict`).

The functional forms (energies in kJ/mol, lengths in nm, angles in radians):

==============  ===========================================  =====================================
term            energy                                       OpenMM force
==============  ===========================================  =====================================
``bonds``       ``0.5 k (r - r0)^2``                          ``HarmonicBondForce``
``angles``      ``0.5 k (theta - theta0)^2``                  ``HarmonicAngleForce``
``dihedrals``   ``sum_n k_n (1 + cos(n phi - phi_n))``        ``PeriodicTorsionForce``, n = 1..N
``repulsion``   ``epsilon (sigma / r)^6``                     ``CustomBondForce`` over pairs
``dihedral_map`` ``sum_mn a_mn cos(m phi + n psi)``            ``CustomCompoundBondForce`` over
                ``+ b_mn sin(m phi + n psi)``                 five beads (two dihedrals)
==============  ===========================================  =====================================

``theta`` is the angle at the middle bead; ``phi`` follows OpenMM's (IUPAC) sign convention, the
one of ``mdtraj.compute_dihedrals``.  :func:`fit_priors` fits the first four to mapped data;
``dihedral_map`` (a smooth correction map over pairs of consecutive dihedrals, like a CMAP) is
not a Boltzmann-inversion prior: force matching learns it with the network
(:class:`~openmmcgml.training.ForceMatching`'s ``dihedral_map``).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> zigzag = np.array([[0.0, 0, 0], [0.3, 0.2, 0], [0.6, 0, 0.1], [0.9, 0.2, 0], [1.2, 0, 0.1]])
>>> coordinates = zigzag + rng.normal(scale=0.02, size=(2000, 5, 3))
>>> priors = fit_priors(coordinates, temperature=300.0)
>>> priors.n_beads, list(priors.terms)
(5, ['bonds', 'angles', 'repulsion'])
>>> forces = priors.to_openmm_forces(n_replicas=2)
>>> [f.getName() for f in forces]
['CGPrior:bonds', 'CGPrior:angles', 'CGPrior:repulsion']
"""

from __future__ import annotations

import math
from collections import deque
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "BOLTZMANN",
    "HarmonicAngles",
    "HarmonicBonds",
    "FourierDihedrals",
    "DihedralMap",
    "PriorSet",
    "PriorTerm",
    "Repulsion",
    "TERM_NAMES",
    "angle_list",
    "chain_bonds",
    "compute_angles",
    "compute_dihedrals",
    "compute_distances",
    "dihedral_list",
    "dihedral_map_modes",
    "dihedral_pairs",
    "fit_priors",
    "plot_prior_fit",
    "repulsion_pairs",
]

#: Boltzmann's constant in kJ/mol/K (OpenMM's value).
BOLTZMANN = 0.00831446261815324
#: The names of the prior terms, in the order a PriorSet keeps them.
TERM_NAMES = ("bonds", "angles", "dihedrals", "repulsion", "dihedral_map")
_FORMAT = "openmm-cgml-priors"
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------
# Topology helpers
# --------------------------------------------------------------------------------------

def chain_bonds(n_beads: int) -> np.ndarray:
    """The bonds ``(i, i + 1)`` of a linear chain, shape (n_beads - 1, 2).

    >>> chain_bonds(4).tolist()
    [[0, 1], [1, 2], [2, 3]]
    """
    n_beads = int(n_beads)
    return np.stack([np.arange(n_beads - 1), np.arange(1, n_beads)], axis=1).astype(np.int64).reshape(-1, 2)


def _check_indices(indices, arity: int, n_beads: int, name: str) -> np.ndarray:
    array = np.asarray(indices if indices is not None else np.zeros((0, arity)))
    if array.size == 0:
        return np.zeros((0, arity), dtype=np.int64)
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integer bead indices (got dtype {array.dtype})")
    array = array.astype(np.int64)
    if array.ndim != 2 or array.shape[1] != arity:
        raise ValueError(f"{name} must have shape (n, {arity}) (got {array.shape})")
    bad = np.flatnonzero(((array < 0) | (array >= n_beads)).any(axis=1))
    if len(bad):
        raise ValueError(f"{name} entry {int(bad[0])} {array[bad[0]].tolist()} refers to a bead out of range "
                         f"[0, {n_beads})")
    for row, item in enumerate(array.tolist()):
        if len(set(item)) != arity:
            raise ValueError(f"{name} entry {row} {item} uses a bead more than once")
    return array


def _neighbours(n_beads: int, bonds: np.ndarray) -> list[list[int]]:
    neighbours = [[] for _ in range(n_beads)]
    for i, j in bonds.tolist():
        neighbours[i].append(j)
        neighbours[j].append(i)
    return [sorted(n) for n in neighbours]


def angle_list(n_beads: int, bonds) -> np.ndarray:
    """Every angle ``(i, j, k)`` of the bond graph (``i-j`` and ``j-k`` bonded, ``i < k``), sorted.

    >>> angle_list(4, chain_bonds(4)).tolist()
    [[0, 1, 2], [1, 2, 3]]
    """
    bonds = _check_indices(bonds, 2, n_beads, "bonds")
    neighbours = _neighbours(n_beads, bonds)
    angles = [(i, j, k) for j in range(n_beads) for i in neighbours[j] for k in neighbours[j] if i < k]
    angles.sort(key=lambda a: (min(a[0], a[2]), a[1], max(a[0], a[2])))
    return np.array(angles, dtype=np.int64).reshape(-1, 3)


def dihedral_list(n_beads: int, bonds) -> np.ndarray:
    """Every proper dihedral ``(i, j, k, l)`` of the bond graph (a path of three bonds), ``i < l``.

    >>> dihedral_list(5, chain_bonds(5)).tolist()
    [[0, 1, 2, 3], [1, 2, 3, 4]]
    """
    bonds = _check_indices(bonds, 2, n_beads, "bonds")
    neighbours = _neighbours(n_beads, bonds)
    dihedrals = set()
    for j, k in bonds.tolist():
        for i in neighbours[j]:
            for l in neighbours[k]:
                if len({i, j, k, l}) == 4:
                    dihedrals.add((i, j, k, l) if i < l else (l, k, j, i))
    return np.array(sorted(dihedrals), dtype=np.int64).reshape(-1, 4)


def dihedral_pairs(n_beads: int, bonds) -> np.ndarray:
    """Every pair of dihedrals that share three beads, as the five beads ``(i, j, k, l, m)`` of
    ``phi = (i, j, k, l)`` and ``psi = (j, k, l, m)``; for a chain, consecutive dihedrals.

    >>> dihedral_pairs(6, chain_bonds(6)).tolist()
    [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]
    """
    dihedrals = [tuple(d) for d in dihedral_list(n_beads, bonds).tolist()]
    oriented = set(dihedrals) | {d[::-1] for d in dihedrals}
    pairs = set()
    for i, j, k, l in oriented:
        for m in range(n_beads):
            if m not in (i, j, k, l) and (j, k, l, m) in oriented:
                pair = (i, j, k, l, m)
                pairs.add(min(pair, pair[::-1]))
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 5)


def dihedral_map_modes(order: int) -> list:
    """The Fourier modes ``(m, n)`` of a dihedral map of the given order: ``0 <= m <= order``,
    ``-order <= n <= order``, one of each pair ``(m, n), (-m, -n)``, without ``(0, 0)``.

    >>> dihedral_map_modes(1)
    [(0, 1), (1, -1), (1, 0), (1, 1)]
    >>> len(dihedral_map_modes(2)), len(dihedral_map_modes(3))
    (12, 24)
    """
    order = int(order)
    return [(m, n) for m in range(order + 1) for n in range(-order, order + 1) if (m, n) > (0, 0)]


def _graph_distances(n_beads: int, bonds: np.ndarray) -> np.ndarray:
    """Numbers of bonds between beads (breadth-first search); unconnected pairs get n_beads."""
    neighbours = _neighbours(n_beads, bonds)
    distance = np.full((n_beads, n_beads), n_beads, dtype=np.int64)
    for start in range(n_beads):
        distance[start, start] = 0
        queue = deque([start])
        while queue:
            i = queue.popleft()
            for j in neighbours[i]:
                if distance[start, j] > distance[start, i] + 1:
                    distance[start, j] = distance[start, i] + 1
                    queue.append(j)
    return distance


def repulsion_pairs(n_beads: int, bonds, min_separation: int = 3) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, at least ``min_separation`` bonds apart (or not connected).

    With the default 3, bonded (1-2) and angle (1-3) pairs are left out.

    >>> repulsion_pairs(5, chain_bonds(5)).tolist()
    [[0, 3], [0, 4], [1, 4]]
    """
    bonds = _check_indices(bonds, 2, n_beads, "bonds")
    distance = _graph_distances(n_beads, bonds)
    i, j = np.triu_indices(n_beads, 1)
    keep = distance[i, j] >= int(min_separation)
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64).reshape(-1, 2)


# --------------------------------------------------------------------------------------
# Geometry (numpy for fitting; torch for energies)
# --------------------------------------------------------------------------------------

def compute_distances(coordinates, pairs) -> np.ndarray:
    """Distances (n_frames, n_pairs) of bead pairs in coordinates (n_frames, n_beads, 3)."""
    x = np.asarray(coordinates, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return np.linalg.norm(x[:, pairs[:, 1]] - x[:, pairs[:, 0]], axis=-1)


def compute_angles(coordinates, angles) -> np.ndarray:
    """Angles (n_frames, n_angles) in radians, at the middle bead of each triple."""
    x = np.asarray(coordinates, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.int64).reshape(-1, 3)
    u = x[:, angles[:, 0]] - x[:, angles[:, 1]]
    v = x[:, angles[:, 2]] - x[:, angles[:, 1]]
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), (u * v).sum(-1))


def compute_dihedrals(coordinates, dihedrals) -> np.ndarray:
    """Dihedral angles (n_frames, n_dihedrals) in (-pi, pi], OpenMM's sign convention."""
    x = np.asarray(coordinates, dtype=np.float64)
    dihedrals = np.asarray(dihedrals, dtype=np.int64).reshape(-1, 4)
    b1 = x[:, dihedrals[:, 1]] - x[:, dihedrals[:, 0]]
    b2 = x[:, dihedrals[:, 2]] - x[:, dihedrals[:, 1]]
    b3 = x[:, dihedrals[:, 3]] - x[:, dihedrals[:, 2]]
    c23 = np.cross(b2, b3)
    c12 = np.cross(b1, b2)
    return np.arctan2(np.linalg.norm(b2, axis=-1) * (b1 * c23).sum(-1), (c12 * c23).sum(-1))


def _torch():
    import torch

    return torch


def _t_distances(x, pairs):
    delta = x[:, pairs[:, 1]] - x[:, pairs[:, 0]]
    return (delta * delta).sum(-1)  # squared


def _t_angles(x, angles):
    torch = _torch()
    u = x[:, angles[:, 0]] - x[:, angles[:, 1]]
    v = x[:, angles[:, 2]] - x[:, angles[:, 1]]
    return torch.atan2(torch.linalg.vector_norm(torch.cross(u, v, dim=-1), dim=-1), (u * v).sum(-1))


def _t_dihedrals(x, dihedrals):
    torch = _torch()
    b1 = x[:, dihedrals[:, 1]] - x[:, dihedrals[:, 0]]
    b2 = x[:, dihedrals[:, 2]] - x[:, dihedrals[:, 1]]
    b3 = x[:, dihedrals[:, 3]] - x[:, dihedrals[:, 2]]
    c23 = torch.cross(b2, b3, dim=-1)
    c12 = torch.cross(b1, b2, dim=-1)
    return torch.atan2(torch.linalg.vector_norm(b2, dim=-1) * (b1 * c23).sum(-1), (c12 * c23).sum(-1))


# --------------------------------------------------------------------------------------
# Terms
# --------------------------------------------------------------------------------------

class PriorTerm:
    """One kind of prior term: bead tuples ``indices`` and per-tuple parameter arrays.

    Subclasses set ``name``, ``arity`` and ``parameter_names``, and implement :meth:`energy`
    and :meth:`_openmm_force`.  Parameters are float64 arrays whose first axis runs over the
    tuples.
    """

    name: str = ""
    arity: int = 0
    parameter_names: tuple = ()

    def __init__(self, indices, **parameters):
        # bead range is checked against n_beads when the term joins a PriorSet
        indices = _check_indices(indices, self.arity, np.iinfo(np.int64).max, f"{self.name} indices")
        self.indices = indices
        self.parameters = {}
        for key in self.parameter_names:
            if key not in parameters:
                raise ValueError(f"{self.name} prior: parameter {key!r} is missing")
            value = np.asarray(parameters.pop(key), dtype=np.float64)
            if value.shape[:1] != (len(indices),):
                raise ValueError(f"{self.name} prior: parameter {key!r} has shape {value.shape} but there are "
                                 f"{len(indices)} terms")
            if not np.isfinite(value).all():
                raise ValueError(f"{self.name} prior: parameter {key!r} contains NaN or infinite values")
            self.parameters[key] = value
        if parameters:
            raise ValueError(f"{self.name} prior: unknown parameters {sorted(parameters)}")
        self._validate()

    def _validate(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self.indices)

    def __getattr__(self, key):
        parameters = self.__dict__.get("parameters", {})
        if key in parameters:
            return parameters[key]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {key!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} terms)"

    def check(self, n_beads: int) -> None:
        """Raise ValueError if an index is out of ``[0, n_beads)`` or a tuple repeats a bead."""
        _check_indices(self.indices, self.arity, n_beads, f"{self.name} indices")

    def to_dict(self) -> dict:
        out = {"indices": self.indices.tolist()}
        out.update({key: value.tolist() for key, value in self.parameters.items()})
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "PriorTerm":
        data = dict(data)
        indices = data.pop("indices")
        return cls(indices, **data)

    def energy(self, positions):
        """Energies (n_frames,) in kJ/mol of float64 torch positions (n_frames, n_beads, 3)."""
        raise NotImplementedError

    def to_openmm_force(self, n_beads: int, n_replicas: int = 1):
        """The term as an OpenMM force on ``n_replicas`` copies of an ``n_beads`` molecule."""
        force = self._openmm_force()
        force.setName(f"CGPrior:{self.name}")
        for replica in range(n_replicas):
            offset = replica * n_beads
            for row, beads in enumerate(self.indices.tolist()):
                self._add(force, [offset + b for b in beads],
                          {key: value[row] for key, value in self.parameters.items()})
        return force

    def _openmm_force(self):
        raise NotImplementedError

    def _add(self, force, beads, parameters) -> None:
        raise NotImplementedError

    def _parameter_tensors(self, x):
        torch = _torch()
        return {key: torch.as_tensor(value, dtype=x.dtype, device=x.device) for key, value in self.parameters.items()}

    def _index_tensor(self, x):
        return _torch().as_tensor(self.indices, device=x.device)


class HarmonicBonds(PriorTerm):
    """Harmonic bonds ``U = 0.5 k (r - r0)^2`` (OpenMM ``HarmonicBondForce``).

    Parameters
    ----------
    indices : array_like of int, shape (n, 2)
    k : array_like, shape (n,)
        Force constants in kJ/mol/nm^2, non-negative.
    r0 : array_like, shape (n,)
        Equilibrium lengths in nm.
    """

    name, arity, parameter_names = "bonds", 2, ("k", "r0")

    def _validate(self):
        if (self.parameters["k"] < 0).any():
            raise ValueError("bonds prior: force constants k must be non-negative")

    def energy(self, positions):
        p = self._parameter_tensors(positions)
        r = _t_distances(positions, self._index_tensor(positions)).sqrt()
        return (0.5 * p["k"] * (r - p["r0"]) ** 2).sum(-1)

    def _openmm_force(self):
        import openmm

        return openmm.HarmonicBondForce()

    def _add(self, force, beads, p):
        force.addBond(beads[0], beads[1], float(p["r0"]), float(p["k"]))


class HarmonicAngles(PriorTerm):
    """Harmonic angles ``U = 0.5 k (theta - theta0)^2`` (OpenMM ``HarmonicAngleForce``).

    ``theta`` is the angle at the middle bead of ``(i, j, k)``, in radians.

    Parameters
    ----------
    indices : array_like of int, shape (n, 3)
    k : array_like, shape (n,)
        Force constants in kJ/mol/rad^2, non-negative.
    theta0 : array_like, shape (n,)
        Equilibrium angles in radians, in [0, pi].
    """

    name, arity, parameter_names = "angles", 3, ("k", "theta0")

    def _validate(self):
        if (self.parameters["k"] < 0).any():
            raise ValueError("angles prior: force constants k must be non-negative")

    def energy(self, positions):
        p = self._parameter_tensors(positions)
        theta = _t_angles(positions, self._index_tensor(positions))
        return (0.5 * p["k"] * (theta - p["theta0"]) ** 2).sum(-1)

    def _openmm_force(self):
        import openmm

        return openmm.HarmonicAngleForce()

    def _add(self, force, beads, p):
        force.addAngle(beads[0], beads[1], beads[2], float(p["theta0"]), float(p["k"]))


class FourierDihedrals(PriorTerm):
    """Dihedral Fourier series ``U = sum_{n=1..N} k_n (1 + cos(n phi - phi_n))``.

    Built as an OpenMM ``PeriodicTorsionForce`` with one torsion per dihedral and order n.

    Parameters
    ----------
    indices : array_like of int, shape (n, 4)
    k : array_like, shape (n, N)
        Amplitudes ``k_n`` in kJ/mol (column n - 1 for order n).
    phase : array_like, shape (n, N)
        Phases ``phi_n`` in radians.
    """

    name, arity, parameter_names = "dihedrals", 4, ("k", "phase")

    def _validate(self):
        k, phase = self.parameters["k"], self.parameters["phase"]
        if k.ndim != 2 or phase.shape != k.shape:
            raise ValueError(f"dihedrals prior: k and phase must both have shape (n_dihedrals, order) "
                             f"(got {k.shape} and {phase.shape})")

    @property
    def order(self) -> int:
        """The number N of Fourier terms per dihedral."""
        return self.parameters["k"].shape[1]

    def energy(self, positions):
        torch = _torch()
        p = self._parameter_tensors(positions)
        phi = _t_dihedrals(positions, self._index_tensor(positions))
        n = torch.arange(1, self.order + 1, dtype=positions.dtype, device=positions.device)
        return (p["k"] * (1.0 + torch.cos(n * phi.unsqueeze(-1) - p["phase"]))).sum((-1, -2))

    def _openmm_force(self):
        import openmm

        return openmm.PeriodicTorsionForce()

    def _add(self, force, beads, p):
        for n in range(self.order):
            force.addTorsion(*beads, n + 1, float(p["phase"][n]), float(p["k"][n]))


class Repulsion(PriorTerm):
    """Short-range repulsion ``U = epsilon (sigma / r)^6`` between listed bead pairs.

    Built as an OpenMM ``CustomBondForce`` over the pairs of each copy of the molecule (so
    copies never interact), with per-pair parameters ``epsilon`` and ``sigma``.

    Parameters
    ----------
    indices : array_like of int, shape (n, 2)
    epsilon : array_like, shape (n,)
        Energy at ``r = sigma``, in kJ/mol, non-negative.
    sigma : array_like, shape (n,)
        In nm, positive.
    """

    name, arity, parameter_names = "repulsion", 2, ("epsilon", "sigma")
    expression = "epsilon*(sigma/r)^6"

    def _validate(self):
        if (self.parameters["epsilon"] < 0).any():
            raise ValueError("repulsion prior: epsilon must be non-negative")
        if (self.parameters["sigma"] <= 0).any():
            raise ValueError("repulsion prior: sigma must be positive")

    def energy(self, positions):
        p = self._parameter_tensors(positions)
        r2 = _t_distances(positions, self._index_tensor(positions))
        return (p["epsilon"] * (p["sigma"] ** 2 / r2) ** 3).sum(-1)

    def _openmm_force(self):
        import openmm

        force = openmm.CustomBondForce(self.expression)
        force.addPerBondParameter("epsilon")
        force.addPerBondParameter("sigma")
        return force

    def _add(self, force, beads, p):
        force.addBond(beads[0], beads[1], [float(p["epsilon"]), float(p["sigma"])])


class DihedralMap(PriorTerm):
    """A smooth map over two dihedrals that share three beads (like a CMAP), as a 2-D Fourier series
    ``U = sum_(m, n) a_mn cos(m phi + n psi) + b_mn sin(m phi + n psi)`` over the modes of
    :func:`dihedral_map_modes` (``order`` N: 2 N (N + 1) modes), ``phi`` = dihedral(i, j, k, l),
    ``psi`` = dihedral(j, k, l, m).

    The sine terms are odd under ``(phi, psi) -> (-phi, -psi)``, i.e. under a mirror image, which a
    network of distances cannot express; force matching learns the map with the network
    (``ForceMatching(dihedral_map=N)``). Built as an OpenMM ``CustomCompoundBondForce`` of five
    particles with the coefficients as per-bond parameters.

    Parameters
    ----------
    indices : array_like of int, shape (n, 5)
    cos, sin : array_like, shape (n, n_modes)
        ``a_mn`` and ``b_mn`` in kJ/mol, in the order of :func:`dihedral_map_modes`.
    """

    name, arity, parameter_names = "dihedral_map", 5, ("cos", "sin")

    def _validate(self):
        a, b = self.parameters["cos"], self.parameters["sin"]
        if a.ndim != 2 or b.shape != a.shape:
            raise ValueError(f"dihedral_map prior: cos and sin must both have shape (n_pairs, n_modes) (got {a.shape} "
                             f"and {b.shape})")
        order = self.order
        if 2 * order * (order + 1) != a.shape[1]:
            raise ValueError(f"dihedral_map prior: {a.shape[1]} modes is not 2 N (N + 1) for any order N")

    @property
    def order(self) -> int:
        """The order N of the Fourier series."""
        n_modes = self.parameters["cos"].shape[1]
        return int(round((math.sqrt(1 + 2 * n_modes) - 1) / 2))

    @property
    def modes(self) -> list:
        return dihedral_map_modes(self.order)

    def energy(self, positions):
        torch = _torch()
        p = self._parameter_tensors(positions)
        index = self._index_tensor(positions)
        phi = _t_dihedrals(positions, index[:, :4])
        psi = _t_dihedrals(positions, index[:, 1:])
        modes = torch.as_tensor(self.modes, dtype=positions.dtype, device=positions.device).reshape(-1, 2)
        argument = phi.unsqueeze(-1) * modes[:, 0] + psi.unsqueeze(-1) * modes[:, 1]
        return (p["cos"] * torch.cos(argument) + p["sin"] * torch.sin(argument)).sum((-1, -2))

    def _openmm_force(self):
        import openmm

        terms = " + ".join(f"c{k}*cos({m}*phi+({n})*psi) + s{k}*sin({m}*phi+({n})*psi)"
                           for k, (m, n) in enumerate(self.modes)) or "0"
        force = openmm.CustomCompoundBondForce(5, f"{terms}; phi=dihedral(p1,p2,p3,p4); psi=dihedral(p2,p3,p4,p5)")
        for k in range(len(self.modes)):
            force.addPerBondParameter(f"c{k}")
        for k in range(len(self.modes)):
            force.addPerBondParameter(f"s{k}")
        return force

    def _add(self, force, beads, p):
        force.addBond(list(beads), [float(v) for v in p["cos"]] + [float(v) for v in p["sin"]])


_TERM_CLASSES = {cls.name: cls for cls in (HarmonicBonds, HarmonicAngles, FourierDihedrals, Repulsion, DihedralMap)}


# --------------------------------------------------------------------------------------
# The set of priors of one molecule
# --------------------------------------------------------------------------------------

class PriorSet:
    """The fitted prior terms of one molecule of ``n_beads`` beads.

    Parameters
    ----------
    n_beads : int
        The number of beads of the molecule.
    bonds : array_like of int, shape (n_bonds, 2), optional
        The bond graph of the molecule (default: a linear chain).  It defines angles, dihedrals
        and repulsion pairs when fitting and is kept whether or not a ``bonds`` term exists
        (e.g. to exclude bonded pairs from a learned force).
    terms : dict or sequence of PriorTerm
        The terms, at most one per name of :data:`TERM_NAMES`; kept in that order.
    temperature : float, optional
        The temperature (K) the priors were fitted at (informational).

    Attributes
    ----------
    terms : dict of str to PriorTerm
        The terms by name; ``list(priors.terms)`` gives their names.

    Examples
    --------
    >>> priors = PriorSet(3, terms=[HarmonicBonds([[0, 1], [1, 2]], k=[1000.0, 1000.0], r0=[0.38, 0.38])])
    >>> import torch
    >>> x = torch.tensor([[[0.0, 0, 0], [0.4, 0, 0], [0.8, 0, 0]]], dtype=torch.float64)
    >>> energy, forces = priors.energy_and_forces(x)
    >>> round(float(energy[0]), 6)  # 2 x 0.5 x 1000 x 0.02^2
    0.4
    """

    def __init__(self, n_beads: int, bonds=None, terms=(), temperature: Optional[float] = None):
        if isinstance(n_beads, bool) or int(n_beads) != n_beads or n_beads < 1:
            raise ValueError(f"n_beads must be a positive integer (got {n_beads!r})")
        self.n_beads = int(n_beads)
        self.bonds = chain_bonds(self.n_beads) if bonds is None else _check_indices(bonds, 2, self.n_beads, "bonds")
        keys = {tuple(sorted(b)) for b in self.bonds.tolist()}
        if len(keys) != len(self.bonds):
            raise ValueError("bonds lists a pair more than once")
        if isinstance(terms, dict):
            terms = list(terms.values())
        by_name = {}
        for term in terms:
            if not isinstance(term, PriorTerm):
                raise TypeError(f"terms must be PriorTerm objects (got {type(term).__name__})")
            if term.name in by_name:
                raise ValueError(f"two {term.name!r} terms given; a PriorSet holds one of each kind")
            term.check(self.n_beads)
            by_name[term.name] = term
        self.terms = {name: by_name[name] for name in TERM_NAMES if name in by_name}
        self.temperature = None if temperature is None else float(temperature)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={len(term)}" for name, term in self.terms.items())
        return f"PriorSet(n_beads={self.n_beads}, {inner})"

    def __getitem__(self, name: str) -> PriorTerm:
        return self.terms[name]

    # ------------------------------------------------------------------------- OpenMM

    def to_openmm_forces(self, n_replicas: int = 1) -> list:
        """Standard OpenMM forces for ``n_replicas`` consecutive copies of the molecule.

        Copy ``k`` occupies System particles ``[k n_beads, (k + 1) n_beads)``.  Every force is
        a bonded force (``HarmonicBondForce``, ``HarmonicAngleForce``, ``PeriodicTorsionForce``,
        and a ``CustomBondForce`` for the repulsion), so different copies are never coupled.
        Forces are named ``CGPrior:<term>``; they use no periodic boundary conditions.

        Parameters
        ----------
        n_replicas : int
            The number of copies.

        Returns
        -------
        list of openmm.Force
            One force per term, in the order of :attr:`terms`.
        """
        if isinstance(n_replicas, bool) or int(n_replicas) != n_replicas or n_replicas < 1:
            raise ValueError(f"n_replicas must be a positive integer (got {n_replicas!r})")
        return [term.to_openmm_force(self.n_beads, int(n_replicas)) for term in self.terms.values()]

    # -------------------------------------------------------------------------- torch

    def _positions(self, positions):
        torch = _torch()
        x = torch.as_tensor(positions)
        if not x.is_floating_point():
            raise ValueError(f"positions must be floating point (got {x.dtype})")
        x = x.to(torch.float64)
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3 or x.shape[-1] != 3 or x.shape[1] != self.n_beads:
            raise ValueError(f"positions must have shape (n_frames, {self.n_beads}, 3) (got {tuple(x.shape)})")
        return x

    def energy(self, positions):
        """Prior energies (n_frames,) in kJ/mol, float64 torch, differentiable."""
        torch = _torch()
        x = self._positions(positions)
        energy = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for term in self.terms.values():
            energy = energy + term.energy(x)
        return energy

    def energy_and_forces(self, positions, batch_size: int = 8192):
        """Prior energies and forces in float64, equal to the OpenMM forces.

        Parameters
        ----------
        positions : Tensor or array_like, shape (n_frames, n_beads, 3)
            In nm (a single frame of shape (n_beads, 3) is treated as one frame).
        batch_size : int
            Frames evaluated at once.

        Returns
        -------
        energy : Tensor, shape (n_frames,)
            kJ/mol.
        forces : Tensor, shape (n_frames, n_beads, 3)
            kJ/mol/nm.
        """
        torch = _torch()
        x = self._positions(positions).detach()
        energies, forces = [], []
        for start in range(0, max(x.shape[0], 1), batch_size):
            chunk = x[start:start + batch_size].clone().requires_grad_(True)
            with torch.enable_grad():
                energy = self.energy(chunk)
                (gradient,) = torch.autograd.grad(energy.sum(), chunk) if chunk.shape[0] else (torch.zeros_like(chunk),)
            energies.append(energy.detach())
            forces.append(-gradient)
        return torch.cat(energies), torch.cat(forces)

    # -------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict:
        """A JSON-serialisable dictionary (read back with :meth:`from_dict`)."""
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "n_beads": self.n_beads,
            "bonds": self.bonds.tolist(),
            "temperature": self.temperature,
            "terms": {name: term.to_dict() for name, term in self.terms.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "PriorSet":
        """Rebuild a PriorSet from :meth:`to_dict` output."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not an openmm-cgml priors dictionary (format {found!r})")
        if data.get("format_version", 0) > _FORMAT_VERSION:
            raise ValueError(f"priors format version {data['format_version']} is newer than this openmm-cgml "
                             f"understands ({_FORMAT_VERSION})")
        terms = []
        for name, term in data.get("terms", {}).items():
            if name not in _TERM_CLASSES:
                raise ValueError(f"unknown prior term {name!r}; known terms are {TERM_NAMES}")
            terms.append(_TERM_CLASSES[name].from_dict(term))
        return cls(data["n_beads"], data.get("bonds"), terms, data.get("temperature"))

    def save(self, path) -> None:
        """Write :meth:`to_dict` as JSON to ``path``."""
        import json

        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=1)

    @classmethod
    def load(cls, path) -> "PriorSet":
        """Read a PriorSet written by :meth:`save`."""
        import json
        import os

        if not os.path.exists(path):
            raise FileNotFoundError(f"priors file {path} does not exist")
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"priors file {path} is not valid JSON ({error})") from error
        return cls.from_dict(data)


# --------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------

def _fit_log_linear(counts, features, log_jacobian, ridge=1e-8, max_iter=100):
    """Maximum likelihood of ``p_b ∝ exp(features_b . theta + log_jacobian_b)`` for histogram counts.

    The multinomial log likelihood ``sum_b n_b log p_b`` is concave in ``theta``; Newton's method
    with backtracking finds its maximum.  Returns ``theta``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    X = np.asarray(features, dtype=np.float64)
    theta = np.zeros(X.shape[1])
    observed = X.T @ counts / total

    def objective(t):
        logits = X @ t + log_jacobian
        shift = logits.max()
        log_z = shift + np.log(np.exp(logits - shift).sum())
        return -(observed @ t) + log_z + 0.5 * ridge * t @ t, logits - log_z

    value, log_p = objective(theta)
    for _ in range(max_iter):
        p = np.exp(log_p)
        mean = X.T @ p
        gradient = mean - observed + ridge * theta
        if np.abs(gradient).max() < 1e-11:
            break
        hessian = (X * p[:, None]).T @ X - np.outer(mean, mean) + ridge * np.eye(len(theta))
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while True:
            candidate = theta - scale * step
            new_value, new_log_p = objective(candidate)
            if new_value <= value or scale < 1e-12:
                break
            scale *= 0.5
        if scale < 1e-12:
            break  # no further decrease within rounding: at the optimum
        theta, value, log_p = candidate, new_value, new_log_p
    return theta


def _fit_harmonic(values, kT, n_bins, jacobian, lower=None, upper=None, what="value"):
    """Fit ``0.5 k (x - x0)^2`` to samples by Boltzmann inversion of their histogram."""
    values = np.asarray(values, dtype=np.float64)
    lo = values.min() if lower is None else max(lower, values.min())
    hi = values.max() if upper is None else min(upper, values.max())
    if not hi > lo:
        raise ValueError(f"cannot fit a harmonic {what}: all samples have the same value {lo}")
    counts, edges = np.histogram(values, bins=n_bins, range=(lo, hi))
    centers = 0.5 * (edges[1:] + edges[:-1])
    mean, scale = values.mean(), values.std()
    z = (centers - mean) / scale
    theta = _fit_log_linear(counts, np.stack([z, z * z], axis=1), np.log(jacobian(centers)))
    if theta[1] >= 0:
        raise ValueError(f"the distribution of this {what} is not peaked (Boltzmann inversion gives a "
                         "non-positive curvature); leave this term out or check the data")
    k = -2.0 * kT * theta[1] / scale**2
    x0 = mean + scale * (-theta[0] / (2.0 * theta[1]))
    return k, x0


def _fit_fourier(values, kT, n_bins, order):
    """Fit ``sum_n k_n (1 + cos(n phi - phi_n))`` to dihedral samples (uniform measure)."""
    counts, edges = np.histogram(values, bins=n_bins, range=(-math.pi, math.pi))
    centers = 0.5 * (edges[1:] + edges[:-1])
    n = np.arange(1, order + 1)
    features = np.concatenate([np.cos(np.outer(centers, n)), np.sin(np.outer(centers, n))], axis=1)
    theta = _fit_log_linear(counts, features, np.zeros(n_bins), ridge=1e-6)
    # beta U = -theta . features  =>  U = sum_n a_n cos(n phi) + b_n sin(n phi)
    a = -kT * theta[:order]
    b = -kT * theta[order:]
    return np.hypot(a, b), np.arctan2(b, a)


def _as_coordinates(cg_coordinates) -> np.ndarray:
    x = np.asarray(cg_coordinates)
    if x.dtype.kind != "f":
        raise ValueError(f"cg_coordinates must be floating point (got dtype {x.dtype})")
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"cg_coordinates must have shape (n_frames, n_beads, 3) (got {x.shape})")
    if x.shape[0] < 2:
        raise ValueError(f"fitting priors needs at least 2 frames (got {x.shape[0]})")
    if not np.isfinite(x).all():
        raise ValueError("cg_coordinates contain NaN or infinite values")
    return x


def fit_priors(cg_coordinates, bonds=None, temperature: float = 300.0,
               terms: Sequence[str] = ("bonds", "angles", "repulsion"), *, angles=None, dihedrals=None,
               n_bins: int = 100, dihedral_order: int = 3, repulsion_min_separation: int = 3,
               repulsion_epsilon: Optional[float] = None, repulsion_sigma_scale: float = 1.0,
               bead_types=None) -> PriorSet:
    """Fit prior terms to mapped CG coordinates by Boltzmann inversion.

    For each bond, angle and dihedral, the histogram ``n_b`` of the internal coordinate ``x``
    over all frames defines the free energy ``F(x) = -kT ln(p(x) / J(x))``, with the Jacobian
    ``J(r) = r^2`` for bond lengths, ``J(theta) = sin(theta)`` for angles and ``J = 1`` for
    dihedrals (uniform measure) divided out.  The analytic form ``U(x)`` is fitted to ``F``
    by maximum likelihood of the histogram counts under ``p_b ∝ J(x_b) exp(-U(x_b) / kT)``,
    a concave log-linear (multinomial) problem solved by Newton's method.  In the limit of
    many counts per bin this is least squares on ``F`` with weights ``n_b`` (the inverse
    variance of ``ln n_b``); unlike that, it needs no rule for empty bins.  The forms:

    - ``bonds``: ``0.5 k (r - r0)^2``, histogram over the observed range of ``r``;
    - ``angles``: ``0.5 k (theta - theta0)^2``, histogram over the observed range of ``theta``;
    - ``dihedrals``: ``sum_{n=1..N} k_n (1 + cos(n phi - phi_n))``, N = ``dihedral_order``,
      histogram over ``[-pi, pi]``;
    - ``repulsion``: ``epsilon (sigma / r)^6`` for every pair at least
      ``repulsion_min_separation`` bonds apart, with ``sigma`` = ``repulsion_sigma_scale`` x the
      smallest distance of that pair in the data and ``epsilon`` = ``repulsion_epsilon``
      (default ``kT``), so that getting closer than ever observed costs more than ``kT``.

    Parameters
    ----------
    cg_coordinates : array_like, shape (n_frames, n_beads, 3)
        Mapped coordinates in nm, frames of the equilibrium ensemble at ``temperature``.
    bonds : array_like of int, shape (n_bonds, 2), optional
        The bond graph; default: consecutive beads of a chain.
    temperature : float
        In kelvin.
    terms : sequence of str
        Which of ``"bonds"``, ``"angles"``, ``"dihedrals"``, ``"repulsion"`` to fit.
    angles, dihedrals : array_like of int, optional
        Override the angles (n, 3) and dihedrals (n, 4) derived from the bond graph.
    n_bins : int
        Histogram bins per internal coordinate.
    dihedral_order : int
        The number N of Fourier terms of each dihedral.
    repulsion_min_separation : int
        Repulsion pairs are at least this many bonds apart (3: no 1-2 and 1-3 pairs).
    repulsion_epsilon : float, optional
        In kJ/mol; default ``k_B T``.
    repulsion_sigma_scale : float
        Factor applied to the smallest observed distance of each pair.
    bead_types : array_like of int, shape (n_beads,), optional
        If given, bonds, angles and dihedrals whose bead types agree (read in either direction)
        share one fit over their pooled samples; repulsion pairs of equal type pairs share the
        smallest distance.  Default: each term is fitted on its own.

    Returns
    -------
    PriorSet

    Raises
    ------
    ValueError
        For malformed input, or a bond/angle distribution that is not peaked.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = np.zeros((5000, 2, 3))
    >>> x[:, 1, 0] = rng.normal(0.38, 0.02, 5000)
    >>> priors = fit_priors(x, temperature=300.0, terms=["bonds"])
    >>> round(float(priors["bonds"].r0[0]), 2)
    0.38
    """
    x = _as_coordinates(cg_coordinates)
    n_frames, n_beads, _ = x.shape
    fittable = tuple(name for name in TERM_NAMES if name != "dihedral_map")
    if "dihedral_map" in terms:
        raise ValueError("the dihedral_map term is learned by force matching (ForceMatching(dihedral_map=N)), "
                         "not fitted by Boltzmann inversion")
    unknown = [t for t in terms if t not in fittable]
    if unknown:
        raise ValueError(f"unknown prior terms {unknown}; choose among {fittable}")
    if not (temperature > 0):
        raise ValueError(f"temperature must be positive (got {temperature})")
    n_bins = int(n_bins)
    if n_bins < 5:
        raise ValueError(f"n_bins must be at least 5 (got {n_bins})")
    kT = BOLTZMANN * float(temperature)
    bonds = chain_bonds(n_beads) if bonds is None else _check_indices(bonds, 2, n_beads, "bonds")
    if bead_types is not None:
        bead_types = np.asarray(bead_types, dtype=np.int64)
        if bead_types.shape != (n_beads,):
            raise ValueError(f"bead_types has shape {bead_types.shape} but the data have {n_beads} beads")

    def groups(indices):
        """Rows of ``indices`` that share a fit: one per row, or pooled by bead types."""
        if bead_types is None:
            return [[row] for row in range(len(indices))]
        keys = {}
        for row, item in enumerate(indices.tolist()):
            types = tuple(bead_types[item].tolist())
            keys.setdefault(min(types, types[::-1]), []).append(row)
        return list(keys.values())

    fitted = []
    if "bonds" in terms and len(bonds):
        values = compute_distances(x, bonds)
        k, r0 = np.zeros(len(bonds)), np.zeros(len(bonds))
        for rows in groups(bonds):
            k[rows], r0[rows] = _fit_harmonic(values[:, rows].ravel(), kT, n_bins, lambda r: r * r, lower=0.0,
                                              what=f"bond {bonds[rows[0]].tolist()}")
        fitted.append(HarmonicBonds(bonds, k=k, r0=r0))

    if "angles" in terms:
        triples = angle_list(n_beads, bonds) if angles is None else _check_indices(angles, 3, n_beads, "angles")
        if len(triples):
            values = compute_angles(x, triples)
            k, theta0 = np.zeros(len(triples)), np.zeros(len(triples))
            for rows in groups(triples):
                k[rows], theta0[rows] = _fit_harmonic(values[:, rows].ravel(), kT, n_bins, np.sin, lower=0.0,
                                                      upper=math.pi, what=f"angle {triples[rows[0]].tolist()}")
            fitted.append(HarmonicAngles(triples, k=k, theta0=np.clip(theta0, 0.0, math.pi)))

    if "dihedrals" in terms:
        quads = (dihedral_list(n_beads, bonds) if dihedrals is None
                 else _check_indices(dihedrals, 4, n_beads, "dihedrals"))
        if len(quads):
            order = int(dihedral_order)
            if order < 1:
                raise ValueError(f"dihedral_order must be at least 1 (got {dihedral_order})")
            values = compute_dihedrals(x, quads)
            k, phase = np.zeros((len(quads), order)), np.zeros((len(quads), order))
            for rows in groups(quads):
                # a reversed dihedral (l, k, j, i) has the same angle, so pooling needs no sign flip
                k[rows], phase[rows] = _fit_fourier(values[:, rows].ravel(), kT, n_bins, order)
            fitted.append(FourierDihedrals(quads, k=k, phase=phase))

    if "repulsion" in terms:
        pairs = repulsion_pairs(n_beads, bonds, repulsion_min_separation)
        if len(pairs):
            smallest = compute_distances(x, pairs).min(axis=0)
            for rows in groups(pairs):
                smallest[rows] = smallest[rows].min()
            epsilon = kT if repulsion_epsilon is None else float(repulsion_epsilon)
            if not (repulsion_sigma_scale > 0):
                raise ValueError(f"repulsion_sigma_scale must be positive (got {repulsion_sigma_scale})")
            fitted.append(Repulsion(pairs, epsilon=np.full(len(pairs), epsilon),
                                    sigma=repulsion_sigma_scale * smallest))

    return PriorSet(n_beads, bonds, fitted, temperature)


# --------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------

def _internal_values(term: PriorTerm, coordinates, row: int):
    indices = term.indices[row:row + 1]
    if term.name in ("bonds", "repulsion"):
        return compute_distances(coordinates, indices)[:, 0], (lambda r: r * r), "distance (nm)"
    if term.name == "angles":
        return compute_angles(coordinates, indices)[:, 0], np.sin, "angle (rad)"
    return compute_dihedrals(coordinates, indices)[:, 0], (lambda phi: np.ones_like(phi)), "dihedral (rad)"


def _term_energy_1d(term: PriorTerm, row: int, grid: np.ndarray) -> np.ndarray:
    p = {key: value[row] for key, value in term.parameters.items()}
    if term.name == "bonds":
        return 0.5 * p["k"] * (grid - p["r0"]) ** 2
    if term.name == "angles":
        return 0.5 * p["k"] * (grid - p["theta0"]) ** 2
    if term.name == "dihedrals":
        n = np.arange(1, len(p["k"]) + 1)
        return (p["k"] * (1 + np.cos(np.outer(grid, n) - p["phase"]))).sum(-1)
    return p["epsilon"] * (p["sigma"] / grid) ** 6


def plot_prior_fit(priors: PriorSet, cg_coordinates, term: str, index: int = 0, temperature=None, n_bins: int = 100,
                   ax=None):
    """Plot the Boltzmann-inverted free energy of one internal coordinate and its fitted prior.

    Points: ``-kT ln(p(x) / J(x))`` from the histogram of the data; line: the prior term.  Both
    are shifted to a minimum of 0 (for the repulsion, the energy is drawn as is).

    Parameters
    ----------
    priors : PriorSet
    cg_coordinates : array_like, shape (n_frames, n_beads, 3)
    term : str
        A name in ``priors.terms``.
    index : int
        Which bond/angle/dihedral/pair of the term.
    temperature : float, optional
        Kelvin; default ``priors.temperature`` (300 K if unknown).
    n_bins : int
    ax : matplotlib Axes, optional
        Drawn into; default a new figure's axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    if term not in priors.terms:
        raise ValueError(f"the priors have no {term!r} term (they have {list(priors.terms)})")
    item = priors.terms[term]
    if not 0 <= index < len(item):
        raise ValueError(f"{term} has {len(item)} entries; index {index} is out of range")
    temperature = temperature or priors.temperature or 300.0
    kT = BOLTZMANN * temperature
    x = _as_coordinates(cg_coordinates)
    values, jacobian, label = _internal_values(item, x, index)
    span = (-math.pi, math.pi) if term == "dihedrals" else (values.min(), values.max())
    counts, edges = np.histogram(values, bins=n_bins, range=span)
    centers = 0.5 * (edges[1:] + edges[:-1])
    keep = counts > 0
    beads = "-".join(str(b) for b in item.indices[index])
    if term == "repulsion":
        grid = np.linspace(0.8 * values.min(), values.max(), 200)
        line = ax.plot(grid, _term_energy_1d(item, index, grid), label=f"{term} {beads} prior")[0]
        twin = ax.twinx()
        twin.hist(values, bins=n_bins, color=line.get_color(), alpha=0.3)
        twin.set_ylabel("counts")
    else:
        free = -kT * np.log(counts[keep] / jacobian(centers[keep]))
        free -= free.min()
        grid = np.linspace(*span, 200)
        energy = _term_energy_1d(item, index, grid)
        line = ax.plot(grid, energy - energy.min(), label=f"{term} {beads} prior")[0]
        ax.plot(centers[keep], free, "o", ms=3, color=line.get_color(), alpha=0.6, label="Boltzmann inversion")
        top = free.max() if len(free) else 1.0
        ax.set_ylim(-0.05 * top, 1.2 * top)
    ax.set_xlabel(label)
    ax.set_ylabel("energy (kJ/mol)")
    ax.legend(fontsize="small")
    return ax
