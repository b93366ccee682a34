"""Whether CG sampling has forgotten its starting frames: replicas started in two different basins
of alanine dipeptide, compared over growing windows of simulated time.

Replicas started from training frames inherit the basin populations of those frames until the
dynamics relax them.  Two sets of replicas, one started only from beta frames and one only from
alpha-R frames (``cgml simulate`` with ``initial.basin``, or :func:`basin_frames` with
:func:`~openmmcgml.simulation.initial_structures`), sample the same distribution only after that
relaxation.  :func:`compare_starts` measures when: for windows ``(burn_in, T]`` of growing ``T`` it
reports the 2-D phi/psi JS distance between the two sets and the basin populations of each, and the
first ``T`` from which every window agrees within a tolerance (the all-atom noise floor).

Examples
--------
Two sets of two-state chains (alpha-R and beta, relaxation time 20 frames of 1 ps), one set
started in each basin:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> centres = np.radians([[-70.0, -40.0], [-120.0, 140.0]])
>>> def chains(start, n_chains=100, n_frames=400, switch=0.025):
...     state = np.full(n_chains, start)
...     runs = np.empty((n_chains, n_frames, 2))
...     for k in range(n_frames):
...         state = np.where(rng.random(n_chains) < switch, 1 - state, state)
...         runs[:, k] = centres[state] + rng.normal(scale=0.2, size=(n_chains, 2))
...     return list(runs)
>>> check = compare_starts(chains(0), chains(1), frame_time=1.0, windows=[25, 50, 100, 300, 400],
...                        population_tolerance=0.1)
>>> check.agreement_time   # the mean population gap over (0, T] is about 20 ps / T
300.0
>>> print(check.table())   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .basins import ALANINE_BASINS, assign_basins, basin_populations
from .distributions import histogram_js_2d
from .geometry import alanine_phi_psi

__all__ = ["StartComparison", "basin_frames", "compare_starts", "phi_psi_runs"]


def _check_alanine(bead_names, n_beads: int, what: str) -> None:
    from .report import detect_kind

    if n_beads != 5:
        raise ValueError(f"{what} has {n_beads} beads per frame; basins are defined for alanine dipeptide's "
                         "backbone map of 5 beads C N CA C N")
    if bead_names is not None and detect_kind(bead_names) != "alanine":
        raise ValueError(f"{what} has beads {', '.join(str(n) for n in bead_names)}; basins are defined for "
                         "alanine dipeptide's backbone map C N CA C N")


def _read(source):
    """(list of coordinate arrays per run, bead names or None, list of times per run in ps or None)."""
    from ..simulation.storage import TrajectorySet, read_trajectories

    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        source = read_trajectories(source)
    if isinstance(source, TrajectorySet):
        times = [np.asarray(s, dtype=float) * source.timestep for s in source.steps] if source.timestep else None
        return [np.asarray(x, dtype=float) for x in source.coordinates], list(source.bead_names), times
    array = np.asarray(source, dtype=float) if isinstance(source, np.ndarray) else None
    runs = [array] if array is not None and array.ndim == 3 else [np.asarray(r, dtype=float) for r in source]
    return runs, None, None


def basin_frames(source, basin: str, bead_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """The frames of alanine-dipeptide CG data whose (phi, psi) lie in one basin.

    Parameters
    ----------
    source : str or path or TrajectorySet or array_like
        A CG trajectory file (docs/data-format.md), a
        :class:`~openmmcgml.simulation.TrajectorySet`, or frames (n_frames, 5, 3) in nm.
    basin : str
        One of :data:`~openmmcgml.analysis.basins.ALANINE_BASINS` (``alpha_R``, ``beta``, ``alpha_L``).
    bead_names : sequence of str, optional
        Checked to be C N CA C N; a file's or TrajectorySet's own names are checked when it has them.

    Returns
    -------
    ndarray, shape (n_selected, 5, 3)
        Frames in file order; use :func:`~openmmcgml.simulation.initial_structures` to draw replicas.

    Raises
    ------
    ValueError
        If the basin is unknown, the frames are not alanine dipeptide's 5-bead backbone map, or
        no frame lies in the basin.

    Examples
    --------
    >>> from openmmcgml.analysis.geometry import build_chain
    >>> def chain(phi, psi):
    ...     return build_chain([0.133, 0.146, 0.152, 0.133], [1.95] * 3, np.radians([phi, psi]))
    >>> frames = np.stack([chain(-60, -45), chain(-120, 140), chain(-70, 150)])
    >>> basin_frames(frames, "beta").shape
    (2, 5, 3)
    """
    if basin not in ALANINE_BASINS:
        raise ValueError(f"unknown basin {basin!r}; the alanine-dipeptide basins are {', '.join(ALANINE_BASINS)}")
    runs, names, _ = _read(source)
    if not runs or any(r.ndim != 3 or r.shape[-1] != 3 for r in runs):
        raise ValueError("expected frames of shape (n_frames, n_beads, 3)")
    frames = np.concatenate(runs)
    _check_alanine(bead_names if bead_names is not None else names, frames.shape[1], "the starting data")
    if len(frames) == 0:
        raise ValueError("the starting data hold no frames")
    phi, psi = alanine_phi_psi(frames)
    labels = assign_basins(phi, psi, units="radians")
    chosen = frames[labels == ALANINE_BASINS.index(basin)]
    if len(chosen) == 0:
        counts = ", ".join(f"{name} {int((labels == k).sum())}" for k, name in enumerate(ALANINE_BASINS))
        raise ValueError(f"no frame of the starting data lies in basin {basin} (frames per basin: {counts})")
    return chosen


def phi_psi_runs(source, bead_names: Optional[Sequence[str]] = None):
    """Backbone (phi, psi) of every run of alanine-dipeptide CG data, and the time of each frame.

    Parameters
    ----------
    source : str or path or TrajectorySet or list of array_like
        A CG trajectory file, a :class:`~openmmcgml.simulation.TrajectorySet`, or runs of frames
        (n_frames, 5, 3).
    bead_names : sequence of str, optional
        Checked to be C N CA C N (a file's own names are checked when it has them).

    Returns
    -------
    angles : list of ndarray, shape (n_frames, 2)
        (phi, psi) in radians, one array per run.
    times : list of ndarray or None
        ps of each frame (``step * timestep``) where the file gives its time step, else None.
    """
    runs, names, times = _read(source)
    if not runs or any(r.ndim != 3 or r.shape[-1] != 3 for r in runs):
        raise ValueError("expected runs of frames of shape (n_frames, n_beads, 3)")
    _check_alanine(bead_names if bead_names is not None else names, runs[0].shape[1], "the CG data")
    return [np.stack(alanine_phi_psi(r), axis=1) if len(r) else np.zeros((0, 2)) for r in runs], times


@dataclass
class StartComparison:
    """Two sets of replicas compared over growing windows ``(burn_in, T]`` (what :func:`compare_starts` returns).

    Attributes
    ----------
    window_ends : ndarray
        ``T`` of each window, ps.
    js : ndarray
        2-D phi/psi JS distance between the two sets in each window.
    populations_first, populations_second : ndarray, shape (n_windows, 3)
        Fraction of each set's frames in each basin (columns in the order of :attr:`basins`).
    frames_first, frames_second : ndarray of int
        Frames of each set in each window (all of them; the JS distance uses at most ``max_frames``).
    burn_in : float
        ps discarded from the start of every replica.
    tolerance, population_tolerance : float or None
        The agreement criteria.
    agreement_time : float or None
        The first window end from which every window agrees (None: the last one does not).
    basins : tuple of str
    labels : tuple of str
        Names of the two sets in :meth:`table`.
    agrees : ndarray of bool
        Whether each window agrees.
    max_frames : int or None
        Frames per set behind each JS distance, at most.
    errors_first, errors_second : ndarray, shape (n_windows, 3)
        Standard error of each population (NaN where it cannot be estimated).
    population_sigmas : float or None
        The agreement criterion in standard errors of the population difference.
    """

    window_ends: np.ndarray
    js: np.ndarray
    populations_first: np.ndarray
    populations_second: np.ndarray
    frames_first: np.ndarray
    frames_second: np.ndarray
    burn_in: float
    tolerance: Optional[float]
    population_tolerance: Optional[float]
    agreement_time: Optional[float]
    basins: tuple = ALANINE_BASINS
    labels: tuple = ("first", "second")
    agrees: np.ndarray = field(default=None)
    max_frames: Optional[int] = None
    errors_first: Optional[np.ndarray] = None
    errors_second: Optional[np.ndarray] = None
    population_sigmas: Optional[float] = None

    def table(self) -> str:
        """The windows as a text table: end, frames, JS, populations of both sets, agreement."""
        first, second = self.labels
        head = (["window (ps)", f"frames {first}/{second}", "JS 2-D"]
                + [f"{b} {first}/{second} +- gap error" for b in self.basins] + ["agree"])
        rows = []
        for k, end in enumerate(self.window_ends):
            rows.append([f"{self.burn_in:.4g}-{end:.4g}", f"{self.frames_first[k]}/{self.frames_second[k]}",
                         f"{self.js[k]:.3f}"]
                        + [f"{self.populations_first[k, b]:.3f}/{self.populations_second[k, b]:.3f} "
                           f"+- {self._gap_error(k, b):.3f}" for b in range(len(self.basins))]
                        + ["yes" if self.agrees[k] else "no"])
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        criteria = []
        if self.tolerance is not None:
            thinned = f" on at most {self.max_frames} frames per set" if self.max_frames is not None else ""
            criteria.append(f"JS <= {self.tolerance:.3g}{thinned}")
        if self.population_tolerance is not None:
            criteria.append(f"every basin population within {self.population_tolerance:g}")
        if self.population_sigmas is not None:
            criteria.append(f"every basin population within {self.population_sigmas:g} standard errors")
        verdict = (f"the two starts agree ({' and '.join(criteria)}) from the window ending at "
                   f"{self.agreement_time:g} ps on" if self.agreement_time is not None
                   else f"the two starts do not agree ({' and '.join(criteria)}) in the last window: run longer")
        return "\n".join(lines + [verdict])

    def _gap_error(self, window: int, basin: int) -> float:
        if self.errors_first is None or self.errors_second is None:
            return float("nan")
        return float(np.hypot(self.errors_first[window, basin], self.errors_second[window, basin]))

    def to_dict(self) -> dict:
        """Plain lists and numbers (for JSON)."""
        return {
            "window_ends_ps": self.window_ends.tolist(), "js": self.js.tolist(), "burn_in_ps": self.burn_in,
            "populations": {label: {b: pops[:, k].tolist() for k, b in enumerate(self.basins)}
                            for label, pops in zip(self.labels, (self.populations_first, self.populations_second))},
            "frames": {self.labels[0]: self.frames_first.tolist(), self.labels[1]: self.frames_second.tolist()},
            "tolerance": self.tolerance, "population_tolerance": self.population_tolerance,
            "population_errors": {label: {b: errs[:, k].tolist() for k, b in enumerate(self.basins)}
                                  for label, errs in zip(self.labels, (self.errors_first, self.errors_second))
                                  if errs is not None},
            "population_sigmas": self.population_sigmas,
            "agrees": self.agrees.tolist(), "agreement_time_ps": self.agreement_time, "max_frames": self.max_frames,
        }


def _angles_and_times(source, frame_time, what):
    """(list of (n, 2) angle arrays, list of time arrays) of a set of runs."""
    if isinstance(source, (list, tuple)) and source and all(np.ndim(r) == 2 for r in source):
        angles = [np.asarray(r, dtype=float) for r in source]
        if any(a.shape[1] != 2 for a in angles):
            raise ValueError(f"{what}: runs of angles must have shape (n_frames, 2) (phi, psi)")
        times = None
    else:
        angles, times = phi_psi_runs(source)
    # onto [-pi, pi), the histogram's range
    angles = [(a + np.pi) % (2 * np.pi) - np.pi for a in angles]
    if frame_time is not None:
        # frame k of a run is at (k + 1) * frame_time: a simulation reports after its first interval
        times = [(np.arange(len(a)) + 1.0) * float(frame_time) for a in angles]
    if times is None:
        raise ValueError(f"{what}: the time of its frames is unknown (no time step in the file): give frame_time")
    if not angles or sum(len(a) for a in angles) == 0:
        raise ValueError(f"{what} holds no frames")
    return angles, times


def compare_starts(first, second, *, frame_time: Optional[float] = None, burn_in: float = 0.0, windows=10,
                   tolerance: Optional[float] = None, population_tolerance: Optional[float] = None,
                   population_sigmas: Optional[float] = None, bins: int = 50, max_frames: Optional[int] = None,
                   labels: Sequence[str] = ("first", "second")) -> StartComparison:
    """Compare two sets of alanine-dipeptide CG replicas started in different basins, over growing windows.

    For each window end ``T``, the frames of every replica with time in ``(burn_in, T]`` are pooled
    per set; the window reports the 2-D phi/psi JS distance (``bins`` x ``bins`` on the torus)
    between the two sets and the population of each basin
    (:func:`~openmmcgml.analysis.basins.assign_basins`) in each set, with its standard error.  A
    window agrees when the JS distance is at most ``tolerance``, every basin population differs by
    at most ``population_tolerance`` and by at most ``population_sigmas`` standard errors of the
    difference (each criterion where given).  Both sets sample one equilibrium once
    they forget their starts, so the JS distance falls to the statistical noise of the window's
    sample size; give the all-atom noise floor at a comparable size as ``tolerance``.

    Parameters
    ----------
    first, second : str or path or TrajectorySet or list
        A CG trajectory file (``cgml simulate`` output), a
        :class:`~openmmcgml.simulation.TrajectorySet`, a list of runs of frames (n_frames, 5, 3),
        or a list of runs of angles (n_frames, 2) ``(phi, psi)`` in radians.
    frame_time : float, optional
        ps between frames, frame ``k`` at ``(k + 1) * frame_time``; default: ``step * timestep``
        from the file (required for arrays).
    burn_in : float
        ps discarded from the start of every replica.
    windows : int or sequence of float
        Window ends ``T`` in ps, or their number, spread evenly up to the end of the shorter set.
    tolerance : float, optional
        Largest 2-D JS distance that counts as agreement (the noise floor).
    population_tolerance : float, optional
        Largest difference of any basin population that counts as agreement.
    population_sigmas : float, optional
        Largest difference of any basin population, in standard errors of that difference, that
        counts as agreement (e.g. 2).  The errors come from
        :func:`~openmmcgml.analysis.basins.basin_populations` on each set's replicas in the window
        (one block per replica from 8 replicas on, so independent replicas give the error; else 4
        blocks in time per replica, which underestimates it when a block is shorter than the
        slowest basin exchange).
    bins : int
        Histogram bins per angle for the JS distance.
    max_frames : int, optional
        The JS distance of a window uses at most this many frames of each set, evenly strided.  The
        JS distance of two finite samples of one distribution shrinks as they grow, so compare
        with a noise floor of the same size: give the frame count of the all-atom sets behind
        ``tolerance``.  Populations always use every frame.
    labels : two str
        Names of the sets in the table (e.g. ``("beta", "alpha_R")``).

    Returns
    -------
    StartComparison
        With :attr:`~StartComparison.agreement_time`, the first window end from which every
        window agrees.  Windows are as fine as ``windows`` makes them: the time is an upper bound
        to that resolution.

    Raises
    ------
    ValueError
        If neither criterion is given, a window holds no frame of a set, or the data are not
        alanine dipeptide's backbone map.

    Notes
    -----
    A growing window ``(b, T]`` mixes the early frames into every later window: if the two sets'
    populations differ by ``d exp(-t / tau)`` at time ``t``, the window's mean gap is about
    ``d tau exp(-b / tau) / (T - b)``.  Without a burn-in the sets agree within ``e`` after about
    ``tau d / e``; a burn-in of a few ``tau`` removes the start's trace, and the agreement time
    then measures only how long the statistics take.
    """
    if tolerance is None and population_tolerance is None and population_sigmas is None:
        raise ValueError("give tolerance (largest JS distance, the noise floor), population_tolerance or "
                         "population_sigmas")
    for name, value in (("tolerance", tolerance), ("population_tolerance", population_tolerance),
                        ("population_sigmas", population_sigmas)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a number >= 0 (got {value!r})")
    if not (np.isfinite(burn_in) and burn_in >= 0):
        raise ValueError(f"burn_in must be a number >= 0 ps (got {burn_in!r})")
    if frame_time is not None and not (np.isfinite(frame_time) and frame_time > 0):
        raise ValueError(f"frame_time must be a number > 0 ps (got {frame_time!r})")
    if max_frames is not None and (int(max_frames) != max_frames or max_frames < 1):
        raise ValueError(f"max_frames must be an integer >= 1 (got {max_frames!r})")
    if len(labels) != 2:
        raise ValueError("labels: one name per set")
    sets = [_angles_and_times(first, frame_time, f"set {labels[0]}"),
            _angles_and_times(second, frame_time, f"set {labels[1]}")]
    end = min(max(float(t[-1]) for t in times if len(t)) for _, times in sets)
    if end <= burn_in:
        raise ValueError(f"the shorter set ends at {end:g} ps, not after the burn-in of {burn_in:g} ps")
    if np.isscalar(windows):
        n_windows = int(windows)
        if n_windows < 1:
            raise ValueError(f"windows must be at least 1 (got {windows})")
        ends = burn_in + (end - burn_in) * np.arange(1, n_windows + 1) / n_windows
    else:
        ends = np.asarray(windows, dtype=float)
        if ends.ndim != 1 or len(ends) == 0 or np.any(np.diff(ends) <= 0) or ends[0] <= burn_in:
            raise ValueError("windows must be increasing window ends (ps) after the burn-in")
        if ends[-1] > end + 1e-9 * max(end, 1.0):
            raise ValueError(f"the last window ends at {ends[-1]:g} ps but the shorter set ends at {end:g} ps")

    flat = []
    for angles, times in sets:
        if any(len(a) != len(t) for a, t in zip(angles, times)):
            raise ValueError("every run needs one time per frame")
        a = np.concatenate(angles)
        t = np.concatenate(times)
        flat.append((a, t, assign_basins(a[:, 0], a[:, 1], units="radians")))
    n_basins = len(ALANINE_BASINS)
    js = np.empty(len(ends))
    populations = np.empty((2, len(ends), n_basins))
    errors = np.full((2, len(ends), n_basins), np.nan)
    counts = np.empty((2, len(ends)), dtype=int)
    for k, window_end in enumerate(ends):
        selected = []
        for s, (a, t, labels_of) in enumerate(flat):
            inside = (t > burn_in) & (t <= window_end * (1 + 1e-12))
            counts[s, k] = int(inside.sum())
            if counts[s, k] == 0:
                raise ValueError(f"the window ({burn_in:g}, {window_end:g}] ps holds no frame of set {labels[s]}")
            populations[s, k] = np.bincount(labels_of[inside], minlength=n_basins) / counts[s, k]
            angles, times = sets[s]
            errors[s, k] = _population_errors([a[(t > burn_in) & (t <= window_end * (1 + 1e-12))]
                                               for a, t in zip(angles, times)])
            chosen = a[inside]
            if max_frames is not None and len(chosen) > max_frames:
                chosen = chosen[np.linspace(0, len(chosen) - 1, int(max_frames)).round().astype(int)]
            selected.append(chosen)
        js[k] = histogram_js_2d(selected[0], selected[1], bins=bins)

    agrees = np.ones(len(ends), dtype=bool)
    if tolerance is not None:
        agrees &= js <= tolerance
    if population_tolerance is not None:
        agrees &= np.abs(populations[0] - populations[1]).max(axis=1) <= population_tolerance
    gap_errors = np.sqrt(errors[0] ** 2 + errors[1] ** 2)
    if population_sigmas is not None:
        # a window without an error estimate cannot show agreement
        agrees &= np.all(np.abs(populations[0] - populations[1]) <= population_sigmas * gap_errors, axis=1)
    agreement_time = None
    if agrees[-1]:
        failing = np.flatnonzero(~agrees)
        agreement_time = float(ends[failing[-1] + 1] if len(failing) else ends[0])
    return StartComparison(ends, js, populations[0], populations[1], counts[0], counts[1], float(burn_in), tolerance,
                           population_tolerance, agreement_time, ALANINE_BASINS, tuple(labels), agrees,
                           None if max_frames is None else int(max_frames), errors[0], errors[1], population_sigmas)


def _population_errors(runs) -> np.ndarray:
    """Standard errors of the basin populations of runs of (phi, psi) (radians), from
    :func:`~openmmcgml.analysis.basins.basin_populations` with its default blocks (one per run
    from 8 runs on, else 4 in time per run); NaN where fewer than two blocks result."""
    n_blocks = 1 if sum(len(r) > 0 for r in runs) >= 8 else 4
    runs = [r for r in runs if len(r) >= n_blocks]
    if len(runs) * n_blocks < 2:
        return np.full(len(ALANINE_BASINS), np.nan)
    result = basin_populations([r[:, 0] for r in runs], [r[:, 1] for r in runs], units="radians",
                               n_blocks_per_run=n_blocks)
    return result.errors
