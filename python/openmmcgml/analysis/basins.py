"""Conformational basins of alanine dipeptide and their populations with error bars.

The basins partition the whole (phi, psi) torus; angles in degrees, wrapped to [-180, 180):

* ``alpha_R``: ``phi < 0`` and ``-120 < psi < 50``;
* ``beta`` (including PPII): ``phi < 0`` and (``psi >= 50`` or ``psi <= -120``);
* ``alpha_L``: ``phi >= 0`` (alpha-L and the rarely visited C7ax region together).

:func:`assign_basins` labels frames with the index of their basin in :data:`ALANINE_BASINS`.

Examples
--------
>>> import numpy as np
>>> assign_basins([-60.0, -70.0, 60.0], [-45.0, 140.0, 40.0], units="degrees").tolist()
[0, 1, 2]
>>> [ALANINE_BASINS[i] for i in assign_basins(np.radians([-80.0]), np.radians([170.0]), units="radians")]
['beta']
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ALANINE_BASINS",
    "ALANINE_BASIN_DEFINITIONS",
    "assign_basins",
]

#: Basin names, in the order of the labels :func:`assign_basins` returns (0, 1, 2).
ALANINE_BASINS = ("alpha_R", "beta", "alpha_L")

#: The definition of each basin in words (degrees), for reports.
ALANINE_BASIN_DEFINITIONS = {
    "alpha_R": "phi < 0 and -120 < psi < 50",
    "beta": "phi < 0 and (psi >= 50 or psi <= -120)",
    "alpha_L": "phi >= 0",
}

_UNITS = ("degrees", "radians")


def _wrapped_degrees(angle, units: str, name: str) -> np.ndarray:
    """``angle`` as float degrees wrapped to [-180, 180), refusing NaN/inf and unknown units."""
    if units not in _UNITS:
        raise ValueError(f"units must be one of {_UNITS}, got {units!r}")
    values = np.asarray(angle, dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if units == "radians":
        values = np.degrees(values)
    return (values + 180.0) % 360.0 - 180.0


def assign_basins(phi, psi, *, units: str) -> np.ndarray:
    """Label each (phi, psi) pair with the index of its basin in :data:`ALANINE_BASINS`.

    Parameters
    ----------
    phi, psi : array_like
        Backbone dihedrals of the same shape (any shape), e.g. from
        :func:`~openmmcgml.analysis.alanine_phi_psi` (which returns radians).  Values outside
        [-180, 180) degrees are wrapped.
    units : {"degrees", "radians"}
        The unit of ``phi`` and ``psi``.  Required: the basin boundaries are far from zero, so
        radians read as degrees would silently land in alpha-R.

    Returns
    -------
    ndarray of int8, the shape of ``phi``
        0 for alpha-R, 1 for beta (with PPII), 2 for alpha-L.

    Raises
    ------
    ValueError
        If the shapes differ, a value is NaN or infinite, or ``units`` is unknown.

    Examples
    --------
    >>> assign_basins([-60.0, -60.0, -60.0, 0.0, 179.0], [49.9, 50.0, -120.0, 0.0, 0.0], units="degrees").tolist()
    [0, 1, 1, 2, 2]
    >>> assign_basins([180.0], [0.0], units="degrees").tolist()   # phi = 180 wraps to -180
    [0]
    """
    phi_deg = _wrapped_degrees(phi, units, "phi")
    psi_deg = _wrapped_degrees(psi, units, "psi")
    if phi_deg.shape != psi_deg.shape:
        raise ValueError(f"phi and psi differ in shape: {phi_deg.shape} vs {psi_deg.shape}")
    labels = np.full(phi_deg.shape, 1, dtype=np.int8)  # beta unless one of the others
    labels[(phi_deg < 0.0) & (psi_deg > -120.0) & (psi_deg < 50.0)] = 0
    labels[phi_deg >= 0.0] = 2
    return labels
