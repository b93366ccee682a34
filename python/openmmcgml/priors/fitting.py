"""Fitting prior terms to mapped CG coordinates by Boltzmann inversion."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from ..geometry import compute_angles, compute_dihedrals, compute_distances
from .priorset import PriorSet
from .terms import TERM_NAMES, FourierDihedrals, HarmonicAngles, HarmonicBonds, Repulsion
from .topology import _check_indices, angle_list, chain_bonds, dihedral_list, repulsion_pairs

__all__ = ["BOLTZMANN", "fit_priors"]

#: Boltzmann's constant in kJ/mol/K (OpenMM's value).
BOLTZMANN = 0.00831446261815324


def _fit_log_linear(counts, features, log_jacobian, ridge=1e-8, max_iter=100):
    """Maximum likelihood of ``p_b ∝ exp(features_b . theta + log_jacobian_b)`` for histogram counts.

    The multinomial log likelihood ``sum_b n_b log p_b`` is concave in ``theta``; Newton's method
    with backtracking finds its maximum.  Returns ``theta``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    X = np.asarray(features, dtype=np.float64)
    theta = np.zeros(X.shape[1])
    observed = X.T @ counts / total

    def objective(t):
        logits = X @ t + log_jacobian
        shift = logits.max()
        log_z = shift + np.log(np.exp(logits - shift).sum())
        return -(observed @ t) + log_z + 0.5 * ridge * t @ t, logits - log_z

    value, log_p = objective(theta)
    for _ in range(max_iter):
        p = np.exp(log_p)
        mean = X.T @ p
        gradient = mean - observed + ridge * theta
        if np.abs(gradient).max() < 1e-11:
            break
        hessian = (X * p[:, None]).T @ X - np.outer(mean, mean) + ridge * np.eye(len(theta))
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while True:
            candidate = theta - scale * step
            new_value, new_log_p = objective(candidate)
            if new_value <= value or scale < 1e-12:
                break
            scale *= 0.5
        if scale < 1e-12:
            break  # no further decrease within rounding: at the optimum
        theta, value, log_p = candidate, new_value, new_log_p
    return theta


def _fit_harmonic(values, kT, n_bins, jacobian, lower=None, upper=None, what="value"):
    """Fit ``0.5 k (x - x0)^2`` to samples by Boltzmann inversion of their histogram."""
    values = np.asarray(values, dtype=np.float64)
    lo = values.min() if lower is None else max(lower, values.min())
    hi = values.max() if upper is None else min(upper, values.max())
    if not hi > lo:
        raise ValueError(f"cannot fit a harmonic {what}: all samples have the same value {lo}")
    counts, edges = np.histogram(values, bins=n_bins, range=(lo, hi))
    centers = 0.5 * (edges[1:] + edges[:-1])
    mean, scale = values.mean(), values.std()
    z = (centers - mean) / scale
    theta = _fit_log_linear(counts, np.stack([z, z * z], axis=1), np.log(jacobian(centers)))
    if theta[1] >= 0:
        raise ValueError(f"the distribution of this {what} is not peaked (Boltzmann inversion gives a "
                         "non-positive curvature); leave this term out or check the data")
    k = -2.0 * kT * theta[1] / scale**2
    x0 = mean + scale * (-theta[0] / (2.0 * theta[1]))
    return k, x0


def _fit_fourier(values, kT, n_bins, order):
    """Fit ``sum_n k_n (1 + cos(n phi - phi_n))`` to dihedral samples (uniform measure)."""
    counts, edges = np.histogram(values, bins=n_bins, range=(-math.pi, math.pi))
    centers = 0.5 * (edges[1:] + edges[:-1])
    n = np.arange(1, order + 1)
    features = np.concatenate([np.cos(np.outer(centers, n)), np.sin(np.outer(centers, n))], axis=1)
    theta = _fit_log_linear(counts, features, np.zeros(n_bins), ridge=1e-6)
    # beta U = -theta . features  =>  U = sum_n a_n cos(n phi) + b_n sin(n phi)
    a = -kT * theta[:order]
    b = -kT * theta[order:]
    return np.hypot(a, b), np.arctan2(b, a)


def _as_coordinates(cg_coordinates) -> np.ndarray:
    x = np.asarray(cg_coordinates)
    if x.dtype.kind != "f":
        raise ValueError(f"cg_coordinates must be floating point (got dtype {x.dtype})")
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"cg_coordinates must have shape (n_frames, n_beads, 3) (got {x.shape})")
    if x.shape[0] < 2:
        raise ValueError(f"fitting priors needs at least 2 frames (got {x.shape[0]})")
    if not np.isfinite(x).all():
        raise ValueError("cg_coordinates contain NaN or infinite values")
    return x


def fit_priors(cg_coordinates, bonds=None, temperature: float = 300.0,
               terms: Sequence[str] = ("bonds", "angles", "repulsion"), *, angles=None, dihedrals=None,
               n_bins: int = 100, dihedral_order: int = 3, repulsion_min_separation: int = 3,
               repulsion_epsilon: Optional[float] = None, repulsion_sigma_scale: float = 1.0,
               bead_types=None) -> PriorSet:
    """Fit prior terms to mapped CG coordinates by Boltzmann inversion.

    For each bond, angle and dihedral, the histogram ``n_b`` of the internal coordinate ``x``
    over all frames defines the free energy ``F(x) = -kT ln(p(x) / J(x))``, with the Jacobian
    ``J(r) = r^2`` for bond lengths, ``J(theta) = sin(theta)`` for angles and ``J = 1`` for
    dihedrals (uniform measure) divided out.  The analytic form ``U(x)`` is fitted to ``F``
    by maximum likelihood of the histogram counts under ``p_b ∝ J(x_b) exp(-U(x_b) / kT)``,
    a concave log-linear (multinomial) problem solved by Newton's method.  In the limit of
    many counts per bin this is least squares on ``F`` with weights ``n_b`` (the inverse
    variance of ``ln n_b``); unlike that, it needs no rule for empty bins.  The forms:

    - ``bonds``: ``0.5 k (r - r0)^2``, histogram over the observed range of ``r``;
    - ``angles``: ``0.5 k (theta - theta0)^2``, histogram over the observed range of ``theta``;
    - ``dihedrals``: ``sum_{n=1..N} k_n (1 + cos(n phi - phi_n))``, N = ``dihedral_order``,
      histogram over ``[-pi, pi]``;
    - ``repulsion``: ``epsilon (sigma / r)^6`` for every pair at least
      ``repulsion_min_separation`` bonds apart, with ``sigma`` = ``repulsion_sigma_scale`` x the
      smallest distance of that pair in the data and ``epsilon`` = ``repulsion_epsilon``
      (default ``kT``), so that getting closer than ever observed costs more than ``kT``.

    Parameters
    ----------
    cg_coordinates : array_like, shape (n_frames, n_beads, 3)
        Mapped coordinates in nm, frames of the equilibrium ensemble at ``temperature``.
    bonds : array_like of int, shape (n_bonds, 2), optional
        The bond graph; default: consecutive beads of a chain.
    temperature : float
        In kelvin.
    terms : sequence of str
        Which of ``"bonds"``, ``"angles"``, ``"dihedrals"``, ``"repulsion"`` to fit.
    angles, dihedrals : array_like of int, optional
        Override the angles (n, 3) and dihedrals (n, 4) derived from the bond graph.
    n_bins : int
        Histogram bins per internal coordinate.
    dihedral_order : int
        The number N of Fourier terms of each dihedral.
    repulsion_min_separation : int
        Repulsion pairs are at least this many bonds apart (3: no 1-2 and 1-3 pairs).
    repulsion_epsilon : float, optional
        In kJ/mol; default ``k_B T``.
    repulsion_sigma_scale : float
        Factor applied to the smallest observed distance of each pair.
    bead_types : array_like of int, shape (n_beads,), optional
        If given, bonds, angles and dihedrals whose bead types agree (read in either direction)
        share one fit over their pooled samples; repulsion pairs of equal type pairs share the
        smallest distance.  Default: each term is fitted on its own.

    Returns
    -------
    PriorSet

    Raises
    ------
    ValueError
        For malformed input, or a bond/angle distribution that is not peaked.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = np.zeros((5000, 2, 3))
    >>> x[:, 1, 0] = rng.normal(0.38, 0.02, 5000)
    >>> priors = fit_priors(x, temperature=300.0, terms=["bonds"])
    >>> round(float(priors["bonds"].r0[0]), 2)
    0.38
    """
    x = _as_coordinates(cg_coordinates)
    n_frames, n_beads, _ = x.shape
    fittable = tuple(name for name in TERM_NAMES if name != "dihedral_map")
    if "dihedral_map" in terms:
        raise ValueError("the dihedral_map term is learned by force matching (ForceMatching(dihedral_map=N)), "
                         "not fitted by Boltzmann inversion")
    unknown = [t for t in terms if t not in fittable]
    if unknown:
        raise ValueError(f"unknown prior terms {unknown}; choose among {fittable}")
    if not (temperature > 0):
        raise ValueError(f"temperature must be positive (got {temperature})")
    n_bins = int(n_bins)
    if n_bins < 5:
        raise ValueError(f"n_bins must be at least 5 (got {n_bins})")
    kT = BOLTZMANN * float(temperature)
    bonds = chain_bonds(n_beads) if bonds is None else _check_indices(bonds, 2, n_beads, "bonds")
    if bead_types is not None:
        bead_types = np.asarray(bead_types, dtype=np.int64)
        if bead_types.shape != (n_beads,):
            raise ValueError(f"bead_types has shape {bead_types.shape} but the data have {n_beads} beads")

    def groups(indices):
        """Rows of ``indices`` that share a fit: one per row, or pooled by bead types."""
        if bead_types is None:
            return [[row] for row in range(len(indices))]
        keys = {}
        for row, item in enumerate(indices.tolist()):
            types = tuple(bead_types[item].tolist())
            keys.setdefault(min(types, types[::-1]), []).append(row)
        return list(keys.values())

    fitted = []
    if "bonds" in terms and len(bonds):
        values = compute_distances(x, bonds)
        k, r0 = np.zeros(len(bonds)), np.zeros(len(bonds))
        for rows in groups(bonds):
            k[rows], r0[rows] = _fit_harmonic(values[:, rows].ravel(), kT, n_bins, lambda r: r * r, lower=0.0,
                                              what=f"bond {bonds[rows[0]].tolist()}")
        fitted.append(HarmonicBonds(bonds, k=k, r0=r0))

    if "angles" in terms:
        triples = angle_list(n_beads, bonds) if angles is None else _check_indices(angles, 3, n_beads, "angles")
        if len(triples):
            values = compute_angles(x, triples)
            k, theta0 = np.zeros(len(triples)), np.zeros(len(triples))
            for rows in groups(triples):
                k[rows], theta0[rows] = _fit_harmonic(values[:, rows].ravel(), kT, n_bins, np.sin, lower=0.0,
                                                      upper=math.pi, what=f"angle {triples[rows[0]].tolist()}")
            fitted.append(HarmonicAngles(triples, k=k, theta0=np.clip(theta0, 0.0, math.pi)))

    if "dihedrals" in terms:
        quads = (dihedral_list(n_beads, bonds) if dihedrals is None
                 else _check_indices(dihedrals, 4, n_beads, "dihedrals"))
        if len(quads):
            order = int(dihedral_order)
            if order < 1:
                raise ValueError(f"dihedral_order must be at least 1 (got {dihedral_order})")
            values = compute_dihedrals(x, quads)
            k, phase = np.zeros((len(quads), order)), np.zeros((len(quads), order))
            for rows in groups(quads):
                # a reversed dihedral (l, k, j, i) has the same angle, so pooling needs no sign flip
                k[rows], phase[rows] = _fit_fourier(values[:, rows].ravel(), kT, n_bins, order)
            fitted.append(FourierDihedrals(quads, k=k, phase=phase))

    if "repulsion" in terms:
        pairs = repulsion_pairs(n_beads, bonds, repulsion_min_separation)
        if len(pairs):
            smallest = compute_distances(x, pairs).min(axis=0)
            for rows in groups(pairs):
                smallest[rows] = smallest[rows].min()
            epsilon = kT if repulsion_epsilon is None else float(repulsion_epsilon)
            if not (repulsion_sigma_scale > 0):
                raise ValueError(f"repulsion_sigma_scale must be positive (got {repulsion_sigma_scale})")
            fitted.append(Repulsion(pairs, epsilon=np.full(len(pairs), epsilon),
                                    sigma=repulsion_sigma_scale * smallest))

    return PriorSet(n_beads, bonds, fitted, temperature)
