"""Prior potentials of a coarse-grained molecule, fitted by Boltzmann inversion.

A learned CG potential is trained on top of simple physical priors: bonds, angles, dihedrals and
a short-range repulsion between non-bonded beads.  The priors keep a simulation in the region the
training data cover (no chain crossing through itself, no stretched bonds) and leave the network
only the many-body remainder to learn.

The package, one job per module:

- :mod:`~openmmcgml.priors.topology`: the bond graph and the bead tuples derived from it (angles,
  dihedrals, pairs of dihedrals, repulsion pairs);
- :mod:`~openmmcgml.priors.terms`: the term classes, one per functional form;
- :mod:`~openmmcgml.priors.priorset`: :class:`PriorSet`, the terms of one molecule;
- :mod:`~openmmcgml.priors.fitting`: :func:`fit_priors` (Boltzmann inversion);
- :mod:`~openmmcgml.priors.plots`: :func:`plot_prior_fit`.

Distances, angles and dihedrals come from :mod:`openmmcgml.geometry` (``compute_distances``,
``compute_angles`` and ``compute_dihedrals`` are re-exported here).

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

from ..geometry import compute_angles, compute_dihedrals, compute_distances
from .fitting import BOLTZMANN, fit_priors
from .plots import plot_prior_fit
from .priorset import PriorSet
from .terms import TERM_NAMES, DihedralMap, FourierDihedrals, HarmonicAngles, HarmonicBonds, PriorTerm, Repulsion
from .topology import (angle_list, chain_bonds, chain_internal_coordinates, dihedral_list, dihedral_map_modes,
                       dihedral_pairs, repulsion_pairs)

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
    "chain_internal_coordinates",
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
