"""Conformational basins of alanine dipeptide and their populations with error bars.

The basins partition the whole (phi, psi) torus; angles in degrees, wrapped to [-180, 180):

* ``alpha_R``: ``phi < 0`` and ``-120 < psi < 50``;
* ``beta`` (including PPII): ``phi < 0`` and (``psi >= 50`` or ``psi <= -120``);
* ``alpha_L``: ``phi >= 0`` (alpha-L and the rarely visited C7ax region together).

:func:`assign_basins` labels frames with the index of their basin in :data:`ALANINE_BASINS`;
:func:`basin_populations` counts them with block-averaged errors, and :func:`state_populations`
does the same for any per-frame labels (e.g. folded / unfolded chignolin).

Examples
--------
>>> import numpy as np
>>> assign_basins([-60.0, -70.0, 60.0], [-45.0, 140.0, 40.0], units="degrees").tolist()
[0, 1, 2]
>>> [ALANINE_BASINS[i] for i in assign_basins(np.radians([-80.0]), np.radians([170.0]), units="radians")]
['beta']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "ALANINE_BASINS",
    "ALANINE_BASIN_DEFINITIONS",
    "BasinPopulations",
    "assign_basins",
    "basin_free_energies",
    "basin_metrics",
    "basin_populations",
    "state_populations",
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


@dataclass
class BasinPopulations:
    """Populations of the basins with their block-averaged standard errors.

    Attributes
    ----------
    names : tuple of str
        Basin names (:data:`ALANINE_BASINS`).
    populations : ndarray (n_basins,)
        Fraction of all frames in each basin (they sum to 1).
    errors : ndarray (n_basins,)
        Standard error of each population.
    covariance : ndarray (n_basins, n_basins)
        Covariance of the population estimates (``errors`` is the root of its diagonal); the
        populations sum to 1, so the off-diagonal terms are negative.
    n_frames : int
    n_runs : int
    n_blocks : int
        Blocks in all (``n_blocks_per_run`` times the number of runs).
    block_frames : int
        Frames in the shortest block.
    """

    names: tuple
    populations: np.ndarray
    errors: np.ndarray
    covariance: np.ndarray
    n_frames: int
    n_runs: int
    n_blocks: int
    block_frames: int

    def population(self, name: str) -> tuple:
        """``(population, error)`` of the basin ``name``."""
        k = _basin_index(self.names, name)
        return float(self.populations[k]), float(self.errors[k])


def _basin_index(names, name: str) -> int:
    if name not in names:
        raise ValueError(f"unknown basin {name!r}; the basins are {tuple(names)}")
    return list(names).index(name)


def _as_run_list(values, name: str) -> list:
    """One 1-D array per run from a 1-D array (one run) or a sequence of 1-D arrays."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return [values]
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (one run) or a list of 1-D arrays (one per run), "
                         f"got shape {values.shape}")
    runs = [np.asarray(v, dtype=float) for v in values]
    if runs and all(r.ndim == 0 for r in runs):  # a plain list of numbers: one run
        return [np.asarray(runs, dtype=float)]
    if not runs or any(r.ndim != 1 for r in runs):
        raise ValueError(f"{name} must be a 1-D array (one run) or a list of 1-D arrays (one per run)")
    return runs


def state_populations(labels, *, names: Sequence[str], n_blocks_per_run: Optional[int] = None) -> BasinPopulations:
    """Population of each state with a block-averaged standard error, from per-frame state labels.

    Each run is cut into ``n_blocks_per_run`` consecutive blocks of (nearly) equal length in time;
    the blocks of all runs are pooled.  The population is the fraction of all frames in the
    state (the block means weighted by block length), and its variance is estimated from the
    scatter of the block means about it (the ratio estimator
    ``sum w_b^2 (m_b - p)^2 / (sum w_b)^2 * B / (B - 1)`` over the ``B`` blocks, equal to
    ``var(m_b) / B`` for equal blocks).

    Why both kinds of blocks: independent runs are exactly independent samples, but 8 runs give a
    standard error with only 7 degrees of freedom (itself uncertain by about 25%); blocks in time
    add degrees of freedom and are nearly independent once a block is much longer than the
    integrated autocorrelation time of the state indicator.  Keep blocks several times longer than
    the slowest exchange between the states: the default, one block per run when there are 8 runs
    or more, else 4 blocks per run, suits alanine dipeptide's 8 x 25 ns reference (alpha-L is
    entered and left over nanoseconds) and short test sets alike.

    Parameters
    ----------
    labels : array_like of int (n_frames,) or list of such arrays
        State index of every frame of one run, or one array per independent run, in time order;
        ``k`` stands for ``names[k]``.
    names : sequence of str
        State names in label order.
    n_blocks_per_run : int, optional
        Blocks in time per run (default: 1 with 8 or more runs, else 4).

    Returns
    -------
    BasinPopulations

    Raises
    ------
    ValueError
        If a label is negative, not an integer or has no name, a run has fewer frames than
        blocks, or fewer than two blocks result.

    Examples
    --------
    >>> folded = [np.array([1, 1, 0, 0]), np.array([0, 0, 0, 1])]
    >>> result = state_populations(folded, names=("unfolded", "folded"), n_blocks_per_run=2)
    >>> [round(value, 4) for value in result.population("folded")]
    [0.375, 0.2394]
    """
    runs = _as_run_list(labels, "labels")
    if n_blocks_per_run is None:
        n_blocks_per_run = 1 if len(runs) >= 8 else 4
    if int(n_blocks_per_run) != n_blocks_per_run or n_blocks_per_run < 1:
        raise ValueError(f"n_blocks_per_run must be a positive integer, got {n_blocks_per_run!r}")
    n_blocks_per_run = int(n_blocks_per_run)
    n_states = len(names)
    block_counts, block_sizes = [], []
    for k, run in enumerate(runs):
        if not np.all(np.isfinite(run)) or np.any(run != np.round(run)) or (run.size and run.min() < 0):
            raise ValueError(f"run {k}: labels must be non-negative integers")
        run = run.astype(np.int64)
        if run.size and run.max() >= n_states:
            raise ValueError(f"{n_states} state names given for labels up to {int(run.max())}")
        if len(run) < n_blocks_per_run:
            raise ValueError(f"run {k} has {len(run)} frames, fewer than n_blocks_per_run={n_blocks_per_run}")
        for block in np.array_split(run, n_blocks_per_run):
            block_counts.append(np.bincount(block, minlength=n_states)[:n_states])
            block_sizes.append(len(block))
    counts = np.asarray(block_counts, dtype=float)          # (B, n_states)
    sizes = np.asarray(block_sizes, dtype=float)             # (B,)
    n_total_blocks = len(sizes)
    if n_total_blocks < 2:
        raise ValueError("one run in one block gives no error estimate: use n_blocks_per_run >= 2 or more runs")
    populations = counts.sum(axis=0) / sizes.sum()
    # ratio-estimator covariance of the pooled fraction from the blocks' deviations
    deviations = counts - sizes[:, None] * populations[None, :]
    covariance = deviations.T @ deviations / sizes.sum() ** 2 * n_total_blocks / (n_total_blocks - 1)
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return BasinPopulations(names=tuple(names), populations=populations, errors=errors, covariance=covariance,
                            n_frames=int(sizes.sum()), n_runs=len(runs), n_blocks=n_total_blocks,
                            block_frames=int(sizes.min()))


def basin_populations(phi, psi, *, units: str, n_blocks_per_run: Optional[int] = None,
                      names: Sequence[str] = ALANINE_BASINS) -> BasinPopulations:
    """Population of each alanine basin with a block-averaged standard error.

    The basins of :func:`assign_basins`, counted by :func:`state_populations` (blocks in time
    within each run, pooled over runs).  For alanine dipeptide at 300 K the slowest process
    (entering and leaving alpha-L) takes nanoseconds, so keep blocks of several nanoseconds: the
    default, one block per run when there are 8 runs or more, else 4 blocks per run, is right for
    8 x 25 ns (blocks of 25 ns) and for short test sets alike.  With 25 ns runs
    ``n_blocks_per_run=5`` (5 ns blocks) is still safe and gives 40 blocks.

    Parameters
    ----------
    phi, psi : array_like (n_frames,) or list of such arrays
        Backbone dihedrals of one run, or one array per independent run, in time order.
    units : {"degrees", "radians"}
        See :func:`assign_basins`.
    n_blocks_per_run : int, optional
        Blocks in time per run (default: 1 with 8 or more runs, else 4).
    names : sequence of str
        Basin names in label order (default :data:`ALANINE_BASINS`).

    Returns
    -------
    BasinPopulations

    Raises
    ------
    ValueError
        If the runs of ``phi`` and ``psi`` differ in number or length, a run has fewer frames
        than blocks, or fewer than two blocks result.

    Examples
    --------
    >>> phi = [np.array([-60.0, -60.0, 60.0, -60.0]), np.array([-60.0, -60.0, -60.0, -60.0])]
    >>> psi = [np.array([-40.0, 140.0, 40.0, -40.0]), np.array([140.0, 140.0, -40.0, -40.0])]
    >>> result = basin_populations(phi, psi, units="degrees", n_blocks_per_run=2)
    >>> result.populations.tolist()
    [0.5, 0.375, 0.125]
    >>> result.n_blocks, result.block_frames
    (4, 2)
    >>> result.errors.round(4).tolist()
    [0.2041, 0.2394, 0.125]
    """
    phi_runs, psi_runs = _as_run_list(phi, "phi"), _as_run_list(psi, "psi")
    if len(phi_runs) != len(psi_runs):
        raise ValueError(f"phi has {len(phi_runs)} runs, psi {len(psi_runs)}")
    labels = []
    for k, (a, b) in enumerate(zip(phi_runs, psi_runs)):
        if a.shape != b.shape:
            raise ValueError(f"run {k}: phi has {len(a)} frames, psi {len(b)}")
        labels.append(assign_basins(a, b, units=units))
    return state_populations(labels, names=names, n_blocks_per_run=n_blocks_per_run)


def basin_free_energies(populations: BasinPopulations, relative_to: str = "beta") -> dict:
    """Free energy of each basin in kT relative to one basin, with propagated standard errors.

    ``dF_k = -ln(p_k / p_ref)``; to first order its variance is
    ``C_kk / p_k^2 + C_rr / p_r^2 - 2 C_kr / (p_k p_r)`` with ``C`` the covariance of the
    populations (:attr:`BasinPopulations.covariance`), whose negative off-diagonal terms (the
    populations sum to 1) widen the error.

    Parameters
    ----------
    populations : BasinPopulations
        From :func:`basin_populations`.
    relative_to : str
        The basin at zero (default ``"beta"``, the most populated basin of alanine dipeptide
        in implicit solvent at 300 K).

    Returns
    -------
    dict
        ``{name: (dF, error)}`` in kT for every basin (the reference basin ``(0.0, 0.0)``); an
        empty basin gives ``(inf, nan)``.

    Raises
    ------
    ValueError
        If ``relative_to`` is not a basin or holds no frames.

    Examples
    --------
    >>> phi = [np.array([-60.0, -60.0, 60.0, -60.0]), np.array([-60.0, -60.0, -60.0, -60.0])]
    >>> psi = [np.array([-40.0, 140.0, 40.0, -40.0]), np.array([140.0, 140.0, -40.0, -40.0])]
    >>> energies = basin_free_energies(basin_populations(phi, psi, units="degrees", n_blocks_per_run=2))
    >>> {name: round(value, 4) for name, (value, error) in energies.items()}
    {'alpha_R': -0.2877, 'beta': 0.0, 'alpha_L': 1.0986}
    """
    r = _basin_index(populations.names, relative_to)
    p, c = populations.populations, populations.covariance
    if p[r] <= 0:
        raise ValueError(f"the reference basin {relative_to!r} holds no frames")
    out = {}
    for k, name in enumerate(populations.names):
        if k == r:
            out[name] = (0.0, 0.0)
        elif p[k] <= 0:
            out[name] = (math.inf, math.nan)
        else:
            variance = c[k, k] / p[k] ** 2 + c[r, r] / p[r] ** 2 - 2.0 * c[k, r] / (p[k] * p[r])
            out[name] = (float(-math.log(p[k] / p[r])), float(math.sqrt(max(variance, 0.0))))
    return out


def basin_metrics(phi, psi, *, units: str, prefix: str, n_blocks_per_run: Optional[int] = None,
                  relative_to: str = "beta") -> dict:
    """Flat metrics of the basins for a report: ``{prefix}_population_{basin}`` (and ``_error``),
    ``{prefix}_dF_{basin}_kT`` (and ``_error``) relative to ``relative_to``, and
    ``{prefix}_basin_blocks``.  A free energy of an empty basin (or relative to an empty basin)
    is None.

    Examples
    --------
    >>> m = basin_metrics([-60.0, -60.0, 60.0, -60.0], [-40.0, 140.0, 40.0, 140.0], units="degrees",
    ...                   prefix="reference", n_blocks_per_run=2)
    >>> m["reference_population_beta"], m["reference_dF_alpha_L_kT"]
    (0.5, 0.6931471805599453)
    """
    result = basin_populations(phi, psi, units=units, n_blocks_per_run=n_blocks_per_run)
    metrics = {}
    for name, value, error in zip(result.names, result.populations, result.errors):
        metrics[f"{prefix}_population_{name}"] = float(value)
        metrics[f"{prefix}_population_{name}_error"] = float(error)
    reference_empty = result.populations[_basin_index(result.names, relative_to)] <= 0
    energies = {} if reference_empty else basin_free_energies(result, relative_to)
    for name in result.names:
        if name != relative_to:
            value, error = energies.get(name, (math.nan, math.nan))
            # None, not inf/nan, where a basin is empty: metrics.json stays strict JSON
            metrics[f"{prefix}_dF_{name}_kT"] = float(value) if math.isfinite(value) else None
            metrics[f"{prefix}_dF_{name}_kT_error"] = float(error) if math.isfinite(error) else None
    metrics[f"{prefix}_basin_blocks"] = int(result.n_blocks)
    return metrics
