"""Evaluation of CG simulations against the mapped all-atom reference.

* :mod:`~openmmcgml.analysis.geometry`: bond lengths, angles, dihedrals, alanine phi/psi from the
  CG beads, radius of gyration, fraction of native contacts Q, RMSD to a native structure.
* :mod:`~openmmcgml.analysis.distributions`: JS distances of histograms (scipy's
  ``jensenshannon``, natural log), W1 of 2-D/1-D KDE grids with POT (the TICA benchmark of
  Bachelor et al. 2025), free-energy surfaces.
* :mod:`~openmmcgml.analysis.tica`: :class:`TICAMetrics` (deeptime TICA on all pairwise distances,
  fitted on the reference only), autocorrelation times, MSM implied timescales.
* :mod:`~openmmcgml.analysis.plots`: matplotlib plots (Agg canvas) taking ``ax=None``.
* :mod:`~openmmcgml.analysis.basins`: the alanine basins (alpha-R, beta, alpha-L), their
  populations with block-averaged errors and free-energy differences.
* :func:`noise_floor`: independent all-atom sets scored against a long reference (mean, spread).
* :func:`report`: all of it for one reference/model pair, written to a folder.

Examples
--------
>>> import numpy as np
>>> from openmmcgml.analysis import histogram_js, w1_kde_2d
>>> rng = np.random.default_rng(1)
>>> round(float(histogram_js(rng.normal(size=1000), rng.normal(size=1000) + 10.0)), 4)
0.8326
>>> metrics = report("reference-cg.h5", "cg-run.h5", "evaluation/")   # doctest: +SKIP
"""

from .distributions import (free_energy_1d, free_energy_2d, histogram_js, histogram_js_2d, js_distance, kde_grid,
                            reference_range, w1_kde_1d, w1_kde_2d, w1_samples_1d)
from .geometry import (NativeContacts, alanine_phi_psi, bond_angles, bond_lengths, build_chain, dihedral_angles,
                       frames, pairwise_distances, radius_of_gyration, rmsd)
from .basins import (ALANINE_BASINS, BasinPopulations, assign_basins, basin_free_energies, basin_metrics,
                     basin_populations, state_populations)
from .report import (ALANINE_BEADS, detect_kind, format_metrics, load_native, noise_floor, read_reference_files,
                     report)
from .tica import TICAMetrics, as_runs, autocorrelation, integrated_autocorrelation_time, msm_implied_timescales

__all__ = [
    "ALANINE_BASINS",
    "ALANINE_BEADS",
    "BasinPopulations",
    "NativeContacts",
    "TICAMetrics",
    "alanine_phi_psi",
    "as_runs",
    "assign_basins",
    "autocorrelation",
    "basin_free_energies",
    "basin_metrics",
    "basin_populations",
    "bond_angles",
    "bond_lengths",
    "build_chain",
    "detect_kind",
    "dihedral_angles",
    "format_metrics",
    "frames",
    "free_energy_1d",
    "free_energy_2d",
    "histogram_js",
    "histogram_js_2d",
    "integrated_autocorrelation_time",
    "js_distance",
    "kde_grid",
    "load_native",
    "msm_implied_timescales",
    "noise_floor",
    "pairwise_distances",
    "radius_of_gyration",
    "read_reference_files",
    "reference_range",
    "report",
    "rmsd",
    "state_populations",
    "w1_kde_1d",
    "w1_kde_2d",
    "w1_samples_1d",
]
