"""TICA of CG structures fitted on the reference, W1/JS in TICA space, and relaxation times."""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

from .distributions import histogram_js, w1_kde_1d, w1_kde_2d
from .geometry import pairwise_distances

__all__ = ["TICAMetrics", "as_runs", "autocorrelation", "integrated_autocorrelation_time", "msm_implied_timescales"]


def _is_path_list(value) -> bool:
    """Whether ``value`` is a non-empty list of file paths (several trajectory files)."""
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(v, str) or hasattr(v, "__fspath__") for v in value))


def as_runs(data, stride: int = 1, start: int = 0) -> list:
    """Frames as a list of runs, each an array (n_frames, n_beads, 3) in time order.

    ``data`` may be a path of a trajectory file (docs/data-format.md), a
    :class:`~openmmcgml.simulation.TrajectorySet`, an ``mdtraj.Trajectory``, one array
    (n_frames, n_beads, 3) (one run) or a list of such arrays.  ``start`` frames are dropped from
    the beginning of every run (burn-in), then every ``stride``-th frame is kept.
    """
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        from ..simulation.storage import read_trajectories

        data = read_trajectories(data)
    if hasattr(data, "coordinates") and isinstance(data.coordinates, list):
        runs = data.coordinates
    elif hasattr(data, "xyz") and not isinstance(data, np.ndarray):
        runs = [data.xyz]
    elif isinstance(data, np.ndarray):
        runs = [data] if data.ndim == 3 else [data[None]]
    else:
        runs = list(data)
    out = [np.asarray(r, dtype=float)[int(start)::int(stride)] for r in runs]
    if not out or any(r.ndim != 3 or r.shape[-1] != 3 for r in out):
        raise ValueError("expected frames of shape (n_frames, n_beads, 3)")
    return out


class TICAMetrics:
    """TICA on all pairwise bead distances, fitted on reference data only, and scores in its space.

    The benchmark of Bachelor et al. (2025): deeptime TICA (kinetic-map scaling, all components) with a lag of
    20 frames on all pairwise CA distances of the mapped all-atom reference; a model's samples are
    projected with the reference's TICA and compared by W1 of 2-D KDE grids of TIC0/TIC1
    (:func:`~openmmcgml.analysis.distributions.w1_kde_2d`), per-component 1-D W1 of the first five
    TICs and JS distances of their histograms.

    Parameters
    ----------
    lagtime : int
        TICA lag in frames (of the reference's saving interval).
    dim : int, optional
        Number of TICA components kept (default all).
    n_grid, padding, bounds, max_kde_samples
        W1 settings, see :func:`~openmmcgml.analysis.distributions.kde_grid`.

    Attributes
    ----------
    model_ : deeptime.decomposition.CovarianceKoopmanModel
    reference_ : ndarray (n_frames, dim)
        The reference projected on its own TICs.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = [rng.normal(size=(300, 4, 3)).cumsum(axis=0) * 0.01 + np.arange(4)[:, None] for _ in range(2)]
    >>> tica = TICAMetrics(lagtime=5).fit(ref)
    >>> tica.transform(ref[0]).shape
    (300, 6)
    >>> round(tica.w1_2d(ref), 6)
    0.0
    """

    def __init__(self, lagtime: int = 20, dim: Optional[int] = None, n_grid: int = 25, padding: float = 0.1,
                 bounds="reference", max_kde_samples: Optional[int] = 20000):
        self.lagtime, self.dim = int(lagtime), dim
        self.n_grid, self.padding, self.bounds = n_grid, padding, bounds
        self.max_kde_samples = max_kde_samples

    @staticmethod
    def features(xyz) -> np.ndarray:
        """All pairwise distances i < j, shape (n_frames, n_beads (n_beads - 1) / 2)."""
        return pairwise_distances(xyz)

    def fit(self, reference, stride: int = 1):
        """Fit TICA on the reference runs (time-lagged pairs never straddle two runs)."""
        from deeptime.decomposition import TICA

        runs = as_runs(reference, stride=stride)
        features = [self.features(r) for r in runs]
        usable = [f for f in features if len(f) > self.lagtime]
        if not usable:
            raise ValueError(f"no reference run is longer than the lag time ({self.lagtime} frames)")
        if len(usable) < len(features):
            warnings.warn(f"{len(features) - len(usable)} reference run(s) shorter than the lag time are "
                          "left out of the TICA fit")
        self.model_ = TICA(lagtime=self.lagtime, dim=self.dim).fit(usable).fetch_model()
        self.reference_ = np.concatenate([self.model_.transform(f) for f in features])
        return self

    def _check(self):
        if not hasattr(self, "model_"):
            raise RuntimeError("call fit(reference) first")

    def transform(self, samples) -> np.ndarray:
        """Project frames (any input :func:`as_runs` takes) on the reference TICs, concatenated."""
        self._check()
        return np.concatenate([self.model_.transform(self.features(r)) for r in as_runs(samples)])

    def w1_2d(self, samples) -> float:
        """W1 in the TIC0/TIC1 plane (seed-paper recipe) between reference and ``samples``."""
        self._check()
        return w1_kde_2d(self.reference_[:, :2], self.transform(samples)[:, :2], self.n_grid, self.padding,
                         self.bounds, self.max_kde_samples)

    def w1_1d(self, samples, n_components: int = 5) -> np.ndarray:
        """W1 of each of the first ``n_components`` TICs (100-point KDE grids)."""
        self._check()
        projected = self.transform(samples)
        k = min(n_components, projected.shape[1])
        return np.array([w1_kde_1d(self.reference_[:, i], projected[:, i], 100, self.padding, self.bounds,
                                   self.max_kde_samples) for i in range(k)])

    def js(self, samples, n_components: int = 5, bins: int = 100) -> np.ndarray:
        """JS distances of the histograms of the first ``n_components`` TICs (reference range + 10%)."""
        self._check()
        projected = self.transform(samples)
        k = min(n_components, projected.shape[1])
        return np.atleast_1d(histogram_js(self.reference_[:, :k], projected[:, :k], bins=bins, padding=self.padding))

    def timescales(self, frame_time: Optional[float] = None) -> np.ndarray:
        """Implied timescales of the reference TICs, ``-lag / ln(lambda_i)``, in frames (or ps)."""
        self._check()
        with np.errstate(divide="ignore", invalid="ignore"):
            ts = np.asarray(self.model_.timescales(lagtime=self.lagtime), dtype=float)
        return ts * frame_time if frame_time is not None else ts

    def score(self, samples, n_components: int = 5, bins: int = 100) -> dict:
        """All TICA-space metrics of ``samples`` in a dict."""
        return {
            "tica_w1_2d": self.w1_2d(samples),
            "tica_w1_1d": self.w1_1d(samples, n_components).tolist(),
            "tica_js": self.js(samples, n_components, bins).tolist(),
        }


# ---------------------------------------------------------------------------------- dynamics

def autocorrelation(x, max_lag: Optional[int] = None) -> np.ndarray:
    """Normalised autocorrelation function of a scalar observable, averaged over runs.

    Parameters
    ----------
    x : array_like (n_frames,) or list of such (runs)
        The mean over all runs is subtracted; each lag averages over every pair within a run.
    max_lag : int, optional
        Default: half the longest run.

    Returns
    -------
    ndarray (max_lag + 1,)
        ``rho(0) = 1``.
    """
    runs = [np.asarray(r, dtype=float).ravel() for r in (x if isinstance(x, (list, tuple)) else [x])]
    mean = np.concatenate(runs).mean()
    longest = max(len(r) for r in runs)
    max_lag = longest // 2 if max_lag is None else min(int(max_lag), longest - 1)
    acov = np.zeros(max_lag + 1)
    counts = np.zeros(max_lag + 1)
    for r in runs:
        n = len(r)
        size = 1 << int(2 * n - 1).bit_length()
        spectrum = np.fft.rfft(r - mean, size)
        c = np.fft.irfft(spectrum * np.conj(spectrum), size)[: min(n, max_lag + 1)]
        acov[: len(c)] += c
        counts[: len(c)] += n - np.arange(len(c))
    with np.errstate(invalid="ignore", divide="ignore"):
        acov = acov / counts
    return acov / acov[0]


def integrated_autocorrelation_time(x, window_factor: float = 5.0, max_lag: Optional[int] = None) -> float:
    """Integrated autocorrelation time ``1 + 2 sum_t rho(t)`` in frames, with Sokal's window.

    The sum runs to the smallest lag ``M >= window_factor * tau(M)``.  For an AR(1) process
    ``x_t = a x_{t-1} + noise`` the exact value is ``(1 + a) / (1 - a)``.  The number of
    effectively independent samples is about ``n_frames / tau``.
    """
    rho = autocorrelation(x, max_lag)
    tau = 1.0 + 2.0 * np.cumsum(rho[1:])
    for m in range(1, len(rho)):
        if m >= window_factor * tau[m - 1]:
            return float(tau[m - 1])
    warnings.warn("the autocorrelation window did not close: the runs are too short for a reliable estimate")
    return float(tau[-1])


def msm_implied_timescales(projections, lagtimes: Sequence[int], n_clusters: int = 100, n_timescales: int = 5,
                           seed: int = 0) -> np.ndarray:
    """Implied timescales (frames) of Markov state models on k-means clusters of TICA projections.

    Parameters
    ----------
    projections : list of ndarray (n_frames, d)
        One per run, e.g. ``[tica.model_.transform(tica.features(r)) for r in runs]``.
    lagtimes : sequence of int
    n_clusters : int
    n_timescales : int

    Returns
    -------
    ndarray (len(lagtimes), n_timescales)
        NaN where a model has fewer timescales.
    """
    from deeptime.clustering import KMeans
    from deeptime.markov.msm import MaximumLikelihoodMSM

    runs = [np.ascontiguousarray(p, dtype=float) for p in projections]
    clustering = KMeans(n_clusters=n_clusters, fixed_seed=seed, max_iter=100).fit(np.concatenate(runs)).fetch_model()
    dtrajs = [clustering.transform(r) for r in runs]
    out = np.full((len(lagtimes), n_timescales), np.nan)
    for row, lag in enumerate(lagtimes):
        msm = MaximumLikelihoodMSM(lagtime=int(lag)).fit(dtrajs).fetch_model()
        ts = msm.timescales(k=min(n_timescales, msm.n_states - 1))
        out[row, : len(ts)] = ts
    return out
