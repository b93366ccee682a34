"""The prior terms: one class per functional form, each with a float64 torch energy and an OpenMM force."""

from __future__ import annotations

import math

import numpy as np

from ..geometry import compute_angles, compute_dihedrals, compute_distances, compute_squared_distances
from .topology import _check_indices, dihedral_map_modes

__all__ = ["DihedralMap", "FourierDihedrals", "HarmonicAngles", "HarmonicBonds", "PriorTerm", "Repulsion", "TERM_NAMES"]

#: The names of the prior terms, in the order a PriorSet keeps them.
TERM_NAMES = ("bonds", "angles", "dihedrals", "repulsion", "dihedral_map")


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
        import torch

        return {key: torch.as_tensor(value, dtype=x.dtype, device=x.device) for key, value in self.parameters.items()}

    def _index_tensor(self, x):
        import torch

        return torch.as_tensor(self.indices, device=x.device)


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
        r = compute_distances(positions, self._index_tensor(positions))
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
        theta = compute_angles(positions, self._index_tensor(positions))
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
        import torch

        p = self._parameter_tensors(positions)
        phi = compute_dihedrals(positions, self._index_tensor(positions))
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
        r2 = compute_squared_distances(positions, self._index_tensor(positions))
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
        import torch

        p = self._parameter_tensors(positions)
        index = self._index_tensor(positions)
        phi = compute_dihedrals(positions, index[:, :4])
        psi = compute_dihedrals(positions, index[:, 1:])
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
