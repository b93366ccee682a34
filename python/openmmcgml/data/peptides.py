"""Peptide structures for the all-atom oracle.

Three ways in, one object out (:class:`Molecule`: an OpenMM topology and positions in nm):

- :func:`build_peptide` builds a peptide from its sequence with PeptideBuilder (heavy atoms only),
  with optional ACE/NME caps and chosen backbone and side-chain dihedrals;
- :func:`load_pdb` reads a user's PDB file and checks it with PDBFixer (unknown residues, missing
  heavy atoms and missing residues are errors, not silent repairs);
- :func:`add_hydrogens` completes either with OpenMM's :class:`~openmm.app.Modeller` for a given
  force field and checks that every residue then matches a force-field template.

Sequences are one-letter strings (``"YYDPETGTWY"``) or residue names joined by ``-``
(``"ACE-ALA-NME"``); see :func:`parse_sequence`.

Examples
--------
>>> from openmmcgml.data.peptides import build_peptide
>>> peptide = build_peptide("ACE-ALA-NME")
>>> peptide.residue_names
['ACE', 'ALA', 'NME']
>>> peptide.n_atoms  # heavy atoms only until add_hydrogens
10
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass, field

import numpy as np
import openmm
import openmm.app as app
from openmm import unit

__all__ = [
    "AMINO_ACIDS",
    "CAPS",
    "Molecule",
    "add_hydrogens",
    "build_peptide",
    "format_sequence",
    "load_pdb",
    "parse_sequence",
]

#: The 20 standard amino acids: one-letter code -> residue name.
AMINO_ACIDS = {
    "A": "ALA", "C": "CYS", "D": "ASP", "E": "GLU", "F": "PHE", "G": "GLY", "H": "HIS",
    "I": "ILE", "K": "LYS", "L": "LEU", "M": "MET", "N": "ASN", "P": "PRO", "Q": "GLN",
    "R": "ARG", "S": "SER", "T": "THR", "V": "VAL", "W": "TRP", "Y": "TYR",
}
_THREE_TO_ONE = {name: letter for letter, name in AMINO_ACIDS.items()}

#: Terminal caps that may start (ACE) or end (NME) a sequence.
CAPS = {"ACE": "first", "NME": "last"}

#: Residue names OpenMM's PDB reader turns into a standard name (protonation and disulfide variants).
_VARIANTS = {
    "HID": "HIS", "HIE": "HIS", "HIP": "HIS", "HSD": "HIS", "HSE": "HIS", "HSP": "HIS",
    "CYX": "CYS", "CYM": "CYS", "ASH": "ASP", "GLH": "GLU", "LYN": "LYS",
}


@dataclass
class Molecule:
    """A structure: an OpenMM topology with positions.

    Parameters
    ----------
    topology : openmm.app.Topology
        Atoms, residues, chains and bonds.
    positions : numpy.ndarray
        Shape ``(n_atoms, 3)``, in nm.
    name : str, optional
        A label (the built-in system's name, a file name).

    Examples
    --------
    >>> from openmmcgml.data.peptides import build_peptide
    >>> molecule = build_peptide("GG")
    >>> text = molecule.to_pdb_string()
    >>> Molecule.from_pdb_string(text).n_atoms == molecule.n_atoms
    True
    """

    topology: app.Topology
    positions: np.ndarray
    name: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        positions = self.positions
        if isinstance(positions, unit.Quantity):
            positions = positions.value_in_unit(unit.nanometer)
        self.positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        if len(self.positions) != self.topology.getNumAtoms():
            raise ValueError(
                f"the molecule has {self.topology.getNumAtoms()} atoms in its topology but {len(self.positions)} positions"
            )

    @property
    def n_atoms(self):
        """Number of atoms."""
        return self.topology.getNumAtoms()

    @property
    def residue_names(self):
        """Residue names, in order."""
        return [residue.name for residue in self.topology.residues()]

    @property
    def sequence(self):
        """The sequence in the form :func:`format_sequence` writes."""
        return format_sequence(self.residue_names)

    def to_pdb_string(self):
        """The structure as PDB text (with CONECT records for non-standard bonds)."""
        buffer = io.StringIO()
        app.PDBFile.writeFile(self.topology, self.positions * unit.nanometer, buffer, keepIds=False)
        return buffer.getvalue()

    def write_pdb(self, path):
        """Write the structure to a PDB file at `path`."""
        with open(path, "w") as handle:
            handle.write(self.to_pdb_string())

    @classmethod
    def from_pdb_string(cls, text, name=""):
        """Read a structure from PDB text (as :meth:`to_pdb_string` writes it)."""
        pdb = app.PDBFile(io.StringIO(text))
        return cls(pdb.topology, pdb.getPositions(asNumpy=True), name=name)


def parse_sequence(sequence):
    """Residue names of a sequence.

    Parameters
    ----------
    sequence : str or sequence of str
        One-letter codes of the 20 standard amino acids (``"YYDPETGTWY"``, case-insensitive), or
        residue names joined by ``-`` or spaces (``"ACE-ALA-NME"``), or a list of residue names.
        A string with neither ``-`` nor spaces is always read as one-letter codes (``"ALA"`` is
        Ala-Leu-Ala; write ``["ALA"]`` for a single alanine).
        ``ACE`` may only come first and ``NME`` only last.

    Returns
    -------
    list of str
        Residue names (``ALA``, ``TYR``, ...).

    Raises
    ------
    ValueError
        For an empty sequence, an unknown residue (named, with its position), or a cap that is
        not at its end of the chain.

    Examples
    --------
    >>> parse_sequence("AY")
    ['ALA', 'TYR']
    >>> parse_sequence("ace-ala-nme")
    ['ACE', 'ALA', 'NME']
    >>> parse_sequence("AXA")
    Traceback (most recent call last):
    ...
    ValueError: unknown residue 'X' at position 2 of sequence 'AXA'; one-letter codes are ACDEFGHIKLMNPQRSTVWY
    """
    if isinstance(sequence, str):
        text = sequence.strip()
        if not text:
            raise ValueError("the sequence is empty")
        if "-" in text or " " in text:
            tokens = [token for token in text.replace("-", " ").split() if token]
            names = [token.upper() for token in tokens]
            one_letter = False
        else:
            names = list(text.upper())
            one_letter = True
    else:
        names = [str(name).upper() for name in sequence]
        one_letter = False
        if not names:
            raise ValueError("the sequence is empty")
    residues = []
    for position, name in enumerate(names, start=1):
        if one_letter:
            if name not in AMINO_ACIDS:
                raise ValueError(
                    f"unknown residue {name!r} at position {position} of sequence {sequence!r}; "
                    f"one-letter codes are {''.join(sorted(AMINO_ACIDS))}"
                )
            residues.append(AMINO_ACIDS[name])
            continue
        if len(name) == 1 and name in AMINO_ACIDS:
            name = AMINO_ACIDS[name]
        name = _VARIANTS.get(name, name)
        if name not in _THREE_TO_ONE and name not in CAPS:
            raise ValueError(
                f"unknown residue {name!r} at position {position} of sequence {sequence!r}; known residues are "
                f"the 20 standard amino acids ({', '.join(sorted(_THREE_TO_ONE))}) and the caps ACE, NME"
            )
        residues.append(name)
    for position, name in enumerate(residues):
        if name == "ACE" and position != 0:
            raise ValueError(f"the cap ACE can only start a sequence (found at position {position + 1} of {sequence!r})")
        if name == "NME" and position != len(residues) - 1:
            raise ValueError(f"the cap NME can only end a sequence (found at position {position + 1} of {sequence!r})")
    if all(name in CAPS for name in residues):
        raise ValueError(f"the sequence {sequence!r} has no amino acid between its caps")
    return residues


def format_sequence(residue_names):
    """The canonical text of a sequence: one-letter codes when every residue is a standard amino
    acid, otherwise the residue names joined by ``-``.

    Examples
    --------
    >>> format_sequence(["TYR", "TYR", "ASP"])
    'YYD'
    >>> format_sequence(["ACE", "ALA", "NME"])
    'ACE-ALA-NME'
    """
    names = [_VARIANTS.get(name, name) for name in residue_names]
    if all(name in _THREE_TO_ONE for name in names):
        return "".join(_THREE_TO_ONE[name] for name in names)
    return "-".join(names)


def _per_residue(values, n, label, default):
    if values is None:
        return [default] * n
    if np.isscalar(values):
        return [float(values)] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{label} has {len(values)} values but the sequence has {n} residues (use None for the default)")
    return [default if value is None else float(value) for value in values]


def build_peptide(sequence, *, phi=None, psi=None, omega=None, side_chains=None, name=""):
    """Build a peptide (heavy atoms only) from its sequence with PeptideBuilder.

    Parameters
    ----------
    sequence : str or list of str
        See :func:`parse_sequence`. ``ACE`` and ``NME`` caps are built from the backbone atoms of
        an extra residue (ACE: its CA as CH3, C and O; NME: its N, and its CA as the methyl C),
        so the cap geometry follows the internal coordinates of the peptide bond.
    phi, psi, omega : float or sequence of float, optional
        Backbone dihedrals in degrees, one per residue of the parsed sequence (caps included;
        ``None`` entries and missing arguments take the defaults phi = -120, psi = 140,
        omega = 180, an extended chain). ``phi[i]`` is C(i-1)-N(i)-CA(i)-C(i), ``psi[i]`` is
        N(i)-CA(i)-C(i)-N(i+1), ``omega[i]`` is CA(i-1)-C(i-1)-N(i)-CA(i). Entries with no
        meaning (the phi of the first residue, the psi of the last) are ignored.
    side_chains : sequence of dict, optional
        One dict per residue (or ``None``) of PeptideBuilder geometry attributes in degrees, e.g.
        ``{"N_CA_CB_CG_diangle": -60.0}`` for a chi1 angle.
    name : str, optional
        Label of the molecule.

    Returns
    -------
    Molecule
        Heavy atoms, with an OXT atom on a free C-terminus; add hydrogens with :func:`add_hydrogens`.

    Raises
    ------
    ValueError
        For an unknown residue, a dihedral list of the wrong length or an unknown geometry attribute.

    Examples
    --------
    >>> peptide = build_peptide("YYDPETGTWY")
    >>> peptide.sequence, peptide.n_atoms
    ('YYDPETGTWY', 93)
    >>> ala2 = build_peptide("ACE-ALA-NME", phi=[None, -80.0, None], psi=[None, 150.0, None])
    >>> [atom.name for atom in ala2.topology.atoms()]
    ['CH3', 'C', 'O', 'N', 'CA', 'C', 'O', 'CB', 'N', 'C']
    """
    try:
        from PeptideBuilder import Geometry
        from PeptideBuilder import PeptideBuilder as builder
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("building a peptide from its sequence needs PeptideBuilder (pip install PeptideBuilder)") from error

    residues = parse_sequence(sequence)
    n = len(residues)
    phis = _per_residue(phi, n, "phi", -120.0)
    psis = _per_residue(psi, n, "psi", 140.0)
    omegas = _per_residue(omega, n, "omega", 180.0)
    if side_chains is not None and len(side_chains) != n:
        raise ValueError(f"side_chains has {len(side_chains)} entries but the sequence has {n} residues")

    geometries = []
    for index, residue in enumerate(residues):
        # A cap is built as an alanine whose backbone atoms are then renamed.
        letter = "A" if residue in CAPS else _THREE_TO_ONE[residue]
        geometry = Geometry.geometry(letter)
        geometry.phi = phis[index]
        geometry.omega = omegas[index]
        if index > 0:
            geometry.psi_im1 = psis[index - 1]
        if side_chains is not None and side_chains[index]:
            for attribute, value in side_chains[index].items():
                if not hasattr(geometry, attribute) or not attribute.endswith(("_diangle", "_angle", "_length")):
                    raise ValueError(
                        f"residue {index + 1} ({residue}) has no side-chain geometry attribute {attribute!r}"
                    )
                setattr(geometry, attribute, float(value))
        geometries.append(geometry)
    structure = builder.make_structure_from_geos(geometries)
    if residues[-1] != "NME":
        builder.add_terminal_OXT(structure)

    lines = []
    serial = 0
    chain_residues = list(structure[0]["A"])
    for index, (residue_name, residue) in enumerate(zip(residues, chain_residues)):
        atoms = [(atom.get_name(), atom.element, atom.get_coord()) for atom in residue]
        if residue_name == "ACE":
            keep = {"CA": ("CH3", "C"), "C": ("C", "C"), "O": ("O", "O")}
        elif residue_name == "NME":
            keep = {"N": ("N", "N"), "CA": ("C", "C")}
        else:
            keep = None
        for atom_name, element, coordinate in atoms:
            if keep is not None:
                if atom_name not in keep:
                    continue
                atom_name, element = keep[atom_name]
            serial += 1
            padded = f" {atom_name:<3s}" if len(atom_name) < 4 else atom_name
            x, y, z = (float(value) for value in coordinate)
            lines.append(
                f"ATOM  {serial:5d} {padded:4s} {residue_name:3s} A{index + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}"
                f"  1.00  0.00          {element:>2s}"
            )
    lines += ["TER", "END"]
    pdb = app.PDBFile(io.StringIO("\n".join(lines) + "\n"))
    return Molecule(pdb.topology, pdb.getPositions(asNumpy=True), name=name or format_sequence(residues))


def _platform(platform):
    if isinstance(platform, openmm.Platform):
        return platform
    return openmm.Platform.getPlatformByName(platform)


def _describe(residue):
    chain = residue.chain.id or str(residue.chain.index)
    return f"{residue.name}{residue.id} (chain {chain})"


def _check_residue_names(topology, source):
    unknown = []
    for residue in topology.residues():
        if residue.name not in _THREE_TO_ONE and residue.name not in CAPS and residue.name not in _VARIANTS:
            unknown.append(_describe(residue))
    if unknown:
        raise ValueError(
            f"{source}: unknown residue(s) {', '.join(unknown)}; the oracle simulates peptides of the 20 standard "
            "amino acids with optional ACE/NME caps (remove ligands and replace modified residues first)"
        )


_WATER = {"HOH", "WAT", "SOL", "H2O", "DOD", "TIP", "TIP3", "TP3", "SPC"}


def load_pdb(path, *, add_missing_atoms=False, platform="CPU"):
    """Read a peptide from a user's PDB (or PDBx/mmCIF) file and check it.

    Water and single-atom ions are removed. Any other residue must be one of the 20 standard
    amino acids (or a protonation variant such as HID) or an ACE/NME cap: an unknown residue,
    ligand or modified amino acid is an error naming it (remove or replace it first). A missing
    terminal OXT atom is added; any other missing heavy atom is an error unless
    `add_missing_atoms`, when PDBFixer builds it. Existing hydrogens are kept; add the rest with
    :func:`add_hydrogens`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    add_missing_atoms : bool, optional
        Let PDBFixer build missing heavy atoms instead of raising.
    platform : str or openmm.Platform, optional
        OpenMM platform for PDBFixer's geometry clean-up (default CPU).

    Returns
    -------
    Molecule

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For an unknown or non-standard residue, missing heavy atoms or missing residues, naming
        each residue and atom.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "gly.pdb")
    >>> build_peptide("GAG").write_pdb(path)
    >>> load_pdb(path).sequence
    'GAG'
    """
    try:
        from pdbfixer import PDBFixer
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("reading a PDB file needs PDBFixer (pip install pdbfixer)") from error

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"PDB file not found: {path}")
    fixer = PDBFixer(filename=path, platform=_platform(platform))
    fixer.findNonstandardResidues()
    if fixer.nonstandardResidues:
        described = ", ".join(f"{_describe(residue)} (standard form {standard})" for residue, standard in fixer.nonstandardResidues)
        raise ValueError(f"{path}: non-standard residue(s) {described}; replace them before running the oracle")
    solvent = [residue for residue in fixer.topology.residues() if residue.name in _WATER or len(list(residue.atoms())) == 1]
    if solvent:
        modeller = app.Modeller(fixer.topology, fixer.positions)
        modeller.delete(solvent)
        fixer.topology, fixer.positions = modeller.topology, modeller.positions
    if fixer.topology.getNumAtoms() == 0:
        raise ValueError(f"{path}: no peptide atoms left after removing water and ions")
    _check_residue_names(fixer.topology, path)
    fixer.findMissingResidues()
    if fixer.missingResidues:
        chains = list(fixer.topology.chains())
        described = "; ".join(
            f"{', '.join(names)} before residue {index + 1} of chain {chains[chain].id}"
            for (chain, index), names in sorted(fixer.missingResidues.items())
        )
        raise ValueError(f"{path}: residues listed in SEQRES are missing from the coordinates: {described}")
    fixer.findMissingAtoms()
    if fixer.missingAtoms and not add_missing_atoms:
        described = "; ".join(
            f"{_describe(residue)}: {', '.join(atom.name for atom in atoms)}"
            for residue, atoms in sorted(fixer.missingAtoms.items(), key=lambda item: item[0].index)
        )
        raise ValueError(
            f"{path}: missing heavy atoms in {described}; pass add_missing_atoms=True to let PDBFixer build them"
        )
    if fixer.missingAtoms or fixer.missingTerminals:
        fixer.addMissingAtoms()
    name = os.path.splitext(os.path.basename(path))[0]
    return Molecule(fixer.topology, fixer.positions, name=name)


def add_hydrogens(molecule, forcefield, *, pH=7.0, platform="CPU"):
    """Add the hydrogens a force field expects and check every residue matches a template.

    Parameters
    ----------
    molecule : Molecule
        Heavy atoms (hydrogens already present are kept).
    forcefield : openmm.app.ForceField
        The force field whose templates the hydrogens must match.
    pH : float, optional
        pH for protonation states (default 7).
    platform : str or openmm.Platform, optional
        Platform of the hydrogen-placement minimisation. Always named: with PoCL installed, the
        default platform would be OpenCL, where OpenMM's minimiser crashes.

    Returns
    -------
    Molecule
        A new molecule with hydrogens, the same for the same input.

    Raises
    ------
    ValueError
        For an unknown residue, or a residue that matches no template of the force field.

    Examples
    --------
    >>> import openmm.app as app
    >>> forcefield = app.ForceField("amber99sbildn.xml", "amber99_obc.xml")
    >>> add_hydrogens(build_peptide("ACE-ALA-NME"), forcefield).n_atoms
    22
    """
    _check_residue_names(molecule.topology, molecule.name or "molecule")
    modeller = app.Modeller(molecule.topology, molecule.positions * unit.nanometer)
    # Modeller starts some hydrogens at positions drawn from Python's global `random`: a fixed
    # stream makes the structure, and every oracle run built from it, reproducible.
    saved = random.getstate()
    random.seed(0)
    try:
        modeller.addHydrogens(forcefield, pH=pH, platform=_platform(platform))
    except ValueError as error:
        raise ValueError(f"{molecule.name or 'molecule'}: adding hydrogens failed: {error}") from error
    finally:
        random.setstate(saved)
    unmatched = forcefield.getUnmatchedResidues(modeller.topology)
    if unmatched:
        raise ValueError(
            f"{molecule.name or 'molecule'}: residue(s) {', '.join(_describe(residue) for residue in unmatched)} match no "
            "template of the force field after adding hydrogens (missing or extra atoms?)"
        )
    return Molecule(modeller.topology, modeller.getPositions(), name=molecule.name, metadata=dict(molecule.metadata))
