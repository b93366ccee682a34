"""Internal coordinates and structural observables of CG frames (numpy; nm and radians).

Every function takes frames as an array of shape (n_frames, n_beads, 3) or one frame
(n_beads, 3); an ``mdtraj.Trajectory`` is accepted too (its ``xyz``).  Bond lengths, angles and
dihedrals are those of :mod:`openmmcgml.geometry`, with the consecutive beads of a chain as
default tuples.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from ..geometry import compute_angles, compute_dihedrals, compute_distances

__all__ = [
    "NativeContacts",
    "alanine_phi_psi",
    "bond_angles",
    "bond_lengths",
    "build_chain",
    "dihedral_angles",
    "frames",
    "pairwise_distances",
    "radius_of_gyration",
    "rmsd",
]


def frames(xyz) -> np.ndarray:
    """``xyz`` as a float64 array of shape (n_frames, n_beads, 3).

    Accepts an array of one frame or many, an ``mdtraj.Trajectory``, or a list of arrays (runs),
    which are concatenated.
    """
    if hasattr(xyz, "xyz") and not isinstance(xyz, np.ndarray):
        xyz = xyz.xyz
    if isinstance(xyz, (list, tuple)) and len(xyz) and np.ndim(xyz[0]) == 3:
        xyz = np.concatenate([np.asarray(x, dtype=float) for x in xyz])
    xyz = np.asarray(xyz, dtype=float)
    if xyz.ndim == 2:
        xyz = xyz[None]
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise ValueError(f"frames must have shape (n_frames, n_beads, 3) or (n_beads, 3) (got {xyz.shape})")
    return xyz


def _default_tuples(tuples, size, n_beads):
    """``tuples``, or the consecutive beads ``(i, ..., i + size - 1)`` of a chain if None."""
    if tuples is not None:
        return tuples
    return np.array([range(i, i + size) for i in range(n_beads - size + 1)], dtype=np.int64).reshape(-1, size)


def pairwise_distances(xyz, pairs=None) -> np.ndarray:
    """Distances (n_frames, n_pairs) of bead pairs; default every pair i < j in row-major order.

    Examples
    --------
    >>> x = np.array([[0.0, 0, 0], [0.3, 0, 0], [0.3, 0.4, 0]])
    >>> pairwise_distances(x).round(3).tolist()
    [[0.3, 0.5, 0.4]]
    """
    xyz = frames(xyz)
    if pairs is None:
        pairs = np.array(list(combinations(range(xyz.shape[1]), 2)), dtype=np.int64).reshape(-1, 2)
    return compute_distances(xyz, pairs)


def bond_lengths(xyz, bonds=None) -> np.ndarray:
    """Lengths (n_frames, n_bonds) of bonds; default consecutive beads (i, i+1)."""
    xyz = frames(xyz)
    return compute_distances(xyz, _default_tuples(bonds, 2, xyz.shape[1]))


def bond_angles(xyz, angles=None) -> np.ndarray:
    """Angles (n_frames, n_angles) in radians at the middle bead; default (i, i+1, i+2)."""
    xyz = frames(xyz)
    return compute_angles(xyz, _default_tuples(angles, 3, xyz.shape[1]))


def dihedral_angles(xyz, dihedrals=None) -> np.ndarray:
    """Dihedral angles (n_frames, n) in (-pi, pi]; default (i, i+1, i+2, i+3).

    The IUPAC sign convention, the one of ``mdtraj.compute_dihedrals`` and OpenMM's
    PeriodicTorsionForce (see :func:`openmmcgml.geometry.compute_dihedrals`).
    """
    xyz = frames(xyz)
    return compute_dihedrals(xyz, _default_tuples(dihedrals, 4, xyz.shape[1]))


def alanine_phi_psi(xyz, beads: Sequence[int] = (0, 1, 2, 3, 4)):
    """Backbone phi and psi (radians) of alanine dipeptide from its five CG beads.

    Parameters
    ----------
    xyz : array_like, shape (n_frames, n_beads, 3)
    beads : five indices
        The beads C(ACE), N, CA, C, N(NME), in this order (default the first five).

    Returns
    -------
    phi, psi : ndarray, shape (n_frames,)
        ``phi = dihedral(C(ACE), N, CA, C)``, ``psi = dihedral(N, CA, C, N(NME))``.

    Examples
    --------
    >>> x = build_chain([0.133, 0.146, 0.152, 0.133], [1.95] * 3, np.radians([-60.0, 135.0]))
    >>> np.degrees(alanine_phi_psi(x)).round(6).tolist()
    [[-60.0], [135.0]]
    """
    c0, n1, ca, c1, n2 = (int(b) for b in beads)
    angles = dihedral_angles(xyz, [(c0, n1, ca, c1), (n1, ca, c1, n2)])
    return angles[:, 0], angles[:, 1]


def radius_of_gyration(xyz, masses=None) -> np.ndarray:
    """Radius of gyration (n_frames,) in nm, unweighted unless ``masses`` are given."""
    xyz = frames(xyz)
    w = np.ones(xyz.shape[1]) if masses is None else np.asarray(masses, dtype=float)
    w = w / w.sum()
    centre = np.einsum("fbi,b->fi", xyz, w)
    return np.sqrt(np.einsum("fb,b->f", np.sum((xyz - centre[:, None]) ** 2, axis=-1), w))


def rmsd(xyz, reference, superpose: bool = True, beads=None) -> np.ndarray:
    """RMSD (n_frames,) in nm of each frame to ``reference`` after optimal superposition (Kabsch).

    Parameters
    ----------
    xyz : array_like, shape (n_frames, n_beads, 3)
    reference : array_like, shape (n_beads, 3) (or a one-frame trajectory)
    superpose : bool
        Remove translation and rotation first (default); False compares the raw coordinates.
    beads : sequence of int, optional
        Use only these beads.

    Examples
    --------
    >>> ref = np.random.default_rng(0).normal(size=(6, 3))
    >>> rotation = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    >>> float(rmsd(ref @ rotation.T + 2.0, ref)[0]) < 1e-12
    True
    """
    xyz = frames(xyz)
    ref = frames(reference)[0]
    if beads is not None:
        xyz, ref = xyz[:, list(beads)], ref[list(beads)]
    if xyz.shape[1:] != ref.shape:
        raise ValueError(f"frames have {xyz.shape[1]} beads but the reference has {ref.shape[0]}")
    if not superpose:
        return np.sqrt(np.mean(np.sum((xyz - ref) ** 2, axis=-1), axis=-1))
    x = xyz - xyz.mean(axis=1, keepdims=True)
    y = ref - ref.mean(axis=0)
    # Kabsch: the rotation R = U diag(1, 1, d) V^T from the SVD of x^T y, d fixing reflections;
    # the deviations are computed after rotating (no cancellation for near-identical frames)
    u, _, vt = np.linalg.svd(np.einsum("fbi,bj->fij", x, y))
    d = np.sign(np.linalg.det(np.einsum("fij,fjk->fik", u, vt)))
    u[:, :, -1] *= d[:, None]
    rotated = np.einsum("fbi,fij->fbj", x, np.einsum("fij,fjk->fik", u, vt))
    return np.sqrt(np.mean(np.sum((rotated - y) ** 2, axis=-1), axis=-1))


class NativeContacts:
    """Fraction of native contacts Q of a CA (or any one-bead-per-residue) chain.

    Native contacts are the bead pairs ``|i - j| >= min_separation`` closer than ``cutoff`` in the
    native structure.  Q of a frame is the average over them of

    * ``"smooth"`` (default; Best, Hummer & Eaton, PNAS 110, 17874 (2013)):
      ``1 / (1 + exp(beta (r_ij - lambda r0_ij)))``, with ``beta = 50 / nm`` and ``lambda = 1.5``
      (their value for CA models; 1.8 for all-atom);
    * ``"hard"``: 1 when ``r_ij < lambda r0_ij``, else 0.

    The defaults (``cutoff = 0.8 nm``, ``min_separation = 3``) give 12 native contacts for
    chignolin (CA beads of PDB 5AWL), Q = 1 - 2e-6 for the crystal structure and Q < 1e-4 for a
    fully extended chain (phi = -120, psi = 120 degrees).

    Parameters
    ----------
    cutoff : float
        nm.
    min_separation : int
    beta : float
        1/nm.
    lam : float
        ``lambda``, tolerance factor on the native distance.
    method : {"smooth", "hard"}

    Attributes
    ----------
    pairs_ : ndarray (n_contacts, 2)
    native_distances_ : ndarray (n_contacts,)

    Examples
    --------
    >>> hairpin = np.array([[0, 0, 0], [0.38, 0, 0], [0.76, 0, 0], [0.76, 0.5, 0], [0.38, 0.5, 0], [0, 0.5, 0]])
    >>> q = NativeContacts(cutoff=0.8).fit(hairpin)
    >>> q.pairs_.tolist()
    [[0, 4], [0, 5], [1, 4], [1, 5]]
    >>> round(float(q.transform(hairpin)[0]), 4)
    1.0
    """

    def __init__(self, cutoff: float = 0.8, min_separation: int = 3, beta: float = 50.0, lam: float = 1.5,
                 method: str = "smooth"):
        if method not in ("smooth", "hard"):
            raise ValueError(f"method must be 'smooth' or 'hard' (got {method!r})")
        self.cutoff, self.min_separation = float(cutoff), int(min_separation)
        self.beta, self.lam, self.method = float(beta), float(lam), method

    def fit(self, native, beads=None):
        """Find the native contacts of ``native`` (n_beads, 3), optionally among ``beads`` only."""
        x = frames(native)[0]
        index = np.arange(len(x)) if beads is None else np.asarray(beads, dtype=int)
        pairs = np.array([(a, b) for a, b in combinations(index, 2) if abs(b - a) >= self.min_separation],
                         dtype=int).reshape(-1, 2)
        r0 = pairwise_distances(x, pairs)[0] if len(pairs) else np.zeros(0)
        keep = r0 < self.cutoff
        if not keep.any():
            raise ValueError(f"the native structure has no contacts closer than {self.cutoff} nm")
        self.pairs_, self.native_distances_ = pairs[keep], r0[keep]
        return self

    def transform(self, xyz) -> np.ndarray:
        """Q of each frame, shape (n_frames,)."""
        if not hasattr(self, "pairs_"):
            raise RuntimeError("call fit(native) first")
        r = pairwise_distances(xyz, self.pairs_)
        threshold = self.lam * self.native_distances_
        if self.method == "hard":
            return np.mean(r < threshold, axis=1)
        z = np.clip(self.beta * (r - threshold), -700.0, 700.0)
        return np.mean(1.0 / (1.0 + np.exp(z)), axis=1)


def build_chain(bond_lengths, angles, dihedrals, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Cartesian coordinates (nm) of a chain from internal coordinates (NeRF construction).

    Parameters
    ----------
    bond_lengths : sequence of float, length n - 1
        ``|x_{i+1} - x_i|``.
    angles : sequence of float, length n - 2
        Angle at bead ``i + 1`` between beads ``i`` and ``i + 2`` (radians).
    dihedrals : sequence of float, length n - 3
        Dihedral ``(i, i+1, i+2, i+3)`` in the convention of :func:`dihedral_angles`.

    Returns
    -------
    ndarray, shape (n, 3)
    """
    bonds = np.asarray(bond_lengths, dtype=float)
    angles = np.asarray(angles, dtype=float)
    dihedrals = np.asarray(dihedrals, dtype=float)
    n = len(bonds) + 1
    if len(angles) != max(n - 2, 0) or len(dihedrals) != max(n - 3, 0):
        raise ValueError("need n-1 bond lengths, n-2 angles and n-3 dihedrals")
    x = np.zeros((n, 3))
    if n > 1:
        x[1] = [bonds[0], 0.0, 0.0]
    if n > 2:
        t = np.pi - angles[0]
        x[2] = x[1] + bonds[1] * np.array([np.cos(t), np.sin(t), 0.0])
    for i in range(3, n):
        a, b, c = x[i - 3], x[i - 2], x[i - 1]
        bc = (c - b) / np.linalg.norm(c - b)
        normal = np.cross(b - a, bc)
        normal /= np.linalg.norm(normal)
        m = np.cross(normal, bc)
        theta, phi = angles[i - 2], dihedrals[i - 3]
        local = bonds[i - 1] * np.array([-np.cos(theta), np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi)])
        x[i] = c + local[0] * bc + local[1] * m + local[2] * normal
    return x + np.asarray(origin, dtype=float)
