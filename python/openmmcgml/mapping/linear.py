"""Linear all-atom -> coarse-grained maps of coordinates and forces.

A :class:`LinearMap` holds two matrices of shape ``(n_beads, n_atoms)``: coordinate weights ``C``
(rows sum to 1; one atom per bead for a slice map, mass fractions for a centre-of-mass map) and
force weights ``W`` (see :mod:`openmmcgml.mapping.forcemap`), plus per-bead names, integer types,
masses and residues. It is described by a JSON-serialisable dict (:meth:`LinearMap.to_dict`) that
is stored in each coarse-grained file's ``mapping`` attribute and rebuilds the map exactly
(:meth:`LinearMap.from_dict`).

Examples
--------
>>> import numpy as np
>>> C = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
>>> cg = LinearMap(C, (C != 0).astype(float), bead_names=["A", "B"], bead_types=[0, 1], type_names=["A", "B"])
>>> cg.map_coordinates(np.array([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]])).tolist()
[[0.5, 0.0, 0.0], [3.0, 0.0, 0.0]]
>>> LinearMap.from_dict(cg.to_dict()).n_beads
2
"""

from __future__ import annotations

import io
import json

import numpy as np

from .forcemap import check_force_map

__all__ = ["MAP_FORMAT", "LinearMap"]

MAP_FORMAT = "openmm-cgml-map"
MAP_VERSION = 1


class LinearMap:
    """A linear coarse-grained map of coordinates and forces.

    Parameters
    ----------
    coordinate_weights : array_like
        ``C``, shape ``(n_beads, n_atoms)``; each row sums to 1.
    force_weights : array_like
        ``W``, same shape; ``W C^T = I``.
    bead_names : list of str
        A name per bead (``"CA"``); used as atom names in the CG topology.
    bead_types : list of int
        A type per bead, in ``[0, len(type_names))``.
    type_names : list of str
        A name per type.
    masses : array_like, optional
        Bead masses in amu (default: the summed mass of each bead's force atoms, or 1).
    residues : list of (str, int), optional
        Residue name and index of each bead in the CG topology (default: one residue per bead).
    elements : list of str, optional
        Element symbol written for each bead in PDB files (default ``"C"``).
    bonds : list of (int, int), optional
        Bonded bead pairs of the CG topology (default: consecutive beads).
    constraints : array_like, optional
        The all-atom constrained pairs the force map was built for; checked when `check`.
    name, coordinate_map, force_map : str, optional
        Labels stored in the description (``"ca"``, ``"slice"``, ``"aggregate"``).
    check : bool, optional
        Check the maps with :func:`~openmmcgml.mapping.forcemap.check_force_map` (default True).

    Raises
    ------
    ValueError
        For inconsistent shapes, types out of range, or (with `check`) an invalid force map.
    """

    def __init__(
        self,
        coordinate_weights,
        force_weights,
        *,
        bead_names,
        bead_types,
        type_names,
        masses=None,
        residues=None,
        elements=None,
        bonds=None,
        constraints=None,
        name="",
        coordinate_map="",
        force_map="",
        check=True,
    ):
        self.coordinate_weights = np.array(coordinate_weights, dtype=np.float64)
        self.force_weights = np.array(force_weights, dtype=np.float64)
        if self.coordinate_weights.ndim != 2:
            raise ValueError(f"coordinate weights must be a matrix (n_beads, n_atoms), not shape {self.coordinate_weights.shape}")
        if self.force_weights.shape != self.coordinate_weights.shape:
            raise ValueError(
                f"force weights have shape {self.force_weights.shape} but coordinate weights have shape "
                f"{self.coordinate_weights.shape}; they must be equal"
            )
        n_beads = self.n_beads
        self.bead_names = [str(value) for value in bead_names]
        self.bead_types = [int(value) for value in bead_types]
        self.type_names = [str(value) for value in type_names]
        for label, values in (("bead_names", self.bead_names), ("bead_types", self.bead_types)):
            if len(values) != n_beads:
                raise ValueError(f"{label} has {len(values)} entries for {n_beads} beads")
        bad = [t for t in self.bead_types if not 0 <= t < len(self.type_names)]
        if bad:
            raise ValueError(f"bead type {bad[0]} is outside [0, {len(self.type_names)}) (type_names has {len(self.type_names)} names)")
        if masses is None:
            masses = np.ones(n_beads)
        self.masses = np.asarray(masses, dtype=np.float64).reshape(-1)
        if self.masses.shape != (n_beads,) or np.any(self.masses <= 0):
            raise ValueError(f"masses must be {n_beads} positive numbers")
        self.residues = [(str(r), int(i)) for r, i in residues] if residues is not None else [("CG", i) for i in range(n_beads)]
        self.elements = [str(e) for e in elements] if elements is not None else ["C"] * n_beads
        if len(self.residues) != n_beads or len(self.elements) != n_beads:
            raise ValueError(f"residues and elements need one entry per bead ({n_beads})")
        if bonds is None:
            bonds = [(i, i + 1) for i in range(n_beads - 1)]
        self.bonds = [(int(i), int(j)) for i, j in bonds]
        self.constraints = np.zeros((0, 2), dtype=np.int64) if constraints is None else np.asarray(constraints, dtype=np.int64).reshape(-1, 2)
        self.name = name
        self.coordinate_map = coordinate_map
        self.force_map = force_map
        if check:
            check_force_map(self.coordinate_weights, self.force_weights, self.constraints)

    # ------------------------------------------------------------------ shape
    @property
    def n_beads(self):
        """Number of beads."""
        return self.coordinate_weights.shape[0]

    @property
    def n_atoms(self):
        """Number of all-atom particles the map reads."""
        return self.coordinate_weights.shape[1]

    @property
    def n_types(self):
        """Number of bead types (``len(type_names)``)."""
        return len(self.type_names)

    def bead_atoms(self, bead):
        """Atom indices of a bead's coordinate map."""
        return np.flatnonzero(self.coordinate_weights[bead]).tolist()

    def force_atoms(self, bead):
        """Atom indices whose forces a bead's force map sums."""
        return np.flatnonzero(self.force_weights[bead]).tolist()

    def __repr__(self):
        return (
            f"LinearMap(name={self.name!r}, n_atoms={self.n_atoms}, n_beads={self.n_beads}, "
            f"coordinate_map={self.coordinate_map!r}, force_map={self.force_map!r})"
        )

    # ------------------------------------------------------------------ mapping
    def _apply(self, weights, values, label):
        values = np.asarray(values)
        if values.shape[-2:] != (self.n_atoms, 3):
            raise ValueError(f"{label} have shape {values.shape}; the map expects (..., {self.n_atoms}, 3)")
        return np.einsum("ba,...ad->...bd", weights, values.astype(np.float64, copy=False))

    def map_coordinates(self, coordinates):
        """CG coordinates ``C x`` of all-atom coordinates, shape ``(..., n_atoms, 3)`` -> ``(..., n_beads, 3)``."""
        return self._apply(self.coordinate_weights, coordinates, "coordinates")

    def map_forces(self, forces):
        """CG forces ``W f`` of all-atom forces, shape ``(..., n_atoms, 3)`` -> ``(..., n_beads, 3)``."""
        return self._apply(self.force_weights, forces, "forces")

    def check(self, constraints=None):
        """Check the force map against `constraints` (default: those it was built for)."""
        check_force_map(self.coordinate_weights, self.force_weights, self.constraints if constraints is None else constraints)

    # ------------------------------------------------------------------ topology
    def cg_topology(self):
        """An :class:`openmm.app.Topology` with one atom per bead (one chain, residues as :attr:`residues`)."""
        import openmm.app as app

        topology = app.Topology()
        chain = topology.addChain()
        residues, atoms = {}, []
        for bead in range(self.n_beads):
            key = self.residues[bead]
            if key not in residues:
                residues[key] = topology.addResidue(key[0], chain, id=str(key[1] + 1))
            try:
                element = app.Element.getBySymbol(self.elements[bead])
            except KeyError:
                element = None
            atoms.append(topology.addAtom(self.bead_names[bead], element, residues[key]))
        for i, j in self.bonds:
            topology.addBond(atoms[i], atoms[j])
        return topology

    def cg_pdb(self, coordinates):
        """PDB text of the CG topology at `coordinates` (``(n_beads, 3)`` in nm)."""
        import openmm.app as app
        from openmm import unit

        buffer = io.StringIO()
        app.PDBFile.writeFile(self.cg_topology(), np.asarray(coordinates, dtype=np.float64) * unit.nanometer, buffer)
        return buffer.getvalue()

    # ------------------------------------------------------------------ description
    def to_dict(self):
        """A JSON-serialisable description that :meth:`from_dict` turns back into this map."""
        beads = []
        for bead in range(self.n_beads):
            atoms = self.bead_atoms(bead)
            force_atoms = self.force_atoms(bead)
            beads.append(
                {
                    "name": self.bead_names[bead],
                    "type": self.bead_types[bead],
                    "residue": self.residues[bead][0],
                    "residue_index": self.residues[bead][1],
                    "element": self.elements[bead],
                    "mass": float(self.masses[bead]),
                    "atoms": atoms,
                    "weights": [float(self.coordinate_weights[bead, a]) for a in atoms],
                    "force_atoms": force_atoms,
                    "force_weights": [float(self.force_weights[bead, a]) for a in force_atoms],
                }
            )
        return {
            "format": MAP_FORMAT,
            "version": MAP_VERSION,
            "name": self.name,
            "coordinate_map": self.coordinate_map,
            "force_map": self.force_map,
            "n_atoms": self.n_atoms,
            "type_names": list(self.type_names),
            "bonds": [list(pair) for pair in self.bonds],
            "constraints": self.constraints.tolist(),
            "beads": beads,
        }

    def to_json(self, **options):
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), **options)

    @classmethod
    def from_dict(cls, description, check=True):
        """Rebuild a map from :meth:`to_dict` output (or its JSON text).

        Raises
        ------
        ValueError
            If the description is not a map description or is inconsistent.
        """
        if isinstance(description, str):
            description = json.loads(description)
        if description.get("format") != MAP_FORMAT:
            raise ValueError(f"not a map description (format {description.get('format')!r}, expected {MAP_FORMAT!r})")
        if int(description.get("version", 0)) > MAP_VERSION:
            raise ValueError(f"map description version {description['version']} is newer than this openmmcgml reads ({MAP_VERSION})")
        n_atoms = int(description["n_atoms"])
        beads = description["beads"]
        C = np.zeros((len(beads), n_atoms))
        W = np.zeros((len(beads), n_atoms))
        for index, bead in enumerate(beads):
            for matrix, atoms_key, weights_key in ((C, "atoms", "weights"), (W, "force_atoms", "force_weights")):
                atoms = np.asarray(bead[atoms_key], dtype=np.int64)
                if atoms.size and (atoms.min() < 0 or atoms.max() >= n_atoms):
                    raise ValueError(f"bead {index} of the map names atoms outside [0, {n_atoms})")
                matrix[index, atoms] = bead[weights_key]
        return cls(
            C,
            W,
            bead_names=[bead["name"] for bead in beads],
            bead_types=[bead["type"] for bead in beads],
            type_names=description["type_names"],
            masses=[bead.get("mass", 1.0) for bead in beads],
            residues=[(bead.get("residue", "CG"), bead.get("residue_index", i)) for i, bead in enumerate(beads)],
            elements=[bead.get("element", "C") for bead in beads],
            bonds=description.get("bonds"),
            constraints=description.get("constraints"),
            name=description.get("name", ""),
            coordinate_map=description.get("coordinate_map", ""),
            force_map=description.get("force_map", ""),
            check=check,
        )

    def __eq__(self, other):
        if not isinstance(other, LinearMap):
            return NotImplemented
        return self.to_dict() == other.to_dict()
