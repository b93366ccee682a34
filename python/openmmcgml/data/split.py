"""Training and validation frames: the package's one train/validation split.

Frames of one MD run are correlated, so a frame and its neighbour on opposite sides of the split
would make the validation loss look better than it is. :func:`split_by_trajectory` therefore holds
out whole runs (the ``trajectory`` index of every frame, ``docs/data-format.md``), and splits in
time only when there is a single run. Force matching (:class:`~openmmcgml.training.ForceMatching`)
and :meth:`Trajectory.split <openmmcgml.data.trajectory.Trajectory.split>` both use it.

A split is reported as frame indices; :func:`index_ranges` writes such indices compactly (a model
file's metadata holds its validation frames this way) and :func:`ranges_to_indices` reads them back.

Examples
--------
>>> train, validation, held_out = split_by_trajectory([0, 0, 1, 1, 2, 2], 0.34, seed=1)
>>> len(held_out), len(validation)
(1, 2)
>>> index_ranges([0, 1, 2, 7, 8])
[[0, 3], [7, 9]]
>>> ranges_to_indices([[0, 3], [7, 9]]).tolist()
[0, 1, 2, 7, 8]
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

__all__ = ["index_ranges", "ranges_to_indices", "split_by_trajectory"]


def split_by_trajectory(trajectory_ids, validation_fraction: float = 0.2, seed: int = 0,
                        validation_trajectories: Optional[Sequence[int]] = None):
    """Split frames into training and validation sets by trajectory.

    A random ``validation_fraction`` of the trajectories (at least one, at most all but one) are
    validation trajectories, unless they are named in ``validation_trajectories``.  With a
    single trajectory, its last ``validation_fraction`` of frames are held out instead (a time
    split, with a warning).

    Parameters
    ----------
    trajectory_ids : array_like of int, shape (n_frames,)
        The run each frame comes from.
    validation_fraction : float
        In (0, 1): the fraction of trajectories (or, for a single one, of frames) held out.
    seed : int
        Seeds the choice of trajectories.
    validation_trajectories : sequence of int, optional
        The held-out trajectory ids, instead of a random choice.

    Returns
    -------
    train_frames, validation_frames : ndarray of int64
        Frame indices, ascending.
    validation_trajectories : list of int
        The held-out trajectory ids (empty for a time split).

    Raises
    ------
    ValueError
        With fewer than 2 frames, a fraction outside (0, 1), or named trajectories that are not
        in the data or leave none to train on.

    Examples
    --------
    >>> train, val, held_out = split_by_trajectory([5, 5, 6, 6, 7, 7], validation_trajectories=[6])
    >>> train.tolist(), val.tolist(), held_out
    ([0, 1, 4, 5], [2, 3], [6])
    """
    t = np.asarray(trajectory_ids, dtype=np.int64)
    ids = np.unique(t)
    if len(t) < 2:
        raise ValueError(f"training needs at least 2 frames, one to train on and one to validate (got {len(t)})")
    if validation_trajectories is not None:
        held_out = sorted(int(i) for i in validation_trajectories)
        unknown = sorted(set(held_out) - set(ids.tolist()))
        if unknown:
            raise ValueError(f"validation trajectories {unknown} are not in the data (trajectories {ids.tolist()})")
        if len(held_out) == len(ids):
            raise ValueError("every trajectory is a validation trajectory; none is left to train on")
    elif len(ids) == 1:
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1) (got {validation_fraction})")
        warnings.warn("the data hold a single trajectory: its last frames are the validation set (a time split)")
        frames = np.arange(len(t))
        cut = min(max(int(round(len(t) * (1 - validation_fraction))), 1), len(t) - 1)
        return frames[:cut], frames[cut:], []
    else:
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1) (got {validation_fraction})")
        count = min(max(int(round(validation_fraction * len(ids))), 1), len(ids) - 1)
        held_out = sorted(np.random.default_rng(seed).choice(ids, size=count, replace=False).tolist())
    validation = np.isin(t, held_out)
    return np.flatnonzero(~validation), np.flatnonzero(validation), [int(i) for i in held_out]


def index_ranges(indices) -> list:
    """Ascending, distinct indices as half-open ranges ``[[start, stop], ...]`` (JSON-friendly).

    Raises
    ------
    ValueError
        If the indices are not ascending and distinct, or negative.
    """
    values = np.asarray(indices, dtype=np.int64).ravel()
    if values.size == 0:
        return []
    if values[0] < 0 or np.any(np.diff(values) <= 0):
        raise ValueError("index_ranges needs ascending, distinct, non-negative indices")
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.concatenate([[values[0]], values[breaks + 1]])
    stops = np.concatenate([values[breaks] + 1, [values[-1] + 1]])
    return [[int(a), int(b)] for a, b in zip(starts, stops)]


def ranges_to_indices(ranges) -> np.ndarray:
    """The indices of half-open ranges ``[[start, stop], ...]`` (the inverse of :func:`index_ranges`)."""
    pieces = [np.arange(int(start), int(stop), dtype=np.int64) for start, stop in ranges]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
