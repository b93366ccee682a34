"""Internal coordinates of bead tuples: distances, angles and dihedrals, for numpy and torch alike.

The one implementation of these formulas in the package: the priors fit and evaluate them
(:mod:`openmmcgml.priors`), force matching evaluates its dihedral map with them
(:mod:`openmmcgml.training`) and the analysis measures simulations with them
(:mod:`openmmcgml.analysis.geometry`).

Every function takes ``coordinates`` of shape (..., n_beads, 3) in nm and an integer array of
bead tuples, shape (n_tuples, arity), and returns an array of shape (..., n_tuples):

- a torch tensor in gives a torch tensor of its dtype and device out, differentiable by autograd
  (the torch face: prior energies and the learned dihedral map);
- anything else (arrays, nested lists) is read as float64 numpy, and the result is numpy (the
  numpy face: fitting and analysis).  Importing this module, or using its numpy face, never
  imports torch.

The formulas, with ``x_a`` the position of bead ``a``:

============  ====================  ==========================================================
coordinate    tuple                 value
============  ====================  ==========================================================
distance      ``(i, j)``            ``|x_j - x_i|``
angle         ``(i, j, k)``         ``atan2(|u x v|, u . v)``, ``u = x_i - x_j``,
                                    ``v = x_k - x_j``: the angle at the middle bead, in [0, pi]
dihedral      ``(i, j, k, l)``      ``atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3))``,
                                    ``b1 = x_j - x_i``, ``b2 = x_k - x_j``, ``b3 = x_l - x_k``
============  ====================  ==========================================================

Both angles use ``atan2`` of two unnormalised projections rather than ``arccos`` of a normalised
dot product: ``arccos`` loses half the digits near 0 and pi (an angle of 1e-7 rad comes out with
an error of order 1e-8) and its derivative diverges there, while ``atan2`` keeps full relative
precision everywhere and has finite gradients.  The dihedral follows the IUPAC sign convention,
that of OpenMM's ``PeriodicTorsionForce`` and ``mdtraj.compute_dihedrals``, in (-pi, pi].

Examples
--------
>>> import numpy as np
>>> x = np.array([[0.0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [0.1, 0.1, 0.1]])
>>> compute_distances(x, [[0, 1], [0, 3]]).round(4).tolist()
[0.1, 0.1732]
>>> np.degrees(compute_angles(x, [[0, 1, 2]])).round(6).tolist()
[90.0]
>>> np.degrees(compute_dihedrals(x, [[0, 1, 2, 3]])).round(6).tolist()
[90.0]
>>> import torch
>>> t = torch.tensor(x, requires_grad=True)
>>> angle = compute_angles(t, [[0, 1, 2]])
>>> angle.dtype, angle.requires_grad
(torch.float64, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["compute_angles", "compute_dihedrals", "compute_distances", "compute_squared_distances",
           "generalized_force_operator"]


def _is_tensor(value) -> bool:
    # decided by the type's module, so that numpy callers never import torch
    return type(value).__module__.split(".")[0] == "torch"


class _NumpyOps:
    @staticmethod
    def cross(a, b):
        return np.cross(a, b)

    @staticmethod
    def norm(v):
        return np.linalg.norm(v, axis=-1)

    sqrt = staticmethod(np.sqrt)
    atan2 = staticmethod(np.arctan2)


class _TorchOps:
    @staticmethod
    def cross(a, b):
        import torch

        return torch.linalg.cross(a, b, dim=-1)

    @staticmethod
    def norm(v):
        import torch

        # vector_norm's gradient at a zero vector is 0 (a collinear angle), not NaN
        return torch.linalg.vector_norm(v, dim=-1)

    @staticmethod
    def sqrt(v):
        return v.sqrt()

    @staticmethod
    def atan2(y, x):
        import torch

        return torch.atan2(y, x)


def _prepare(coordinates, tuples, arity: int, name: str):
    """The coordinates, one index array per position of the bead tuples, and the face's operations."""
    torch_face = _is_tensor(coordinates)
    if torch_face:
        if not coordinates.is_floating_point():
            raise ValueError(f"coordinates must be floating point (got {coordinates.dtype})")
        x = coordinates
    else:
        x = np.asarray(coordinates, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != 3:
        raise ValueError(f"coordinates must have shape (..., n_beads, 3) (got {tuple(x.shape)})")
    if torch_face and _is_tensor(tuples):
        # already on the device: no host round trip (and no range check, which would synchronise)
        index = tuples.to(device=x.device).long().reshape(-1, arity)
    else:
        index = _checked_tuples(tuples, arity, x.shape[-2], name)
        if torch_face:
            import torch

            index = torch.as_tensor(index, device=x.device)
    columns = [index[:, position] for position in range(arity)]
    return x, columns, (_TorchOps if torch_face else _NumpyOps)


def _checked_tuples(tuples, arity: int, n_beads: int, name: str) -> np.ndarray:
    if _is_tensor(tuples):
        tuples = tuples.detach().cpu().numpy()
    array = np.asarray(tuples)
    if array.size and array.dtype.kind not in "iu" and not (array.dtype.kind == "f"
                                                           and np.array_equal(array, np.round(array))):
        raise ValueError(f"{name} must be integer bead indices (got dtype {array.dtype})")
    if array.size % arity:
        raise ValueError(f"{name} must hold bead {arity}-tuples (got shape {array.shape})")
    array = array.astype(np.int64).reshape(-1, arity)
    if array.size and (array.min() < 0 or array.max() >= n_beads):
        raise ValueError(f"{name} refer to beads outside [0, {n_beads})")
    return array


def compute_squared_distances(coordinates, pairs):
    """Squared distances (..., n_pairs) in nm^2 of bead pairs ``(i, j)``: ``|x_j - x_i|^2``.

    Without a square root, so that a torch energy of ``r^2`` alone (a repulsion) has a gradient
    everywhere.
    """
    x, (i, j), _ = _prepare(coordinates, pairs, 2, "pairs")
    delta = x[..., j, :] - x[..., i, :]
    return (delta * delta).sum(-1)


def compute_distances(coordinates, pairs):
    """Distances (..., n_pairs) in nm of bead pairs ``(i, j)``: ``|x_j - x_i|``."""
    squared = compute_squared_distances(coordinates, pairs)
    return (_TorchOps if _is_tensor(squared) else _NumpyOps).sqrt(squared)


def compute_angles(coordinates, angles):
    """Angles (..., n_angles) in radians, in [0, pi], at the middle bead ``j`` of each ``(i, j, k)``."""
    x, (i, j, k), ops = _prepare(coordinates, angles, 3, "angles")
    u = x[..., i, :] - x[..., j, :]
    v = x[..., k, :] - x[..., j, :]
    return ops.atan2(ops.norm(ops.cross(u, v)), (u * v).sum(-1))


def compute_dihedrals(coordinates, dihedrals):
    """Dihedral angles (..., n_dihedrals) in radians, in (-pi, pi], of ``(i, j, k, l)`` (IUPAC sign)."""
    x, (i, j, k, l), ops = _prepare(coordinates, dihedrals, 4, "dihedrals")
    b1 = x[..., j, :] - x[..., i, :]
    b2 = x[..., k, :] - x[..., j, :]
    b3 = x[..., l, :] - x[..., k, :]
    c23 = ops.cross(b2, b3)
    c12 = ops.cross(b1, b2)
    return ops.atan2(ops.norm(b2) * (b1 * c23).sum(-1), (c12 * c23).sum(-1))


def generalized_force_operator(coordinates, bonds, angles, dihedrals, batch_size: int = 8192):
    """The matrices ``G = (B B^T)^-1 B`` that turn Cartesian forces into generalized forces along
    a set of ``3 n - 6`` internal coordinates (torch, float64).

    ``B`` is Wilson's matrix of the derivatives of the internal coordinates ``q`` (bond lengths in
    nm, angles and dihedrals in radians, in that order) with respect to the ``3 n`` Cartesian
    coordinates.  A force that is the gradient of a function of ``q``, ``F = -B^T dU/dq``, gives
    ``G F = -dU/dq`` exactly; the parts of a force that move the molecule as a rigid body (net force
    and torque) give zero.

    Parameters
    ----------
    coordinates : array_like or Tensor, shape (n_frames, n_beads, 3)
    bonds, angles, dihedrals : array_like of int
        Bead tuples of ``3 n - 6`` independent internal coordinates, e.g. the chain's of
        :func:`openmmcgml.priors.topology.chain_internal_coordinates`.
    batch_size : int
        Frames at a time.

    Returns
    -------
    Tensor, shape (n_frames, n_q, 3 n_beads)
        Rows in the order bonds, angles, dihedrals; columns ``x_0, y_0, z_0, x_1, ...``.

    Raises
    ------
    ValueError
        If the number of internal coordinates is not ``3 n - 6``, or a frame has no unique
        generalized forces (a straight angle makes a dihedral undefined).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[0.0, 0, 0], [0.15, 0, 0], [0.2, 0.14, 0], [0.35, 0.15, 0.05]]], dtype=torch.float64)
    >>> G = generalized_force_operator(x, [[0, 1], [1, 2], [2, 3]], [[0, 1, 2], [1, 2, 3]], [[0, 1, 2, 3]])
    >>> G.shape
    torch.Size([1, 6, 12])
    >>> translation = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).repeat(4)
    >>> bool((G[0] @ translation).abs().max() < 1e-9)
    True
    """
    import torch

    x = torch.as_tensor(coordinates).to(torch.float64)
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"coordinates must have shape (n_frames, n_beads, 3) (got {tuple(x.shape)})")
    n_beads = x.shape[1]
    tuples = [torch.as_tensor(np.asarray(t, dtype=np.int64).reshape(-1, k)) for t, k in
              ((bonds, 2), (angles, 3), (dihedrals, 4))]
    n_q = sum(len(t) for t in tuples)
    if n_q != 3 * n_beads - 6:
        raise ValueError(f"{n_q} internal coordinates for {n_beads} beads; generalized forces need 3 n - 6 = "
                         f"{3 * n_beads - 6}")
    blocks = []
    for start in range(0, x.shape[0], batch_size):
        chunk = x[start:start + batch_size].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            q = torch.cat([compute_distances(chunk, tuples[0]), compute_angles(chunk, tuples[1]),
                           compute_dihedrals(chunk, tuples[2])], dim=-1)
            rows = [torch.autograd.grad(q[:, i].sum(), chunk, retain_graph=i + 1 < n_q)[0].reshape(len(chunk), -1)
                    for i in range(n_q)]
        b = torch.stack(rows, dim=1)
        gram = b @ b.transpose(1, 2)
        try:
            blocks.append(torch.linalg.solve(gram, b))
        except RuntimeError as error:  # torch raises for an exactly singular matrix
            raise ValueError("a frame has no unique generalized forces (its Wilson matrix is singular: a straight "
                             "angle?)") from error
    operator = torch.cat(blocks) if blocks else torch.zeros((0, n_q, 3 * n_beads), dtype=torch.float64)
    if not bool(torch.isfinite(operator).all()):
        raise ValueError("a frame has no unique generalized forces (its Wilson matrix is singular: a straight angle?)")
    return operator
