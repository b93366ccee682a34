"""The beads a CGSchNet acts on: :class:`CGTopology` (bead types, molecules, exclusions)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np
from torch import Tensor

__all__ = ["CGTopology"]


def _index_array(value, name: str) -> np.ndarray:
    """Convert ``value`` to an int64 array, refusing anything that is not integer-typed."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers (got an array of dtype {array.dtype})")
    return array.astype(np.int64)


def _typed_force(force):
    """``force`` as a ``CGSchNetForce``; a plain ``openmm.Force`` (``system.getForce(i)``) is cast."""
    from openmmcgml.forces import CGSchNetForce

    return force if isinstance(force, CGSchNetForce) else CGSchNetForce.cast(force)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class CGTopology:
    """The beads a :class:`CGSchNet` acts on: bead types, molecule ids and exclusions.

    A topology is validated once on construction and then caches its candidate
    pair list, so passing one topology to many model calls avoids rebuilding it.

    Parameters
    ----------
    bead_types : array_like of int, shape (n_beads,)
        The type of each bead, in ``[0, n_types)`` of the model it is used with.
    molecules : array_like of int, shape (n_beads,), optional
        A non-negative molecule id per bead; beads of different molecules never
        interact.  Default: every bead in molecule 0.
    exclusions : array_like of int, shape (n_exclusions, 2), optional
        Unordered pairs of bead indices of the same molecule that do not
        interact.  A pair listed twice (in either order), a bead paired with
        itself, an index out of range or a pair joining two molecules is an error.

    Attributes
    ----------
    bead_types, molecules : ndarray of int64, shape (n_beads,)
        Read-only copies of the inputs (``molecules`` filled with zeros if not given).
    exclusions : ndarray of int64, shape (n_exclusions, 2)
        Read-only copy of the exclusions in the given order, each written ``(min, max)``.

    Raises
    ------
    ValueError
        Naming the first problem found.

    Examples
    --------
    Two copies of a three-bead molecule, with the 1-2 neighbours excluded:

    >>> top = CGTopology([0, 1, 0, 0, 1, 0], molecules=[0, 0, 0, 1, 1, 1],
    ...                  exclusions=[(0, 1), (1, 2), (3, 4), (4, 5)])
    >>> top.n_beads
    6
    >>> top.pairs.tolist()
    [[0, 2], [3, 5]]
    """

    bead_types: np.ndarray
    molecules: Optional[np.ndarray] = None
    exclusions: Optional[np.ndarray] = None

    def __post_init__(self):
        types = _index_array(self.bead_types, "bead_types")
        if types.ndim != 1:
            raise ValueError(f"bead_types must be one-dimensional (got shape {types.shape})")
        n = types.shape[0]
        if n == 0:
            raise ValueError("bead_types must not be empty")
        if (types < 0).any():
            i = int(np.flatnonzero(types < 0)[0])
            raise ValueError(f"bead type {types[i]} of bead {i} is negative")

        if self.molecules is None:
            molecules = np.zeros(n, dtype=np.int64)
        else:
            molecules = _index_array(self.molecules, "molecules")
            if molecules.shape != (n,):
                raise ValueError(f"molecules has shape {molecules.shape} but there are {n} beads")
            if (molecules < 0).any():
                i = int(np.flatnonzero(molecules < 0)[0])
                raise ValueError(f"molecule id {molecules[i]} of bead {i} is negative")

        if self.exclusions is None:
            exclusions = np.zeros((0, 2), dtype=np.int64)
        else:
            exclusions = _index_array(self.exclusions, "exclusions")
            if exclusions.size == 0:
                exclusions = exclusions.reshape(0, 2)
            if exclusions.ndim != 2 or exclusions.shape[1] != 2:
                raise ValueError(f"exclusions must have shape (n_exclusions, 2) (got {exclusions.shape})")
            seen = set()
            for e, (i, j) in enumerate(exclusions.tolist()):
                where = f"exclusion {e} ({i}, {j})"
                if not (0 <= i < n and 0 <= j < n):
                    raise ValueError(f"{where} refers to a bead out of range [0, {n})")
                if i == j:
                    raise ValueError(f"{where} pairs a bead with itself")
                if molecules[i] != molecules[j]:
                    raise ValueError(f"{where} joins two different molecules")
                key = (min(i, j), max(i, j))
                if key in seen:
                    raise ValueError(f"{where} is a duplicate")
                seen.add(key)
            exclusions = np.sort(exclusions, axis=1)

        object.__setattr__(self, "bead_types", _readonly(types))
        object.__setattr__(self, "molecules", _readonly(molecules))
        object.__setattr__(self, "exclusions", _readonly(exclusions))

    @property
    def n_beads(self) -> int:
        """The number of beads."""
        return self.bead_types.shape[0]

    @cached_property
    def pairs(self) -> np.ndarray:
        """The candidate pairs ``(i, j)``, ``i < j``, same molecule, not excluded, sorted.

        Which of them interact depends on the positions (``r_ij < cutoff``).
        """
        n = self.n_beads
        order = np.argsort(self.molecules, kind="stable")
        _, starts, counts = np.unique(self.molecules[order], return_index=True, return_counts=True)
        chunks = [np.zeros((0, 2), dtype=np.int64)]
        for start, count in zip(starts, counts):
            beads = order[start:start + count]  # ascending: the sort is stable
            a, b = np.triu_indices(count, 1)
            chunks.append(np.stack([beads[a], beads[b]], axis=1))
        pairs = np.concatenate(chunks)
        if len(self.exclusions):
            excluded = np.isin(pairs[:, 0] * n + pairs[:, 1], self.exclusions[:, 0] * n + self.exclusions[:, 1])
            pairs = pairs[~excluded]
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        return _readonly(pairs)

    def check_types(self, n_types: int) -> None:
        """Raise ValueError if a bead type is not in ``[0, n_types)``."""
        bad = np.flatnonzero(self.bead_types >= n_types)
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"bead type {self.bead_types[i]} of bead {i} is out of range [0, {n_types})")

    @classmethod
    def coerce(cls, bead_types, molecules=None, exclusions=None) -> "CGTopology":
        """Return ``bead_types`` if it is a topology already, else build one from the arguments."""
        if isinstance(bead_types, CGTopology):
            if molecules is not None or exclusions is not None:
                raise ValueError("molecules and exclusions must be None when a CGTopology is given")
            return bead_types
        return cls(bead_types, molecules, exclusions)

    @classmethod
    def from_force(cls, force) -> "CGTopology":
        """Read the bead types, molecules and exclusions of a ``CGSchNetForce``.

        Bead ``i`` of the topology is entry ``i`` of ``force.getParticles()``
        (System particle ``i`` when that list is empty).  A plain ``openmm.Force``
        holding a CGSchNetForce (as ``system.getForce(i)`` returns) is accepted.
        """
        force = _typed_force(force)
        types = list(force.getBeadTypes())
        molecules = list(force.getMolecules()) or None
        exclusions = [tuple(force.getExclusionParticles(e)) for e in range(force.getNumExclusions())]
        return cls(types, molecules, exclusions or None)
