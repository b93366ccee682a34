"""The set of prior terms of one molecule: OpenMM forces, torch energies and forces, JSON."""

from __future__ import annotations

from typing import Optional

from .terms import _TERM_CLASSES, TERM_NAMES, PriorTerm
from .topology import _check_indices, chain_bonds

__all__ = ["PriorSet"]

_FORMAT = "openmm-cgml-priors"
_FORMAT_VERSION = 1


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
    >>> from openmmcgml.priors import HarmonicBonds
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
        import torch

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
        import torch

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
        import torch

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
