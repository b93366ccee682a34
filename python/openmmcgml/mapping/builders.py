"""Building coarse-grained maps from an all-atom topology.

- :func:`slice_map`: one atom per bead (chosen atoms);
- :func:`center_of_mass_map`: the centre of mass of a group of atoms per bead;
- :func:`ca_map`: one bead per amino acid at its CA atom (chignolin's map);
- :func:`residue_com_map`: one bead per residue at the centre of mass of its atoms;
- :func:`alanine_dipeptide_map`: the 5 backbone heavy atoms C(ACE), N, CA, C, N(NME) of the
  CGnet papers;
- :func:`build_map`: any of these by name or from a description dict (for configs).

Every builder takes the oracle's constraints (pairs of atom indices) and builds the force map
named by ``force_map`` (default ``"aggregate"``, correct with constraints; ``"partition"``, also
correct and much less noisy, gives each bead the forces of every atom whose mass it carries; see
:mod:`openmmcgml.mapping.forcemap`).

Bead types. Amino-acid beads are typed by residue with a fixed vocabulary, the 20 standard amino
acids in the alphabetical order of their one-letter codes (:data:`AMINO_ACID_TYPES`: type 0 is
ALA, ..., type 19 is TYR), so a type means the same amino acid in every protein and
``len(type_names) == 20`` (chignolin uses 7 of them). Alanine dipeptide's beads get one type per
position (5 types: ``ACE-C, ALA-N, ALA-CA, ALA-C, NME-N``); ``bead_types="atom-name"`` gives the 3
types C, N, CA instead.

Bead masses: each atom's mass goes to the bead nearest to it along bonds (ties to the lower bead
index), so beads carry the whole molecule's mass (a CA bead weighs about its residue).

Examples
--------
>>> from openmmcgml.data import builtin_system
>>> from openmmcgml.mapping import ca_map
>>> topology = builtin_system("chignolin").build().topology
>>> cg = ca_map(topology)
>>> cg.n_beads, [cg.type_names[t] for t in cg.bead_types[:3]]
(10, ['TYR', 'TYR', 'ASP'])
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .forcemap import FORCE_MAPS, force_weights
from .linear import LinearMap

__all__ = [
    "AMINO_ACID_TYPES",
    "alanine_dipeptide_map",
    "build_map",
    "ca_map",
    "center_of_mass_map",
    "residue_com_map",
    "slice_map",
]

_ONE_LETTER = {
    "ALA": "A", "CYS": "C", "ASP": "D", "GLU": "E", "PHE": "F", "GLY": "G", "HIS": "H", "ILE": "I", "LYS": "K", "LEU": "L",
    "MET": "M", "ASN": "N", "PRO": "P", "GLN": "Q", "ARG": "R", "SER": "S", "THR": "T", "VAL": "V", "TRP": "W", "TYR": "Y",
}
_VARIANTS = {
    "HID": "HIS", "HIE": "HIS", "HIP": "HIS", "HSD": "HIS", "HSE": "HIS", "HSP": "HIS",
    "CYX": "CYS", "CYM": "CYS", "ASH": "ASP", "GLH": "GLU", "LYN": "LYS",
}
#: Residue type vocabulary of amino-acid beads: the 20 standard residues, ordered by one-letter code.
AMINO_ACID_TYPES = sorted(_ONE_LETTER, key=_ONE_LETTER.get)


def _masses(topology):
    masses = []
    for atom in topology.atoms():
        if atom.element is None:
            raise ValueError(f"atom {atom.name} of residue {atom.residue.name}{atom.residue.id} has no element, hence no mass")
        masses.append(atom.element.mass._value)
    return np.asarray(masses)


def _partition_atoms(topology, bead_atom_sets):
    """The bead of each atom: the one nearest along bonds (multi-source BFS, ties to the lower bead);
    -1 for atoms bonded to no bead."""
    n_atoms = topology.getNumAtoms()
    neighbours = [[] for _ in range(n_atoms)]
    for a, b in topology.bonds():
        neighbours[a.index].append(b.index)
        neighbours[b.index].append(a.index)
    owner = np.full(n_atoms, -1)
    queue = deque()
    for bead, atoms in enumerate(bead_atom_sets):
        for atom in atoms:
            if owner[atom] == -1:
                owner[atom] = bead
                queue.append(atom)
    while queue:
        atom = queue.popleft()
        for other in neighbours[atom]:
            if owner[other] == -1:
                owner[other] = owner[atom]
                queue.append(other)
    return owner


def _partition_masses(topology, bead_atom_sets, masses):
    """Give each atom's mass to the bead nearest along bonds (see :func:`_partition_atoms`)."""
    owner = _partition_atoms(topology, bead_atom_sets)
    bead_masses = np.zeros(len(bead_atom_sets))
    np.add.at(bead_masses, owner[owner >= 0], masses[owner >= 0])
    return bead_masses


def _finish(topology, C, bead_names, bead_types, type_names, residues, elements, constraints, force_map, name, coordinate_map, check):
    if force_map not in FORCE_MAPS:
        raise ValueError(f"unknown force map {force_map!r}; choose one of {', '.join(FORCE_MAPS)}")
    bead_atoms = [np.flatnonzero(row) for row in C]
    W = force_weights(C, constraints, force_map, owners=_partition_atoms(topology, bead_atoms) if force_map == "partition" else None)
    masses = _partition_masses(topology, bead_atoms, _masses(topology))
    chain_of = {atom.index: atom.residue.chain.index for atom in topology.atoms()}
    first_atoms = [int(np.flatnonzero(row)[0]) for row in C]
    bonds = [(i, i + 1) for i in range(len(C) - 1) if chain_of[first_atoms[i]] == chain_of[first_atoms[i + 1]]]
    return LinearMap(
        C,
        W,
        bead_names=bead_names,
        bead_types=bead_types,
        type_names=type_names,
        masses=masses,
        residues=residues,
        elements=elements,
        bonds=bonds,
        constraints=constraints,
        name=name,
        coordinate_map=coordinate_map,
        force_map=force_map,
        check=check,
    )


def _residue_type(residue):
    name = _VARIANTS.get(residue.name, residue.name)
    if name not in _ONE_LETTER:
        raise ValueError(
            f"residue {residue.name}{residue.id} has no amino-acid bead type; known residues: {', '.join(AMINO_ACID_TYPES)}"
        )
    return AMINO_ACID_TYPES.index(name)


def slice_map(
    topology,
    atoms,
    *,
    constraints=None,
    force_map="aggregate",
    bead_names=None,
    bead_types=None,
    type_names=None,
    name="slice",
    check=True,
):
    """One bead per chosen atom.

    Parameters
    ----------
    topology : openmm.app.Topology
        The all-atom topology (names, residues, elements, bonds).
    atoms : sequence of int
        Atom index of each bead, in bead order.
    constraints : array_like, optional
        Constrained atom pairs of the oracle's System.
    force_map : {"aggregate", "partition", "slice"}
        See :mod:`openmmcgml.mapping.forcemap`.
    bead_names, bead_types, type_names : optional
        Default: atom names, one type per distinct atom name.
    name : str
        Label stored in the description.
    check : bool
        Check the force map against `constraints` (``force_map="slice"`` with constraints on the
        mapped atoms fails the check; pass False only to study that error).

    Examples
    --------
    >>> from openmmcgml.data import builtin_system
    >>> topology = builtin_system("alanine-dipeptide").build().topology
    >>> slice_map(topology, [1, 3, 4]).bead_names
    ['C', 'N', 'CA']
    """
    all_atoms = list(topology.atoms())
    n_atoms = len(all_atoms)
    atoms = [int(a) for a in atoms]
    if not atoms:
        raise ValueError("a map needs at least one bead")
    bad = [a for a in atoms if not 0 <= a < n_atoms]
    if bad:
        raise ValueError(f"atom index {bad[0]} is outside the topology's {n_atoms} atoms")
    if len(set(atoms)) != len(atoms):
        raise ValueError("an atom appears in two beads of a slice map")
    C = np.zeros((len(atoms), n_atoms))
    C[np.arange(len(atoms)), atoms] = 1.0
    if bead_names is None:
        bead_names = [all_atoms[a].name for a in atoms]
    if bead_types is None:
        type_names = sorted(set(bead_names), key=bead_names.index)
        bead_types = [type_names.index(n) for n in bead_names]
    elif type_names is None:
        raise ValueError("bead_types need type_names")
    residues = [(all_atoms[a].residue.name, all_atoms[a].residue.index) for a in atoms]
    elements = [all_atoms[a].element.symbol if all_atoms[a].element is not None else "C" for a in atoms]
    return _finish(topology, C, bead_names, bead_types, type_names, residues, elements, constraints, force_map, name, "slice", check)


def center_of_mass_map(
    topology,
    groups,
    *,
    constraints=None,
    force_map="aggregate",
    bead_names=None,
    bead_types=None,
    type_names=None,
    name="center-of-mass",
    check=True,
):
    """One bead per group of atoms, at the group's centre of mass (element masses).

    Parameters
    ----------
    groups : sequence of sequence of int
        Atom indices of each bead; groups must not overlap.

    Other parameters are as :func:`slice_map` (default names ``B0, B1, ...`` with one type each).
    """
    n_atoms = topology.getNumAtoms()
    masses = _masses(topology)
    groups = [[int(a) for a in group] for group in groups]
    if not groups or any(not group for group in groups):
        raise ValueError("every bead of a centre-of-mass map needs at least one atom")
    seen = set()
    for index, group in enumerate(groups):
        bad = [a for a in group if not 0 <= a < n_atoms]
        if bad:
            raise ValueError(f"bead {index}: atom index {bad[0]} is outside the topology's {n_atoms} atoms")
        if seen & set(group):
            raise ValueError(f"bead {index} shares atoms {sorted(seen & set(group))} with an earlier bead")
        seen |= set(group)
    C = np.zeros((len(groups), n_atoms))
    for index, group in enumerate(groups):
        C[index, group] = masses[group] / masses[group].sum()
    all_atoms = list(topology.atoms())
    if bead_names is None:
        bead_names = [f"B{index}" for index in range(len(groups))]
    if bead_types is None:
        type_names = list(bead_names)
        bead_types = list(range(len(groups)))
    elif type_names is None:
        raise ValueError("bead_types need type_names")
    residues = [(all_atoms[g[0]].residue.name, all_atoms[g[0]].residue.index) for g in groups]
    return _finish(topology, C, bead_names, bead_types, type_names, residues, ["C"] * len(groups), constraints, force_map, name, "center-of-mass", check)


def _amino_acid_residues(topology):
    """The amino acids of a topology; caps, water and ions are skipped, an unknown residue with a CA is an error."""
    residues = []
    for residue in topology.residues():
        if _VARIANTS.get(residue.name, residue.name) in _ONE_LETTER:
            residues.append(residue)
        elif any(atom.name == "CA" and atom.element is not None and atom.element.symbol == "C" for atom in residue.atoms()):
            _residue_type(residue)  # raises, naming the residue
    return residues


def ca_map(topology, constraints=None, *, force_map="aggregate", bead_types="residue", check=True):
    """One bead per amino acid at its CA atom (caps and other residues get no bead).

    Parameters
    ----------
    bead_types : {"residue", "position"}
        ``"residue"``: by amino acid with :data:`AMINO_ACID_TYPES` (20 types); ``"position"``:
        one type per bead.

    Raises
    ------
    ValueError
        If the topology has no amino acid, or an amino acid lacks its CA atom.
    """
    atoms, types, residues = [], [], _amino_acid_residues(topology)
    if not residues:
        raise ValueError("the topology has no amino acid, hence no CA bead")
    for residue in residues:
        ca = [atom.index for atom in residue.atoms() if atom.name == "CA"]
        if not ca:
            raise ValueError(f"residue {residue.name}{residue.id} has no CA atom")
        atoms.append(ca[0])
        types.append(_residue_type(residue))
    if bead_types == "residue":
        type_names = list(AMINO_ACID_TYPES)
    elif bead_types == "position":
        type_names = [f"{residue.name}{i + 1}" for i, residue in enumerate(residues)]
        types = list(range(len(residues)))
    else:
        raise ValueError(f"bead_types must be 'residue' or 'position', not {bead_types!r}")
    return slice_map(
        topology, atoms, constraints=constraints, force_map=force_map, bead_names=["CA"] * len(atoms),
        bead_types=types, type_names=type_names, name="ca", check=check,
    )


def residue_com_map(topology, constraints=None, *, force_map="aggregate", heavy_atoms_only=False, bead_types="residue", check=True):
    """One bead per amino acid at the centre of mass of its atoms (or of its heavy atoms).

    With ``heavy_atoms_only`` the hydrogens are left out of the coordinate map, but the aggregate
    force map still sums their forces when they are constrained to a mapped heavy atom.
    """
    residues = _amino_acid_residues(topology)
    if not residues:
        raise ValueError("the topology has no amino acid")
    groups = []
    for residue in residues:
        atoms = [a.index for a in residue.atoms() if not (heavy_atoms_only and a.element is not None and a.element.symbol == "H")]
        groups.append(atoms)
    types = [_residue_type(residue) for residue in residues]
    if bead_types == "residue":
        type_names = list(AMINO_ACID_TYPES)
    elif bead_types == "position":
        type_names = [f"{residue.name}{i + 1}" for i, residue in enumerate(residues)]
        types = list(range(len(residues)))
    else:
        raise ValueError(f"bead_types must be 'residue' or 'position', not {bead_types!r}")
    return center_of_mass_map(
        topology, groups, constraints=constraints, force_map=force_map, bead_names=["COM"] * len(groups),
        bead_types=types, type_names=type_names, name="residue-com", check=check,
    )


#: Alanine dipeptide's beads: (residue name, atom name, type name).
_ALANINE_BEADS = [("ACE", "C", "ACE-C"), ("ALA", "N", "ALA-N"), ("ALA", "CA", "ALA-CA"), ("ALA", "C", "ALA-C"), ("NME", "N", "NME-N")]


def alanine_dipeptide_map(topology, constraints=None, *, force_map="aggregate", bead_types="position", check=True):
    """The 5-bead backbone map of alanine dipeptide: C(ACE), N, CA, C, N(NME).

    Parameters
    ----------
    bead_types : {"position", "atom-name"}
        ``"position"`` (default): 5 types, one per bead; ``"atom-name"``: 3 types C, N, CA.

    Raises
    ------
    ValueError
        If the topology is not ACE-ALA-NME or lacks one of the atoms.
    """
    residues = list(topology.residues())
    names = [residue.name for residue in residues]
    if names != ["ACE", "ALA", "NME"]:
        raise ValueError(f"the alanine-dipeptide map needs residues ACE-ALA-NME, not {'-'.join(names)}")
    atoms = []
    for residue_name, atom_name, _ in _ALANINE_BEADS:
        residue = residues[names.index(residue_name)]
        found = [atom.index for atom in residue.atoms() if atom.name == atom_name]
        if not found:
            raise ValueError(f"alanine dipeptide: residue {residue_name} has no atom {atom_name}")
        atoms.append(found[0])
    if bead_types == "position":
        type_names = [entry[2] for entry in _ALANINE_BEADS]
        types = list(range(5))
    elif bead_types == "atom-name":
        type_names = ["C", "N", "CA"]
        types = [type_names.index(entry[1]) for entry in _ALANINE_BEADS]
    else:
        raise ValueError(f"bead_types must be 'position' or 'atom-name', not {bead_types!r}")
    return slice_map(
        topology, atoms, constraints=constraints, force_map=force_map, bead_names=[entry[1] for entry in _ALANINE_BEADS],
        bead_types=types, type_names=type_names, name="alanine-dipeptide", check=check,
    )


_NAMED = {"alanine-dipeptide": alanine_dipeptide_map, "ca": ca_map, "residue-com": residue_com_map}


def build_map(spec, topology, constraints=None, *, force_map=None, check=True):
    """A map from a name, a dict of options, or a stored description.

    Parameters
    ----------
    spec : str, dict or LinearMap
        - a name: ``"alanine-dipeptide"``, ``"ca"``, ``"residue-com"``;
        - a dict with ``kind`` (one of those names, ``"atoms"`` with ``atoms: [indices]``, or
          ``"atom-names"`` with ``atom_names: [..]`` selecting those atoms in residue order,
          ``"com"`` with ``groups: [[indices], ...]``) and optional ``force_map``,
          ``bead_types``, ``heavy_atoms_only``;
        - a description from :meth:`LinearMap.to_dict` (``format: openmm-cgml-map``);
        - a :class:`LinearMap`, returned as it is after checking its atom count.
    topology : openmm.app.Topology
        The all-atom topology.
    constraints : array_like, optional
        Constrained atom pairs of the oracle.
    force_map : str, optional
        Overrides the spec's force map.

    Raises
    ------
    ValueError
        For an unknown name or kind, or a map that does not fit the topology.

    Examples
    --------
    >>> from openmmcgml.data import builtin_system
    >>> topology = builtin_system("alanine-dipeptide").build().topology
    >>> build_map({"kind": "atom-names", "atom_names": ["CA"]}, topology).n_beads
    1
    """
    n_atoms = topology.getNumAtoms()
    if isinstance(spec, LinearMap):
        result = spec
    elif isinstance(spec, dict) and spec.get("format") == "openmm-cgml-map":
        result = LinearMap.from_dict(spec, check=check)
    else:
        options = {"kind": spec} if isinstance(spec, str) else dict(spec)
        kind = str(options.pop("kind", "")).lower()
        chosen = force_map or options.pop("force_map", "aggregate")
        options.pop("force_map", None)
        if kind in _NAMED:
            allowed = {"bead_types"} | ({"heavy_atoms_only"} if kind == "residue-com" else set())
            unknown = set(options) - allowed
            if unknown:
                raise ValueError(f"map {kind!r} takes no option(s) {', '.join(sorted(unknown))}")
            result = _NAMED[kind](topology, constraints, force_map=chosen, check=check, **options)
        elif kind == "atoms":
            result = slice_map(topology, options["atoms"], constraints=constraints, force_map=chosen, check=check,
                               bead_names=options.get("bead_names"), bead_types=options.get("bead_types"),
                               type_names=options.get("type_names"))
        elif kind == "atom-names":
            wanted = set(options["atom_names"])
            atoms = [atom.index for atom in topology.atoms() if atom.name in wanted]
            if not atoms:
                raise ValueError(f"no atom is named {', '.join(sorted(wanted))}")
            result = slice_map(topology, atoms, constraints=constraints, force_map=chosen, check=check, name="atom-names")
        elif kind == "com":
            result = center_of_mass_map(topology, options["groups"], constraints=constraints, force_map=chosen, check=check,
                                        bead_names=options.get("bead_names"), bead_types=options.get("bead_types"),
                                        type_names=options.get("type_names"))
        else:
            raise ValueError(
                f"unknown map {kind!r}; use one of {', '.join(sorted(_NAMED))}, 'atoms', 'atom-names', 'com', or a stored description"
            )
    if result.n_atoms != n_atoms:
        raise ValueError(f"the map reads {result.n_atoms} atoms but the all-atom topology has {n_atoms}")
    return result
