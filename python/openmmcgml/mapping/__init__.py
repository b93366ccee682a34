"""All-atom -> coarse-grained maps of coordinates and forces.

- :class:`LinearMap`: coordinate weights ``C`` and force weights ``W``, a JSON description;
- builders (:func:`ca_map`, :func:`alanine_dipeptide_map`, :func:`slice_map`,
  :func:`center_of_mass_map`, :func:`residue_com_map`, :func:`build_map`);
- force maps (:mod:`~openmmcgml.mapping.forcemap`): ``"aggregate"`` (default) sums the forces of
  each mapped atom's constraint group, which is what makes mapped forces of a constrained oracle
  an unbiased estimate of the CG mean force; ``"slice"`` is the naive map, valid only without
  constraints on mapped atoms (see ``docs/mapping.md``);
- :func:`map_trajectory`, :func:`map_trajectory_file`: apply a map to frames in memory or on disk.

Examples
--------
>>> from openmmcgml.data import builtin_system
>>> from openmmcgml.mapping import alanine_dipeptide_map
>>> cg = alanine_dipeptide_map(builtin_system("alanine-dipeptide").build().topology)
>>> cg.bead_names, cg.type_names
(['C', 'N', 'CA', 'C', 'N'], ['ACE-C', 'ALA-N', 'ALA-CA', 'ALA-C', 'NME-N'])
"""

from .apply import cg_metadata, default_map_spec, map_trajectory, map_trajectory_file
from .builders import (
    AMINO_ACID_TYPES,
    alanine_dipeptide_map,
    build_map,
    ca_map,
    center_of_mass_map,
    residue_com_map,
    slice_map,
)
from .forcemap import (
    FORCE_MAPS,
    aggregate_force_weights,
    check_force_map,
    constraint_groups,
    force_weights,
    slice_force_weights,
    system_constraints,
)
from .linear import LinearMap

__all__ = [
    "AMINO_ACID_TYPES",
    "FORCE_MAPS",
    "LinearMap",
    "aggregate_force_weights",
    "alanine_dipeptide_map",
    "build_map",
    "ca_map",
    "center_of_mass_map",
    "cg_metadata",
    "check_force_map",
    "constraint_groups",
    "default_map_spec",
    "force_weights",
    "map_trajectory",
    "map_trajectory_file",
    "residue_com_map",
    "slice_force_weights",
    "slice_map",
    "system_constraints",
]
