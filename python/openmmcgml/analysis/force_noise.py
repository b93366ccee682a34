"""The noise of mapped forces, estimated from a CG dataset alone.

Force matching fits a model ``F_model(x)`` to mapped forces ``F``, which scatter around the mean
force ``F_mean(x)`` (minus the gradient of the CG free energy) at each CG configuration ``x``.
The mean squared error splits into two parts::

    E|F - F_model(x)|^2 = E|F - F_mean(x)|^2 + E|F_mean(x) - F_model(x)|^2
                        =        noise         +        model error

The noise is the floor that no model can go below; the model error is what training can still
remove.  :func:`estimate_force_noise` estimates the noise (per force component, in the square of
the forces' unit) from pairs of frames whose CG configurations are nearly the same:

1. Neighbours: each frame is paired with its nearest frame(s) in the space of all pairwise bead
   distances (rotation- and translation-invariant; :class:`scipy.spatial.cKDTree`).  Frames of the
   same trajectory up to ``exclude_within`` frames apart in time can be left out, because their
   forces may be correlated in time rather than only through the configuration.
2. Alignment: the second frame of a pair is superposed on the first (Kabsch, proper rotations
   only: a configuration and its mirror image have different mean forces) and its forces are
   rotated with it, so that both forces are expressed in the same frame of reference.
3. Regression: for one pair, ``y = 1/2 mean over components (F_i - R F_j)^2`` has expectation
   ``sigma^2 + 1/2 mean |F_mean(x_i) - R F_mean(x_j)|^2``.  For close pairs the mean-force change
   is linear in the change ``dr`` of the pairwise distances, so the second term is a quadratic
   form ``sum_{k<=l} c_kl dr_k dr_l`` (plus higher orders, of which one term ``(sum_k dr_k^2)^2``
   is kept: without it the convexity of the pairs' curve biases the intercept low).  Ordinary
   least squares of ``y`` on these terms gives the intercept, ``sigma^2``: the pairs' force
   difference extrapolated to identical configurations.  One coefficient per pair of distances
   lets stiff bonds and soft dihedrals change the mean force at different rates, which a single
   RMSD cannot (``regressors="rmsd"``: ``y`` on ``RMSD^2`` only, for molecules with so many
   beads that the ``n_d (n_d + 1) / 2`` products of distance changes outnumber the pairs).
   Only the closer half of the pairs (``max_pair_quantile``) enter the fit: the far pairs add
   curvature that the quadratic terms miss.
4. Error: the standard deviation of the intercept over bootstrap resamples of the frames (a
   pair counts as often as both its frames are drawn), since pairs sharing a frame are not
   independent.

Why this estimator: it needs nothing but the dataset (no extra all-atom runs), it has no
free smoothing length (the extrapolation replaces a choice of "close enough"), and its bias
vanishes as the pairs get closer (more frames) for a mean force that is smooth on their scale.
Its assumptions: the noise variance changes little between neighbouring configurations, and the
pairs are close enough for the mean-force change to be quadratic in the distance changes; both are
checked on synthetic data with a known noise (tests/test_force_noise.py) and on alanine dipeptide
against the noise measured by all-atom runs at 24 fixed CG configurations
(benchmarks/force_noise_crosscheck.py: 90,300 ± 7,500 estimated, 103,000 ± 1,600 measured,
(kJ/mol/nm)^2; docs/training.md).

Examples
--------
Synthetic frames: a chain of 4 beads whose mean force comes from harmonic pair terms, plus
Gaussian noise of variance 400 per component.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = np.array([[0.0, 0, 0], [0.38, 0, 0], [0.5, 0.36, 0], [0.8, 0.4, 0.3]])
>>> x = reference + rng.normal(scale=0.03, size=(3000, 4, 3))
>>> r0 = np.linalg.norm(reference[:, None] - reference[None], axis=-1)
>>> def mean_force(x, k=2000.0):
...     delta = x[:, :, None, :] - x[:, None, :, :]
...     r = np.linalg.norm(delta, axis=-1) + np.eye(4)
...     return -np.sum((k * (r - r0 - np.eye(4)) / r)[..., None] * delta, axis=2)
>>> f = mean_force(x) + rng.normal(scale=20.0, size=x.shape)
>>> estimate = estimate_force_noise(x, f, n_bootstrap=50)
>>> abs(estimate.variance - 400.0) < 4 * estimate.error
True
>>> split = estimate.split(float(np.mean((f - mean_force(x)) ** 2)))   # a perfect model
>>> abs(split["model_error"]) < 4 * estimate.error
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

__all__ = ["ForceNoiseEstimate", "estimate_force_noise", "format_force_split"]


@dataclass
class ForceNoiseEstimate:
    """The result of :func:`estimate_force_noise`.

    Attributes
    ----------
    variance : float
        Noise variance per force component (the square of the forces' unit, e.g. (kJ/mol/nm)^2).
    error : float
        Its bootstrap standard error.
    n_frames : int
        Frames given.
    n_pairs : int
        Neighbour pairs used in the regression.
    median_pair_rmsd : float
        Median RMSD of the pairs after superposition (the coordinates' unit).
    mean_half_squared_difference : float
        Mean of ``1/2 (F_i - R F_j)^2`` over the pairs (noise plus the pairs' mean-force change,
        an upper bound of the noise).
    regressors : str
        ``"distances"`` or ``"rmsd"``.
    """

    variance: float
    error: float
    n_frames: int
    n_pairs: int
    median_pair_rmsd: float
    mean_half_squared_difference: float
    regressors: str

    def split(self, mse: float) -> dict:
        """The force MSE of a model split into noise and model error.

        Parameters
        ----------
        mse : float
            Mean squared error per force component of a model on frames like those the noise was
            estimated from.

        Returns
        -------
        dict
            ``mse``, ``noise``, ``noise_error``, ``model_error`` (``mse - noise``; its error is
            ``noise_error``) and ``noise_fraction`` (``noise / mse``).
        """
        mse = float(mse)
        if not np.isfinite(mse) or mse < 0:
            raise ValueError(f"the force MSE must be a finite non-negative number (got {mse})")
        return {"mse": mse, "noise": self.variance, "noise_error": self.error,
                "model_error": mse - self.variance, "noise_fraction": self.variance / mse if mse > 0 else float("nan")}

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return {key: (float(value) if isinstance(value, (float, np.floating)) else value)
                for key, value in asdict(self).items()}


def format_force_split(split: dict, unit: str = "(kJ/mol/nm)^2") -> str:
    """One line: ``force MSE = noise X ± e + model error Y``, from :meth:`ForceNoiseEstimate.split`."""
    return (f"force MSE {split['mse']:.4g} = noise {split['noise']:.4g} ± {split['noise_error']:.2g} "
            f"+ model error {split['model_error']:.4g} {unit} (noise {100 * split['noise_fraction']:.1f} % of the MSE)")


def _pairwise_distances(x: np.ndarray) -> np.ndarray:
    """All pairwise distances of each frame, shape (frames, n (n - 1) / 2)."""
    i, j = np.triu_indices(x.shape[1], k=1)
    return np.linalg.norm(x[:, i] - x[:, j], axis=-1)


def _superpose(first: np.ndarray, second: np.ndarray):
    """Proper rotations ``R`` (pairs, 3, 3) with ``(second - c2) @ R`` closest to ``first - c1``,
    and the RMSD after superposition."""
    a = first - first.mean(axis=1, keepdims=True)
    b = second - second.mean(axis=1, keepdims=True)
    u, _, vt = np.linalg.svd(np.einsum("pki,pkj->pij", b, a))
    # Reflections are not allowed: flip the last singular direction where det < 0.
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    u[:, :, 2] *= sign[:, None]
    rotation = u @ vt
    rmsd = np.sqrt(np.mean(np.sum((b @ rotation - a) ** 2, axis=-1), axis=1))
    return rotation, rmsd


def _neighbour_pairs(features, trajectory_ids, n_neighbours, exclude_within):
    """Unique pairs (i < j) of each frame with its nearest allowed frames in feature space."""
    from scipy.spatial import cKDTree

    n = len(features)
    # Query enough neighbours that n_neighbours remain after dropping the excluded time window.
    k = min(n, n_neighbours + 1 + 2 * exclude_within)
    _, index = cKDTree(features).query(features, k=k)
    index = index.reshape(n, k)
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    allowed = index != rows
    if exclude_within > 0:
        same = trajectory_ids[index] == trajectory_ids[rows]
        allowed &= ~(same & (np.abs(index - rows) <= exclude_within))
    # Keep the first n_neighbours allowed neighbours of each frame (query returns them nearest first).
    allowed &= np.cumsum(allowed, axis=1) <= n_neighbours
    first, second = rows[allowed], index[allowed]
    pairs = np.unique(np.stack([np.minimum(first, second), np.maximum(first, second)], axis=1), axis=0)
    return pairs


def _fit_intercept(matrix: np.ndarray, y: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
    """Weighted least squares of ``y`` on the columns of ``matrix`` (the first one all ones);
    returns the intercept.  Normal equations, so a bootstrap resample costs one small solve."""
    w = np.ones(len(y)) if weights is None else weights
    gram = (matrix * w[:, None]).T @ matrix
    return float(np.linalg.lstsq(gram, (matrix * w[:, None]).T @ y, rcond=None)[0][0])


def estimate_force_noise(coordinates, forces, trajectory_ids=None, *, n_neighbours: int = 1,
                         exclude_within: int = 0, regressors: str = "distances", n_bootstrap: int = 200,
                         max_frames: Optional[int] = None, max_pair_quantile: float = 0.5, seed: int = 0) -> ForceNoiseEstimate:
    """Estimate the variance of mapped forces around the mean force from nearest-neighbour pairs.

    See the module docstring for the method and its assumptions.

    Parameters
    ----------
    coordinates : array_like, shape (frames, beads, 3)
        CG configurations.
    forces : array_like, shape (frames, beads, 3)
        Mapped forces of the same frames.
    trajectory_ids : array_like of int, shape (frames,), optional
        Run of each frame (with ``exclude_within``); None: one run.
    n_neighbours : int
        Nearest neighbours paired with each frame.
    exclude_within : int
        Frames of the same trajectory at most this many frames apart are never paired (0: any
        two frames may be paired).
    regressors : {"distances", "rmsd"}
        What the mean-force change of a pair is regressed on: the squared change of every pairwise
        distance (one coefficient each), or the squared RMSD after superposition (one
        coefficient).  ``"distances"`` needs many more pairs than distances.
    n_bootstrap : int
        Bootstrap resamples of the pairs for the error (fewer than 2: no error, reported as NaN).
    max_pair_quantile : float
        Fit only the closest pairs: those whose RMSD after superposition is at most this quantile
        of all pairs' (1: all pairs).  The far pairs carry little information on the intercept
        and most of the mean-force curvature that the quadratic terms do not describe.
    max_frames : int, optional
        Use an evenly spaced subset of at most this many frames (for very large datasets).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    ForceNoiseEstimate

    Raises
    ------
    ValueError
        Shapes that disagree, fewer than 2 beads, non-finite values, an unknown ``regressors``, or
        too few pairs for the regression.
    """
    x = np.asarray(coordinates, dtype=np.float64)
    f = np.asarray(forces, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3 or x.shape[1] < 2:
        raise ValueError(f"coordinates must have shape (frames, beads >= 2, 3); got {x.shape}")
    if f.shape != x.shape:
        raise ValueError(f"forces have shape {f.shape} but coordinates {x.shape}")
    if not (np.isfinite(x).all() and np.isfinite(f).all()):
        raise ValueError("coordinates or forces contain NaN or infinite values")
    if not 0.0 < float(max_pair_quantile) <= 1.0:
        raise ValueError(f"max_pair_quantile must be in (0, 1] (got {max_pair_quantile!r})")
    if regressors not in ("distances", "rmsd"):
        raise ValueError(f"regressors must be 'distances' or 'rmsd' (got {regressors!r})")
    for name, value, low in (("n_neighbours", n_neighbours, 1), ("exclude_within", exclude_within, 0),
                             ("n_bootstrap", n_bootstrap, 0)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low} (got {value!r})")
    ids = np.zeros(len(x), dtype=np.int64) if trajectory_ids is None else np.asarray(trajectory_ids).reshape(-1)
    if len(ids) != len(x):
        raise ValueError(f"trajectory_ids has {len(ids)} entries but there are {len(x)} frames")
    if max_frames is not None and len(x) > max_frames:
        keep = np.linspace(0, len(x) - 1, int(max_frames)).round().astype(np.int64)
        x, f, ids = x[keep], f[keep], ids[keep]

    distances = _pairwise_distances(x)
    pairs = _neighbour_pairs(distances, ids, int(n_neighbours), int(exclude_within))
    rotation, rmsd = _superpose(x[pairs[:, 0]], x[pairs[:, 1]])
    if max_pair_quantile < 1.0:
        close = rmsd <= np.quantile(rmsd, max_pair_quantile)
        pairs, rotation, rmsd = pairs[close], rotation[close], rmsd[close]
    difference = f[pairs[:, 0]] - f[pairs[:, 1]] @ rotation
    y = 0.5 * np.mean(difference ** 2, axis=(1, 2))
    if regressors == "distances":
        change = distances[pairs[:, 0]] - distances[pairs[:, 1]]
        k, l = np.triu_indices(change.shape[1])
        design = change[:, k] * change[:, l]
        design = np.column_stack([design, np.sum(change ** 2, axis=1) ** 2])
    else:
        design = (rmsd ** 2)[:, None]
    needed = 5 * (design.shape[1] + 1)
    if len(y) < needed:
        raise ValueError(f"{len(y)} neighbour pairs from {len(x)} frames are too few to fit {design.shape[1] + 1} "
                         f"coefficients (at least {needed} needed): give more frames or use regressors='rmsd'")

    # Columns scaled to unit root mean square, so that the normal equations stay well conditioned.
    scale = np.sqrt(np.mean(design ** 2, axis=0))
    scale[scale == 0] = 1.0
    matrix = np.column_stack([np.ones(len(y)), design / scale])
    variance = _fit_intercept(matrix, y)
    error = float("nan")
    if n_bootstrap > 1:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(int(n_bootstrap)):
            # Resample frames, not pairs: pairs that share a frame are not independent.  A pair
            # enters as often as both its frames were drawn together.
            counts = np.bincount(rng.integers(0, len(x), len(x)), minlength=len(x)).astype(np.float64)
            samples.append(_fit_intercept(matrix, y, counts[pairs[:, 0]] * counts[pairs[:, 1]]))
        error = float(np.std(samples, ddof=1))
    return ForceNoiseEstimate(variance=variance, error=error, n_frames=len(x), n_pairs=len(y),
                              median_pair_rmsd=float(np.median(rmsd)), mean_half_squared_difference=float(np.mean(y)),
                              regressors=regressors)
