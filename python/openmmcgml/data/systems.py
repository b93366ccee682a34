"""Built-in systems of the oracle: alanine dipeptide and chignolin (CLN025).

Each built-in system is a :class:`SystemSpec`: how to build its heavy atoms offline, its default
temperature and the name of its coarse-grained map (see :mod:`openmmcgml.mapping`).

- ``alanine-dipeptide``: ACE-ALA-NME, 22 atoms with hydrogens, built in the C7eq/beta region
  (phi = -80, psi = 150); CG map: the 5 backbone heavy atoms C(ACE), N, CA, C, N(NME).
- ``chignolin``: CLN025 ``YYDPETGTWY``, 166 atoms with hydrogens, built folded from the backbone
  and side-chain dihedrals of PDB entry 5AWL (model 1), so a run at 340 K starts in the native
  hairpin (at 450 K it unfolds within about 200 ps); CG map: one bead per residue at CA.

Examples
--------
>>> from openmmcgml.data.systems import builtin_system, BUILTIN_SYSTEMS
>>> sorted(BUILTIN_SYSTEMS)
['alanine-dipeptide', 'chignolin']
>>> molecule = builtin_system("chignolin").build()
>>> molecule.sequence
'YYDPETGTWY'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .peptides import Molecule, build_peptide

__all__ = ["BUILTIN_SYSTEMS", "SystemSpec", "builtin_system"]

# Dihedrals (degrees) of PDB 5AWL, model 1, in the conventions of build_peptide: per residue
# (phi, psi, omega) and the side-chain dihedrals that differ from PeptideBuilder's defaults.
_CLN025_BACKBONE = [
    (None, 150.4, None),
    (-93.3, 138.4, 169.4),
    (-75.6, 133.6, 178.6),
    (-71.8, -20.9, -174.3),
    (-91.9, -40.8, 179.4),
    (-106.3, -17.1, -172.9),
    (70.4, 17.0, -179.4),
    (-104.0, 153.3, -178.6),
    (-80.6, 133.2, -177.9),
    (-136.8, None, 174.3),
]
_CLN025_SIDE_CHAINS = [
    {"N_CA_CB_CG_diangle": -46.0, "CA_CB_CG_CD1_diangle": 96.2, "CA_CB_CG_CD2_diangle": -83.4},
    {"N_CA_CB_CG_diangle": -67.3, "CA_CB_CG_CD1_diangle": 99.5, "CA_CB_CG_CD2_diangle": -82.1},
    {"N_CA_CB_CG_diangle": -174.8, "CA_CB_CG_OD1_diangle": -77.3, "CA_CB_CG_OD2_diangle": 101.9},
    {"N_CA_CB_CG_diangle": 26.2, "CA_CB_CG_CD_diangle": -36.4},
    {"N_CA_CB_CG_diangle": -78.1, "CA_CB_CG_CD_diangle": -66.9, "CB_CG_CD_OE1_diangle": 151.5, "CB_CG_CD_OE2_diangle": -31.6},
    {"N_CA_CB_OG1_diangle": 63.1, "N_CA_CB_CG2_diangle": -54.5},
    None,
    {"N_CA_CB_OG1_diangle": 55.8, "N_CA_CB_CG2_diangle": -63.5},
    {"N_CA_CB_CG_diangle": -175.2, "CA_CB_CG_CD1_diangle": -98.1, "CA_CB_CG_CD2_diangle": 81.3},
    {"N_CA_CB_CG_diangle": 68.6, "CA_CB_CG_CD1_diangle": 95.2, "CA_CB_CG_CD2_diangle": -84.0},
]


def _build_alanine_dipeptide():
    return build_peptide("ACE-ALA-NME", phi=[None, -80.0, None], psi=[None, 150.0, None], name="alanine-dipeptide")


def _build_chignolin():
    phi, psi, omega = (list(column) for column in zip(*_CLN025_BACKBONE))
    return build_peptide("YYDPETGTWY", phi=phi, psi=psi, omega=omega, side_chains=_CLN025_SIDE_CHAINS, name="chignolin")


@dataclass(frozen=True)
class SystemSpec:
    """A built-in system.

    Attributes
    ----------
    name : str
        Its name (``"alanine-dipeptide"``).
    sequence : str
        Its sequence, as :func:`~openmmcgml.data.peptides.format_sequence` writes it.
    temperature : float
        Default oracle temperature in kelvin.
    cg_map : str
        Name of its coarse-grained map in :func:`openmmcgml.mapping.build_map`.
    builder : callable
        Returns the heavy-atom :class:`~openmmcgml.data.peptides.Molecule`.
    description : str
        One line for humans.
    """

    name: str
    sequence: str
    temperature: float
    cg_map: str
    builder: Callable[[], Molecule]
    description: str

    def build(self):
        """The heavy-atom structure (add hydrogens with :func:`~openmmcgml.data.peptides.add_hydrogens`)."""
        return self.builder()


BUILTIN_SYSTEMS = {
    "alanine-dipeptide": SystemSpec(
        name="alanine-dipeptide",
        sequence="ACE-ALA-NME",
        temperature=300.0,
        cg_map="alanine-dipeptide",
        builder=_build_alanine_dipeptide,
        description="ACE-ALA-NME (22 atoms); CG: C(ACE), N, CA, C, N(NME)",
    ),
    "chignolin": SystemSpec(
        name="chignolin",
        sequence="YYDPETGTWY",
        temperature=340.0,
        cg_map="ca",
        builder=_build_chignolin,
        description="CLN025 YYDPETGTWY (166 atoms), built folded as in PDB 5AWL; CG: one bead per residue at CA",
    ),
}


def builtin_system(name):
    """The built-in system called `name`.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    key = str(name).strip().lower().replace("_", "-")
    aliases = {"ala2": "alanine-dipeptide", "alanine": "alanine-dipeptide", "cln025": "chignolin"}
    key = aliases.get(key, key)
    if key not in BUILTIN_SYSTEMS:
        raise ValueError(f"unknown built-in system {name!r}; known systems: {', '.join(sorted(BUILTIN_SYSTEMS))}")
    return BUILTIN_SYSTEMS[key]
